"""Provenance manifest of one repaired section (rule ``manifest``): ``manifest.json``.

A manifest says what went in, what ran and what came out, validated against
``schemas/manifest.schema.json`` before it is written:

- ``inputs``: the sections table (sha256), the image (level-0 pixel digest in the scheme of the
  blend receipt, so it equals the output's where nothing was repaired) and the artifact mask
  (level-0 digest); ``model``: package path, name, weights and card sha256;
- ``config``: the full effective workflow config and its sha256 (canonical JSON);
- ``plan``: the planning settings; ``tiles``: every tile of the plan (window, core, wave, batch,
  seed, status), with the NFE it was sampled with and its review record (decisions, notes, seed
  lineage); ``sampler``: the sampler settings and NFE per tile;
- ``output``: the repaired store, its level-0 sha256 and the repaired area (px, µm², % of
  tissue); ``qc``: the report, the metrics and the flag counts; ``review``: the review table read;
- ``code``: package version, git commit and dirty flag; ``jobs``: per job (plan is not a job
  record of its own) its step, device, GPU, Python, torch and CUDA versions, host, SLURM job id,
  start, end and seconds; a repaint job also its sampling seconds, the network's execution
  (channels-last, compile mode) and its tiles per sampler call.

Two runs on the same inputs give manifests that differ only in `VOLATILE_JOB_KEYS` and
``created``: `stable_view` drops exactly those. `plan_from_manifest` rebuilds the tile plan, seeds
included, to repaint a section again (bit for bit on a CPU).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from cytopaint.io import volume
from cytopaint.io.atomic import write_text
from cytopaint.io.batchfile import read_meta
from cytopaint.io.digest import MASK_SCHEME, SHA256_SCHEME, label_digest, level0_digest
from cytopaint.models import package as modelpkg
from cytopaint.paths import QC_METRICS
from cytopaint.plan.section import Section
from cytopaint.plan.stage import read_plan_dir
from cytopaint.plan.table import PLAN_COLUMNS, validate_plan
from cytopaint.runtime import JobClock, code_version

FORMAT = "cytopaint-manifest/1"
#: What may differ between two runs on the same inputs (``tiles_per_call``: with ``gpu_batch: auto`` the
#: GPU memory free at the time decides it).
VOLATILE_JOB_KEYS = ("host", "slurm_job_id", "started", "ended", "seconds", "sample_seconds", "tiles_per_call")


def manifest_schema() -> dict[str, Any]:
    return json.loads(files("cytopaint").joinpath("schemas/manifest.schema.json").read_text())


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise ValueError naming every place where ``manifest`` breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors[:20]]
        raise ValueError("manifest does not match its schema:\n" + "\n".join(lines))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a config: any changed value changes it."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _metadata_sha256(ref: str) -> str | None:
    """sha256 of a local multiscale group's metadata file (zarr.json, or .zattrs for zarr v2)."""
    path = volume.metadata_file(ref)
    return None if path is None else modelpkg.sha256_file(Path(path))


