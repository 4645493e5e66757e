"""Planning one section (rule ``plan``): validate the inputs, then write the tile plan and its settings.

Everything that can be wrong with a section's inputs is checked here, on the CPU, before any GPU
job: stores that do not exist, a plane ``z`` outside the stack, mask and image extents that
disagree, a model whose pixel size differs from the image's, an image dtype the model's
normalisation does not cover, and, in every image chunk a tile will read as context, chunks that
cannot be decoded and (float images) NaN or infinite values.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytopaint.diffusion.unet import UNetConfig
from cytopaint.geometry import Box, row_runs
from cytopaint.io import volume
from cytopaint.io.atomic import write_text
from cytopaint.io.sections import check_store
from cytopaint.models import package as modelpkg
from cytopaint.models.normalization import Normalization, normalization_for
from cytopaint.morphology import AnyPooled
from cytopaint.paths import PLAN_INDEX, PLAN_INDEX_JSON, PLAN_SETTINGS, PLAN_TABLE

from .ownership import batch_dependencies, window_box
from .review import ReviewTable, apply_review, batch_fingerprints
from .section import Section
from .table import STATUS_INSUFFICIENT, empty_plan, read_plan, window_counts, write_plan
from .tiling import plan_tiles


@dataclass(frozen=True)
class TilingConfig:
    """The ``tiling`` block of the workflow config."""

    margin_um: float = 8.0
    core_fraction: float = 0.5
    min_known: float = 0.25
    min_known_floor: float | None = None
    max_batch: int = 8
    min_window: int | None = None
    seed: int = 0
    job_minutes: float | None = None
    seconds_per_nfe: float | None = None

    def __post_init__(self) -> None:
        if (self.job_minutes is None) != (self.seconds_per_nfe is None):
            raise ValueError("tiling.job_minutes and tiling.seconds_per_nfe go together: the GPU job length to aim "
                             "at, and the seconds per network evaluation per tile on that GPU (cytopaint bench)")
        if self.min_window is not None and self.min_window < 1:
            raise ValueError(f"tiling.min_window must be >= 1 px, got {self.min_window}")
        for name in ("job_minutes", "seconds_per_nfe"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"tiling.{name} must be > 0, got {value}")

    def tiles_per_batch(self, nfe_per_tile: int | None) -> int:
        """Tiles of one GPU job: ``max_batch``, or, with ``job_minutes`` set, as many as take about that
        long at ``nfe_per_tile`` network evaluations of ``seconds_per_nfe`` each (at least one)."""
        if self.job_minutes is None:
            return self.max_batch
        if nfe_per_tile is None or nfe_per_tile < 1:
            raise ValueError("tiling.job_minutes needs the sampler's network evaluations per tile")
        return max(1, int(self.job_minutes * 60 // (nfe_per_tile * self.seconds_per_nfe)))

    def window_sides(self, card: dict[str, Any]) -> tuple[int, ...]:
        """Window sides below the model's tile that tiles owning little may take: the network's
        (`UNetConfig.sides`) from ``min_window`` up; none when ``min_window`` is None."""
        if self.min_window is None:
            return ()
        sides = UNetConfig.from_dict(card["architecture"]["config"]).sides()
        return tuple(s for s in sides if self.min_window <= s < int(card["tile_size"]))

    def expected_minutes(self, tiles: int, nfe_per_tile: int | None) -> float | None:
        """GPU minutes of a job of ``tiles`` tiles, when ``seconds_per_nfe`` is known (network time only)."""
        if self.seconds_per_nfe is None or nfe_per_tile is None:
            return None
        return tiles * nfe_per_tile * self.seconds_per_nfe / 60


def planning_mask(section: Section, core_size: int) -> tuple[AnyPooled, tuple[int, int]]:
    """The mask the planner reads, and its factor to image level 0.

    The planner works at the coarsest scale of the mask's pyramid whose factor is at most
    ``core_size / 4`` (its accuracy bound), but never reads that level: coarser levels of label
    pyramids are usually nearest-downsampled, and an artifact smaller than their pixels vanishes
    there. It reads the finest level, any-pooled to that factor (`AnyPooled`), which is
    conservative whatever the pyramid, and the same as the level itself for a max pyramid.
    """
    finest, (fy, fx) = section.artifact_mask()
    pool = (1, 1)
    for level in range(1, volume.read_info(section.mask).n_levels):
        _, (ly, lx) = section.artifact_mask(level)
        if max(ly, lx) <= max(1, core_size // 4) and ly % fy == 0 and lx % fx == 0:
            pool = (ly // fy, lx // fx)
    return AnyPooled(finest, pool), (fy * pool[0], fx * pool[1])


def check_context(section: Section, plan: pd.DataFrame, max_width: int = 8192) -> None:
    """Read every image chunk that a scheduled tile's window covers, once; raise ValueError for a
    chunk that cannot be decoded or, in a float image, for NaN or infinite values (the sampler
    would spread them into the repaired pixels)."""
    scheduled = plan[plan["wave"] >= 0]
    if scheduled.empty:
        return
    (cy, cx), (ny, nx) = section.info.chunks[-2:], section.plane_shape
    needed = np.zeros((-(-ny // cy), -(-nx // cx)), dtype=bool)
    for tile in scheduled.itertuples(index=False):
        win = window_box(tile)
        needed[win.y0 // cy:(win.y1 - 1) // cy + 1, win.x0 // cx:(win.x1 - 1) // cx + 1] = True
    floating = section.info.dtype.kind == "f"
    for i, j0, j1 in row_runs(needed, max(1, max_width // cx)):
        box = Box(i * cy, j0 * cx, min((i + 1) * cy, ny), min(j1 * cx, nx))
        data = section.read(box)
        if floating and not np.isfinite(data).all():
            y, x = (int(v) for v in np.argwhere(~np.isfinite(data))[0])
            raise ValueError(f"section {section.id}: the image holds NaN or infinite values where tiles take their "
                             f"context, e.g. at y={box.y0 + y}, x={box.x0 + x} (level 0); replace them, or mark "
                             "them as artifacts in the mask")


def plan_section(section: Section, model_ref: str, config: TilingConfig, normalization: dict[str, Any] | None,
                 out_dir: Path, review: ReviewTable | None = None, nfe_per_tile: int | None = None) -> dict[str, Any]:
    """Validate a section's inputs against the model and write its plan.

    Parameters
    ----------
    section
        The section (from the sections table; its ``margin_px`` is set here).
    model_ref
        The packaged model (or ``demo``) that will repaint it: pixel size, tile size, normalisation.
    config
        The ``tiling`` block of the workflow config.
    normalization
        The ``repaint.normalization`` override for images the model card does not cover, or None.
    out_dir
        The plan folder: ``tiles.tsv`` (`cytopaint.plan.table`) and ``plan.json`` are written there.
    review
        The review table: tiles rejected there get the seed of their review round
        (`cytopaint.plan.review.apply_review`).
    nfe_per_tile
        Network evaluations per tile of the configured sampler: with ``config.job_minutes``, the
        batches (GPU jobs) are sized by expected run time (`TilingConfig.tiles_per_batch`).

    Returns
    -------
    dict
        The content of ``plan.json``: the section's stores, plan settings, geometry, mask level,
        tile, wave and batch counts, scheduled tiles per window side, the tiles short of context and
        the review record.
    """
    check_store(section.image, f"section {section.id}: image")
    check_store(section.mask, f"section {section.id}: mask")
    info = section.info
    volume.plane_index(info, 0, section.z)  # a z outside the stack, or a z for a 2-D image
    card = modelpkg.read_card(model_ref)
    model_px = float(card["pixel_size_um"])
    py, px = info.pixel_size_um
    if not (math.isclose(py, model_px, rel_tol=0.01) and math.isclose(px, model_px, rel_tol=0.01)):
        raise ValueError(f"section {section.id}: image pixel size {py:g} x {px:g} µm differs from the model's "
                         f"{model_px:g} µm; resample the image or use a model trained at its pixel size")
    normalization_for(info.dtype, Normalization.from_card(card["normalization"]), normalization)
    tile = int(card["tile_size"])
    core = max(1, int(round(tile * config.core_fraction)))
    margin_px = int(math.ceil(config.margin_um / model_px))
    mask, factor = planning_mask(section, core)
    per_batch = config.tiles_per_batch(nfe_per_tile)
    plan = plan_tiles(mask, factor=factor, shape=info.plane_shape, tile_size=tile, section=section.id,
                      seed=config.seed, core_size=core, margin_px=margin_px, min_known=config.min_known,
                      min_known_floor=config.min_known_floor, max_batch=per_batch,
                      window_sides=config.window_sides(card))
    plan, review_record = apply_review(plan, review, section.id, config.seed)
    check_context(section, plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plan(plan, out_dir / PLAN_TABLE)
    short = plan[plan["status"] == STATUS_INSUFFICIENT]
    summary = {
        "section": section.id, "image": section.image, "mask": section.mask, "z": section.z,
        "model": {"path": os.fspath(modelpkg.resolve(model_ref)), "sha256": card["weights"]["sha256"]},
        "tiling": asdict(config), "tile_size": tile, "core_size": core, "margin_px": margin_px,
        "mask_level": 0, "mask_pooling": [mask.ky, mask.kx], "mask_factor": list(factor), "plane_shape": list(info.plane_shape),
        "pixel_size_um": model_px, "tiles": int(len(plan)), "scheduled_tiles": int((plan["wave"] >= 0).sum()),
        "waves": int(plan["wave"].max() + 1) if len(plan) and (plan["wave"] >= 0).any() else 0,
        "batches": sorted(int(b) for b in np.unique(plan.loc[plan["batch"] >= 0, "batch"])),
        "windows": window_counts(plan),
        "insufficient_context": {"tiles": short["tile"].tolist(),
                                 "pixels_upper_bound": int(short["n_owned"].sum())},
        "batching": {"tiles_per_batch": per_batch, "nfe_per_tile": nfe_per_tile,
                     "expected_minutes_per_batch": config.expected_minutes(per_batch, nfe_per_tile)},
        "review": review_record,
    }
    write_text(out_dir / PLAN_SETTINGS, json.dumps(summary, indent=2) + "\n")
    return summary


def record_failure(section: Section, error: Exception, out_dir: Path) -> dict[str, Any]:
    """Write the plan of a section whose inputs were refused: no tiles, and why (``plan.json``'s ``failed``).

    The workflow records such a section instead of failing its planning job, so that the planning
    checkpoint, and with it every other section of the stack, goes on; the stack summary lists it.
    """
    summary = {"section": section.id, "image": section.image, "mask": section.mask, "z": section.z,
               "failed": {"stage": "plan", "error": str(error), "type": type(error).__name__},
               "tiles": 0, "scheduled_tiles": 0, "waves": 0, "batches": [],
               "insufficient_context": {"tiles": [], "pixels_upper_bound": 0}}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plan(empty_plan(), out_dir / PLAN_TABLE)
    write_text(out_dir / PLAN_SETTINGS, json.dumps(summary, indent=2) + "\n")
    return summary


def read_plan_dir(plan_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The plan table and its settings (``plan.json``)."""
    return read_plan(plan_dir / PLAN_TABLE), json.loads((plan_dir / PLAN_SETTINGS).read_text())


def write_index(summary_paths: list[Path], out_tsv: Path, out_json: Path, *, beside: bool = False) -> None:
    """The stack's planning index, read once by the workflow after the planning pass.

    ``out_tsv``: one row per section (status, tiles, waves, batches, tiles short of context, error).
    ``out_json``: ``sections``: per planned section and batch, the earlier batches it depends on
    and its fingerprint (what its pixels depend on in the plan), so that building the DAG reads
    one file, not 7,404 plans; ``failed``: per section whose inputs were refused, the reason.
    ``beside``: also each section's own index (the same two files for it alone) beside its
    ``plan.json``, as a run that targets single sections reads it.
    """
    rows, index, failed = [], {}, {}
    for path in summary_paths:
        s = json.loads(Path(path).read_text())
        section = s["section"]
        if "failed" in s:
            failed[section] = s["failed"]["error"]
        else:
            plan = read_plan(Path(path).with_name(PLAN_TABLE))
            deps = batch_dependencies(plan)
            prints = batch_fingerprints(plan, s)
            index[section] = {str(b): {"after": deps[b], "fingerprint": prints[b]} for b in s["batches"]}
        error = " ".join(failed.get(section, "").split())  # one line
        rows.append(f"{section}\t{'failed' if error else 'planned'}\t{s['scheduled_tiles']}\t{s['waves']}\t"
                    f"{len(s['batches'])}\t{len(s['insufficient_context']['tiles'])}\t{error}\n")
        if beside:
            own = {k: {section: v[section]} if section in v else {} for k, v in (("sections", index), ("failed", failed))}
            _write_index(Path(path).with_name(PLAN_INDEX), Path(path).with_name(PLAN_INDEX_JSON), rows[-1:], own)
    _write_index(out_tsv, out_json, rows, {"sections": index, "failed": failed})


def _write_index(out_tsv: Path, out_json: Path, rows: list[str], index: dict[str, dict]) -> None:
    header = "section\tstatus\ttiles\twaves\tbatches\tinsufficient_context_tiles\terror\n"
    for out, text in ((out_tsv, header + "".join(rows)), (out_json, json.dumps(index, separators=(",", ":")))):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, text)
