"""Planning one section (rule ``plan``): validate the inputs, then write the tile plan and its settings.

Everything that can be wrong with a section's inputs is checked here, on the CPU, before any GPU
job: stores that do not exist, mask and image extents that disagree, a model whose pixel size
differs from the image's, an image dtype the model's normalisation does not cover.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import masks, volume
from ..io.sections import check_section_id, check_store
from ..models import package as modelpkg
from ..repaint.stage import normalization_for
from . import tiling
from .review import ReviewTable, apply_review


@dataclass(frozen=True)
class TilingConfig:
    """The ``tiling`` block of the workflow config."""

    margin_um: float = 8.0
    core_fraction: float = 0.5
    min_known: float = 0.25
    min_known_floor: float | None = None
    max_batch: int = 8
    seed: int = 0


def mask_level_for(mask_ref: str, image_info: volume.ImageInfo, z: int | None, core_size: int) -> int:
    """The coarsest mask level whose factor is at most core_size / 4 (the planner's accuracy bound)."""
    info = volume.read_info(mask_ref)
    best = 0
    for level in range(info.n_levels):
        _, factor = masks.load_mask(mask_ref, image_info, z=z, level=level)
        if max(factor) <= max(1, core_size // 4):
            best = level
    return best


def plan_section(section: str, image_ref: str, mask_ref: str, z: int | None, model_ref: str,
                 config: TilingConfig, normalization: dict[str, Any] | None, out_dir: Path,
                 review: ReviewTable | None = None) -> dict[str, Any]:
    """Validate a section's inputs against the model and write ``tiles.tsv`` and ``plan.json`` to ``out_dir``.

    Tiles rejected in the ``review`` table get the seed of their review round (`review.apply_review`).
    """
    check_section_id(section)
    check_store(image_ref, f"section {section}: image")
    check_store(mask_ref, f"section {section}: mask")
    info = volume.read_info(image_ref)
    card = modelpkg.read_card(model_ref)
    model_px = float(card["pixel_size_um"])
    py, px = info.pixel_size_um
    if not (math.isclose(py, model_px, rel_tol=0.01) and math.isclose(px, model_px, rel_tol=0.01)):
        raise ValueError(f"section {section}: image pixel size {py:g} x {px:g} µm differs from the model's "
                         f"{model_px:g} µm; resample the image or use a model trained at its pixel size")
    normalization_for(info.dtype, modelpkg.Normalization.from_card(card["normalization"]), normalization)
    tile = int(card["tile_size"])
    core = max(1, int(round(tile * config.core_fraction)))
    margin_px = int(math.ceil(config.margin_um / model_px))
    level = mask_level_for(mask_ref, info, z, core)
    mask, factor = masks.load_mask(mask_ref, info, z=z, level=level)
    plan = tiling.plan_tiles(mask, factor=factor, shape=info.plane_shape, tile_size=tile, section=section,
                             seed=config.seed, core_size=core, margin_px=margin_px, min_known=config.min_known,
                             min_known_floor=config.min_known_floor, max_batch=config.max_batch)
    plan, review_record = apply_review(plan, review, section, config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tiling.write_plan(plan, out_dir / "tiles.tsv")
    short = plan[plan["status"] == tiling.STATUS_INSUFFICIENT]
    summary = {
        "section": section, "image": image_ref, "mask": mask_ref, "z": z,
        "model": {"path": os.fspath(modelpkg.resolve(model_ref)), "sha256": card["weights"]["sha256"]},
        "tiling": asdict(config), "tile_size": tile, "core_size": core, "margin_px": margin_px,
        "mask_level": level, "mask_factor": list(factor), "plane_shape": list(info.plane_shape),
        "pixel_size_um": model_px, "tiles": int(len(plan)), "scheduled_tiles": int((plan["wave"] >= 0).sum()),
        "waves": int(plan["wave"].max() + 1) if len(plan) and (plan["wave"] >= 0).any() else 0,
        "batches": sorted(int(b) for b in np.unique(plan.loc[plan["batch"] >= 0, "batch"])),
        "insufficient_context": {"tiles": short["tile"].tolist(),
                                 "pixels_upper_bound": int(short["n_owned"].sum())},
        "review": review_record,
    }
    (out_dir / "plan.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_plan_dir(plan_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The plan table and its settings (``plan.json``)."""
    return tiling.read_plan(plan_dir / "tiles.tsv"), json.loads((plan_dir / "plan.json").read_text())


def write_index(summary_paths: list[Path], out_tsv: Path, out_json: Path) -> None:
    """The stack's planning index, read once by the workflow after the planning pass.

    ``out_tsv``: one row per section (tiles, waves, batches, tiles short of context).
    ``out_json``: per section and batch, the earlier batches it depends on and its fingerprint
    (what its pixels depend on in the plan), so that building the DAG reads one file, not 7,404 plans.
    """
    from ..repaint.stage import batch_dependencies
    from .review import batch_fingerprints

    rows, index = [], {}
    for path in summary_paths:
        s = json.loads(Path(path).read_text())
        plan = tiling.read_plan(Path(path).with_name("tiles.tsv"))
        deps = batch_dependencies(plan)
        prints = batch_fingerprints(plan, s)
        index[s["section"]] = {str(b): {"after": deps[b], "fingerprint": prints[b]} for b in s["batches"]}
        rows.append(f"{s['section']}\t{s['scheduled_tiles']}\t{s['waves']}\t{len(s['batches'])}\t"
                    f"{len(s['insufficient_context']['tiles'])}\n")
    for out, text in ((out_tsv, "section\ttiles\twaves\tbatches\tinsufficient_context_tiles\n" + "".join(rows)),
                      (out_json, json.dumps(index, separators=(",", ":")))):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