def _job(step: str, record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keys = ("device", "gpu", "threads", "python", "torch", "cuda", "host", "slurm_job_id", "started", "ended")
    return {"step": step, **extra, **{k: record.get(k) for k in keys}, "seconds": record.get("seconds")}


def _tiles(plan: pd.DataFrame, metas: dict[int, dict[str, Any]], review: dict[str, Any]) -> list[dict[str, Any]]:
    """Every plan row with the NFE and pixel count its batch reports, and its review record."""
    out = []
    for row in plan.to_dict(orient="records"):
        meta = metas.get(int(row["batch"]), {}).get("tiles", {}).get(row["tile"]) if row["batch"] >= 0 else None
        if row["batch"] >= 0 and meta is None:
            raise ValueError(f"tile {row['tile']} is not in the result of batch {row['batch']}")
        if meta is not None and int(meta["seed"]) != int(row["seed"]):
            raise ValueError(f"tile {row['tile']}: batch {row['batch']} was sampled with seed {meta['seed']}, the plan "
                             f"says {row['seed']}; repaint the batch again")
        out.append({**{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
                    "nfe": None if meta is None else int(meta["nfe"]),
                    "generated_px": None if meta is None else int(meta["n_owned"]),
                    "review": review.get(row["tile"])})
    return out


def build_manifest(section: Section, *, sections_table: Path, plan_dir: Path, batch_files: list[Path],
                   receipt_path: Path, qc_summary_path: Path, config: dict[str, Any],
                   progress: bool = True) -> dict[str, Any]:
    """Assemble and validate the manifest of one section.

    Parameters
    ----------
    section
        The section, as the sections table gives it.
    sections_table
        The table (its sha256 goes into the manifest).
    plan_dir, batch_files, receipt_path, qc_summary_path
        The section's plan folder, all its batch result files, the blend receipt and
        ``qc/summary.json``: each must be of this section.
    config
        The effective workflow config (recorded whole, with its sha256).
    progress
        Print what is being digested (the input image and mask are read whole).

    Returns
    -------
    dict
        The manifest (see the module docstring), valid for ``schemas/manifest.schema.json``.
    """
    clock = JobClock()
    plan, plan_info = read_plan_dir(plan_dir)
    receipt = json.loads(Path(receipt_path).read_text())
    qc = json.loads(Path(qc_summary_path).read_text())
    for what, got in (("plan", plan_info["section"]), ("QC summary", qc["section"])):
        if got != section.id:
            raise ValueError(f"the {what} given is of section {got}, not {section.id}")
    metas: dict[int, dict[str, Any]] = {}
    for path in batch_files:
        meta = read_meta(path)
        if meta["section"] != section.id:
            raise ValueError(f"batch result {path} is of section {meta['section']}, not {section.id}")
        metas[int(meta["batch"])] = meta
    missing = sorted(set(plan_info["batches"]) - set(metas))
    if missing:
        raise ValueError(f"section {section.id}: no batch result given for batch(es) {missing}")
    model_path = Path(plan_info["model"]["path"])
    card = modelpkg.read_card(model_path)
    for b, meta in metas.items():
        if meta["model"]["sha256"] != plan_info["model"]["sha256"]:
            raise ValueError(f"batch {b} was sampled with model weights {meta['model']['sha256'][:12]}…, the plan "
                             f"names {plan_info['model']['sha256'][:12]}…")
    info = section.info
    if progress:
        print(f"manifest {section.id}: digest of the input image (level 0) and mask", flush=True)
    image_digest = level0_digest(section.image, section.z)
    review = plan_info.get("review") or {"table": None, "sha256": None, "tiles": {}}
    samplers = {canonical_json(m["sampler"]) for m in metas.values()}
    if len(samplers) > 1:
        raise ValueError(f"section {section.id}: batches were sampled with different settings {sorted(samplers)}")
    manifest_job = clock.record()
    blend_job = {**receipt, "seconds": receipt.get("durations_s", {}).get("total")}
    jobs = [_job("repaint", {**m, "seconds": m.get("wall_seconds")}, batch=b, sample_seconds=m.get("sample_seconds"),
                 execution=m.get("execution"),  # null: sampled before the execution was recorded
                 tiles_per_call=(m.get("gpu_batch") or {}).get("tiles_per_call"))
            for b, m in sorted(metas.items())]
    jobs += [_job("blend", blend_job), _job("qc", qc.get("job", {})), _job("manifest", manifest_job)]
    manifest = {
        "format": FORMAT,
        "section": section.id,
        "created": manifest_job["ended"],
        "inputs": {
            "sections_table": {"path": os.fspath(sections_table), "sha256": modelpkg.sha256_file(Path(sections_table))},
            "image": {"ref": section.image, "z": section.z, "shape": list(info.shape), "dtype": str(info.dtype),
                      "pixel_size_um": list(info.pixel_size_um), "chunks": list(info.chunks),
                      "metadata_sha256": _metadata_sha256(section.image), "sha256_level0": image_digest,
                      "scheme": SHA256_SCHEME},
            "mask": {"ref": section.mask, "metadata_sha256": _metadata_sha256(section.mask),
                     "sha256_level0": label_digest(section.mask, section.z, progress), "scheme": MASK_SCHEME},
        },
        "model": {"path": os.fspath(model_path), "name": card["name"], "weights_sha256": plan_info["model"]["sha256"],
                  "card_sha256": modelpkg.sha256_file(model_path / modelpkg.CARD_NAME)},
        "config": {"sha256": config_hash(config), "values": config},
        "plan": {k: v for k, v in plan_info.items() if k != "review"},
        "sampler": {**json.loads(samplers.pop()), "nfe_per_tile": sorted({int(m["nfe_per_tile"]) for m in
                                                                          metas.values()})} if metas else None,
        "tiles": _tiles(plan, metas, review["tiles"]),
        "output": {"path": receipt["output"], "sha256_level0": receipt["sha256_level0"],
                   "scheme": receipt.get("sha256_scheme", SHA256_SCHEME),
                   "pixels_repaired": int(receipt["pixels_repaired"]), "repaired_um2": qc["repaired_um2"],
                   "tissue_um2": qc["tissue_um2"], "repaired_pct_tissue": qc["repaired_pct_tissue"]},
        "qc": {"report": os.fspath(Path(qc_summary_path).parent / qc["report"]),
               "metrics": os.fspath(Path(qc_summary_path).parent / QC_METRICS),
               "flagged_tiles": qc["flagged_tiles"], "flags": qc["flags"],
               "section_flags": qc.get("section_flags"),  # null: measured before section flags existed
               "settings": qc["settings"]},
        "review": {"table": review["table"], "sha256": review["sha256"],
                   "decisions": {t: r["decisions"] for t, r in review["tiles"].items()}},
        "code": code_version(),
        "jobs": jobs,
    }
    validate_manifest(manifest)
    return manifest


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Validate and write a manifest atomically."""
    validate_manifest(manifest)
    write_text(path, json.dumps(manifest, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def stable_view(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what differs between two runs of the same inputs (times, hosts, job ids)."""
    out = {k: v for k, v in manifest.items() if k != "created"}
    out["jobs"] = [{k: v for k, v in j.items() if k not in VOLATILE_JOB_KEYS} for j in manifest["jobs"]]
    return out


def plan_from_manifest(manifest: dict[str, Any]) -> pd.DataFrame:
    """The tile plan a manifest records (seeds of the review rounds included), validated."""
    frame = pd.DataFrame([{k: t[k] for k in PLAN_COLUMNS} for t in manifest["tiles"]], columns=list(PLAN_COLUMNS))
    return validate_plan(frame)
