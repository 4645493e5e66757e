"""The paper's validation protocol (Kropp et al., section 3.3) on held-out sections (``cytopaint evaluate``).

Intact patches are drawn from held-out sections and obstructed with free-form masks (or crystal
clusters, ``masks: crystals``), a set of masks per coverage bin; the DDPM (through the workflow's
planning, repaint and blending code) and classical baselines repair the same pixels: the hole
dilated by the tiling margin, the region the workflow would repaint. Per patch and method: cell
density and mean cell size in that region, repaired vs original (Figure 4), and the
cytoarchitecture classifier's top-1 / top-2 agreement (Figure 5). Per method: the Fréchet distance
of repaired vs original patches in the classifier's feature space (FCD), next to the FCD of a
disjoint reference set of originals and its response to noise, blur and salt-and-pepper (Figure 3).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..io.sections import read_sections
from ..models import package as modelpkg
from ..models.classifier import PackagedClassifier, load_classifier
from ..morphology import dilate
from ..diffusion.execution import Execution
from ..plan.stage import TilingConfig
from ..repaint.stage import RepaintConfig, pick_device
from ..runtime import code_version_string
from . import report
from .baselines import BASELINES
from .ddpm import repair_patches
from .metrics import compare_cells, frechet_distance, topk_agreement
from .perturb import PERTURBATIONS
from .sampling import MASK_KINDS, EvalPatch, bin_masks, sample_patches

DDPM = "ddpm"
METHODS = (DDPM, *BASELINES)
PAPER_BINS = ((0.05, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))


@dataclass(frozen=True)
class EvaluationSettings:
    """What to evaluate and how: the ``evaluate`` block of the workflow config, with its model, tiling and sampler."""

    sections: str  # held-out sections table (never used for training)
    model: str = "demo"
    classifier: str | None = "demo"  # None: cell statistics only (e.g. patches smaller than the classifier's input)
    tiling: TilingConfig = field(default_factory=TilingConfig)
    repaint: RepaintConfig = field(default_factory=RepaintConfig)
    execution: Execution = field(default_factory=Execution)  # how the network runs (channels-last, compiled)
    patch_um: float = 1024.0  # side of the square patches: 1 mm^2 as in the paper
    patches_per_bin: int = 8
    bins: tuple[tuple[float, float], ...] = PAPER_BINS
    run_bins: tuple[int, ...] | None = None  # repair only these bins' patches of the draw (None: all)
    masks: str = "freeform"  # hole shapes: free-form strokes (the paper's), or crystal clusters (small windows)
    methods: tuple[str, ...] = METHODS
    perturbations: bool = True
    seed: int = 0
    batch_size: int = 128  # tiles per sampler call, pooled over patches
    workers: int | None = None  # processes for baselines and cell detection (default: usable CPUs, at most 8)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"unknown evaluation method(s) {unknown}; choose from {list(METHODS)}")
        bins = tuple((float(lo), float(hi)) for lo, hi in self.bins)
        if not bins or any(not 0 <= lo < hi <= 1 for lo, hi in bins):
            raise ValueError(f"coverage bins must be [lo, hi] with 0 <= lo < hi <= 1, got {self.bins}")
        object.__setattr__(self, "bins", bins)
        if self.run_bins is not None:
            run_bins = tuple(sorted({int(b) for b in self.run_bins}))
            if not run_bins or run_bins[0] < 0 or run_bins[-1] >= len(bins):
                raise ValueError(f"evaluate.run_bins must name bins 0..{len(bins) - 1} (indices of evaluate.bins), "
                                 f"got {list(self.run_bins)}")
            object.__setattr__(self, "run_bins", run_bins)
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.masks not in MASK_KINDS:
            raise ValueError(f"evaluate.masks must be one of {list(MASK_KINDS)}, got {self.masks!r}")
        if self.patches_per_bin < 2 or self.patch_um <= 0 or self.batch_size < 1:
            raise ValueError("need patches_per_bin >= 2 (a Fréchet distance needs two samples), patch_um > 0 "
                             "and batch_size >= 1")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], sections: str | None = None) -> EvaluationSettings:
        """Settings from a workflow config: its ``model``, ``tiling``, ``repaint``, ``execution`` and ``evaluate``
        blocks.

        ``evaluate.repaint`` overrides keys of ``repaint`` (e.g. another sampler setting), and
        ``sections`` (e.g. the held-out table a rule made) overrides ``evaluate.sections``.
        """
        ev = dict(config.get("evaluate") or {})
        repaint = {**(config.get("repaint") or {}), **(ev.pop("repaint", None) or {})}
        ev.pop("synthetic", None)
        table = sections or ev.pop("sections", None)
        ev.pop("sections", None)
        if not table:
            raise ValueError("evaluate.sections: a table of held-out sections is needed")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(ev) - known)
        if extra:
            raise ValueError(f"evaluate: unknown setting(s) {extra}")
        if "bins" in ev:
            ev["bins"] = tuple(map(tuple, ev["bins"]))
        for key in ("methods", "run_bins"):
            if ev.get(key) is not None:
                ev[key] = tuple(ev[key])
        return cls(sections=str(table), model=str(config.get("model", "demo")),
                   tiling=TilingConfig(**(config.get("tiling") or {})), repaint=RepaintConfig(**repaint),
                   execution=Execution(**(config.get("execution") or {})), **ev)


def _score(method: str, original: np.ndarray, region: np.ndarray, repaired: np.ndarray | None,
           pixel_size_um: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Repair with a baseline (unless ``repaired`` is given) and compare cells in ``region``."""
    t0 = time.perf_counter()
    if repaired is None:
        repaired = BASELINES[method](original, region)
    seconds = time.perf_counter() - t0
    return repaired, {**asdict(compare_cells(original, repaired, region, pixel_size_um)), "seconds": seconds}


def _pool(workers: int) -> ProcessPoolExecutor | None:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None


def score_all(jobs: list[tuple], workers: int | None, progress: bool) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Each job (method, original, region, repaired or None, pixel size) repaired if need be and scored
    (`compare_cells`), in ``workers`` processes (default: usable CPUs, at most 8)."""
    pool = _pool(workers or min(len(os.sched_getaffinity(0)), 8))
    try:
        results = pool.map(_score, *zip(*jobs, strict=True), chunksize=1) if pool else (_score(*j) for j in jobs)
        return list(tqdm(results, total=len(jobs), desc="baselines and cells", disable=not progress))
    finally:
        if pool:
            pool.shutdown()


def settings_record(settings: EvaluationSettings) -> dict[str, Any]:
    """The settings as evaluation.json records them (JSON types)."""
    record = {**asdict(settings), "tiling": asdict(settings.tiling), "repaint": asdict(settings.repaint),
              "execution": asdict(settings.execution)}
    return json.loads(json.dumps(record, default=str))


def _fcd_rows(classifier: PackagedClassifier, originals: np.ndarray, features: dict[str, np.ndarray],
              reference: list[np.ndarray], pixel_size_um: float, perturbations: bool, seed: int) -> list[dict[str, Any]]:
    """FCD vs the originals of: each method's repaired patches, a disjoint reference set of originals,
    and the originals perturbed (the paper's Figure 3, after Heusel et al.: paired, so level 0 gives 0).

    ``features``: the classifier's features of the originals (key ``original``) and of each method's repairs.
    """
    base = features["original"]
    rows = [{"kind": "reference", "name": "originals", "level": 0.0,
             "fcd": frechet_distance(classifier.predict(np.stack(reference), pixel_size_um)[0], base)}]
    for m, feats in features.items():
        if m != "original":
            rows.append({"kind": "method", "name": m, "level": math.nan, "fcd": frechet_distance(feats, base)})
    if perturbations:
        for name, (fn, levels) in PERTURBATIONS.items():
            for k, level in enumerate(levels):
                rng = np.random.default_rng([seed, 7, k])
                disturbed = np.stack([fn(img, level, rng) for img in originals])
                rows.append({"kind": "perturbation", "name": name, "level": float(level),
                             "fcd": frechet_distance(classifier.predict(disturbed, pixel_size_um)[0],
                                                     base)})
    n = len(originals)
    return [{**r, "n": n} for r in rows]


def _agreement(classifier: PackagedClassifier | None, originals: np.ndarray, repaired: Mapping[str, np.ndarray],
               methods: Sequence[str], pixel_size_um: float) -> dict[str, Any]:
    """Per method, the per-patch columns class_original, class_repaired, top1_agree, top2_agree (None
    without a classifier); under ``features`` the classifier's features of the originals and each method."""
    n = len(originals)
    if classifier is None:
        return {"features": {}, **{m: dict.fromkeys(("class_original", "class_repaired", "top1_agree", "top2_agree"),
                                                   [None] * n) for m in methods}}
    classes = list(classifier.card["classes"])
    predicted = {"original": classifier.predict(originals, pixel_size_um),
                 **{m: classifier.predict(repaired[m], pixel_size_um) for m in methods}}  # (features, probabilities)
    p_orig = predicted["original"][1]
    out: dict[str, Any] = {"features": {k: v[0] for k, v in predicted.items()}}
    for m in methods:
        p_rep = predicted[m][1]
        out[m] = {"class_original": [classes[int(p.argmax())] for p in p_orig],
                  "class_repaired": [classes[int(p.argmax())] for p in p_rep],
                  "top1_agree": [bool(v) for v in topk_agreement(p_orig, p_rep, 1)],
                  "top2_agree": [bool(v) for v in topk_agreement(p_orig, p_rep, min(2, len(classes)))]}
    return out


@dataclass(frozen=True)
class Draw:
    """The patches of an evaluation: each with its hole (bin, mask) and region, and disjoint reference originals."""

    pixel_size_um: float
    patches: list[EvalPatch]
    holes: list[tuple[int, np.ndarray]]
    regions: list[np.ndarray]  # the hole dilated by the tiling margin: the pixels every method repairs
    reference: list[np.ndarray]  # other originals, for the reference FCD
    names: list[str]  # each patch's section name when repaired, which its tile seeds hash


def draw(settings: EvaluationSettings) -> Draw:
    """The patches, holes and regions ``settings`` define: the same on every run of the same settings.

    With ``run_bins`` only those bins' patches are kept, and each keeps its name (hence its tile
    seeds) from the whole draw: a bin repaired on its own is repaired as in a run of all bins.
    """
    px = float(modelpkg.read_card(settings.model)["pixel_size_um"])
    patch_px = int(round(settings.patch_um / px))
    table = read_sections(settings.sections, base=Path(settings.sections).resolve().parent)
    n = settings.patches_per_bin * len(settings.bins)
    rng = np.random.default_rng(settings.seed)
    drawn = sample_patches(table, 2 * n, patch_px, px, rng, margin_um=settings.tiling.margin_um + 2 * px)
    order = rng.permutation(2 * n)
    holes = bin_masks(settings.patches_per_bin, settings.bins, (patch_px, patch_px), settings.seed, settings.masks,
                      px)
    keep = [i for i, (b, _) in enumerate(holes)
            if settings.run_bins is None or b in settings.run_bins]
    return Draw(px, [drawn[order[i]] for i in keep], [holes[i] for i in keep],
                [dilate(holes[i][1], settings.tiling.margin_um / px) for i in keep],
                [drawn[i].image for i in order[n:]], [f"p{i:04d}" for i in keep])


def evaluate(settings: EvaluationSettings, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Run the protocol and write ``out_dir``: patches.tsv, summary.tsv, fcd.tsv, evaluation.json, figures, summary.md."""
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = modelpkg.read_card(settings.model)
    d = draw(settings)
    px, patches, reference, holes, regions = d.pixel_size_um, d.patches, d.reference, d.holes, d.regions
    patch_px = patches[0].image.shape[0]
    margin_px = int(math.ceil(settings.tiling.margin_um / px))
    n = len(patches)
    originals = np.stack([p.image for p in patches])

    repaired: dict[str, np.ndarray] = {}
    extra: dict[str, list[dict[str, Any]]] = {m: [{} for _ in patches] for m in settings.methods}
    ddpm_timing: dict[str, float] = {}
    ddpm_seconds = math.nan  # per patch: the DDPM's whole time (plan, sample, blend) over the patches
    if DDPM in settings.methods:
        ddpm, ddpm_timing = repair_patches(list(originals), [h for _, h in holes], px, settings.model,
                                           settings.tiling, settings.repaint, out_dir / "work",
                                           settings.batch_size, progress, settings.execution, names=d.names)
        repaired[DDPM] = np.stack([r.image for r in ddpm])
        ddpm_seconds = sum(ddpm_timing[k] for k in ("plan_s", "sample_s", "repaint_other_s", "blend_s")) / n
        shutil.rmtree(out_dir / "work")
        for i, r in enumerate(ddpm):
            outside = int((r.region & ~regions[i]).sum())
            if outside:
                raise RuntimeError(f"{patches[i].patch}: the workflow repaired {outside} pixels outside the "
                                   "dilated hole")
            extra[DDPM][i] = {"tiles": r.tiles, "unrepaired_px": int((regions[i] & ~r.region).sum())}
    jobs = [(m, patches[i].image, regions[i], repaired[m][i] if m in repaired else None, px)
            for m in settings.methods for i in range(n)]
    results = score_all(jobs, settings.workers, progress)
    for k, m in enumerate(settings.methods):
        repaired[m] = np.stack([results[k * n + i][0] for i in range(n)])

    classifier = (load_classifier(settings.classifier, device=pick_device(settings.repaint.device))
                  if settings.classifier else None)
    agreement = _agreement(classifier, originals, repaired, settings.methods, px)
    rows = []
    for k, m in enumerate(settings.methods):
        for i, p in enumerate(patches):
            b, hole = holes[i]
            rows.append({"patch": p.patch, "section": p.section, "y0": p.y0, "x0": p.x0, "bin": b,
                         "bin_lo": settings.bins[b][0], "bin_hi": settings.bins[b][1], "method": m,
                         "hole_coverage": float(hole.mean()), "region_coverage": float(regions[i].mean()),
                         **results[k * n + i][1], **({"seconds": ddpm_seconds} if m == DDPM else {}),
                         **{key: values[i] for key, values in agreement[m].items()},
                         "tiles": extra[m][i].get("tiles", 0), "unrepaired_px": extra[m][i].get("unrepaired_px", 0)})
    per_patch = pd.DataFrame(rows)
    fcd = pd.DataFrame(_fcd_rows(classifier, originals, agreement["features"], reference, px,
                                 settings.perturbations, settings.seed) if classifier else [],
                       columns=["kind", "name", "level", "fcd", "n"])
    summary = report.summary_table(per_patch)
    per_patch.to_csv(out_dir / "patches.tsv", sep="\t", index=False)
    summary.to_csv(out_dir / "summary.tsv", sep="\t", index=False)
    fcd.to_csv(out_dir / "fcd.tsv", sep="\t", index=False)
    run = {
        "settings": settings_record(settings),
        "model": {"name": card["name"], "sha256": card["weights"]["sha256"], "pixel_size_um": px,
                  "tile_size": card["tile_size"]},
        "classifier": None if classifier is None else {
            "name": classifier.card["name"], "sha256": classifier.card["weights"]["sha256"],
            "classes": list(classifier.card["classes"]), "feature_dim": classifier.card["feature_dim"],
            "held_out_accuracy": classifier.card.get("evaluation", {}).get("accuracy")},
        "patch_px": patch_px, "margin_px": margin_px, "patches": n, "reference_patches": len(reference),
        "sections": sorted({p.section for p in patches}), "ddpm_timing": ddpm_timing,
        "device": str(pick_device(settings.repaint.device)),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "code_version": code_version_string(), "seconds": round(time.perf_counter() - t_start, 1),
    }
    (out_dir / "evaluation.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    report.write_figures(per_patch, fcd, out_dir)
    report.plot_examples(patches, holes, repaired, settings.methods, out_dir / "examples.png")
    report.write_markdown(run, summary, fcd, out_dir / "summary.md")
    return run


def settings_from_files(config_files: Sequence[str], *, sections: str | None = None,
                        overrides: Mapping[str, Any] | None = None) -> EvaluationSettings:
    """Settings from workflow config files (later files win, block by block), then ``overrides``."""
    import yaml

    config: dict[str, Any] = {}
    for path in config_files:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        for key, value in loaded.items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) \
                else value
    for key, value in (overrides or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return EvaluationSettings.from_config(config, sections)


def run_from_files(config_files: Sequence[str], out_dir: Path, *, sections: str | None = None,
                   overrides: Mapping[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """``cytopaint evaluate``: settings from workflow config files (later files win), then ``overrides``."""
    return evaluate(settings_from_files(config_files, sections=sections, overrides=overrides), out_dir, progress)
