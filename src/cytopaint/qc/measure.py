"""Measuring a repaired section's tiles: the rows of ``metrics.tsv``.

Every planned tile is measured (`cytopaint.qc.metrics`) on the input and the repaired store,
reading a window around the pixels the tile owns (``labels/repaired`` inside its core): their
bounding box, widened by the ring and the detector's context. A crystal in a large core is thus
measured on a window of its own size, not the core's. ``metrics.tsv`` has one row per tile: plan identity, review status, the metrics, a
severity (largest metric/limit ratio) and the flags with their reasons.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cytopaint.blend.stage import LABEL
from cytopaint.geometry import Box
from cytopaint.io import volume
from cytopaint.morphology import upsample_window
from cytopaint.plan.ownership import core_box
from cytopaint.plan.section import Section
from cytopaint.plan.table import STATUS_INSUFFICIENT

from .metrics import METRIC_COLUMNS, QCSettings, flag_tile, severity, tile_metrics

DETECTION_CONTEXT_UM = 20.0  # image read beyond the ring, so that cells at its edge are whole
ID_COLUMNS = ("section", "tile", "row", "col", "part", "wave", "batch", "seed", "status", "review", "review_round")


def _padded(box: Box, pad: int, plane: tuple[int, int]) -> Box:
    return Box(max(box.y0 - pad, 0), max(box.x0 - pad, 0), min(box.y1 + pad, plane[0]), min(box.x1 + pad, plane[1]))


class SectionWindows:
    """Readers of one section's input, artifact mask and repaired store, window by window."""

    def __init__(self, section: Section, output: str) -> None:
        self.section, self.output = section, output
        self.image_ref, self.z, self.mask_ref = section.image, section.z, section.mask
        self.info = section.info
        self.mask, self.factor = section.artifact_mask()
        self.label_ref = f"{output}#labels/{LABEL}"
        self.ps = float(np.mean(self.info.pixel_size_um))

    def window(self, box: Box) -> dict[str, np.ndarray]:
        """before, after, repaired and artifact on a level-0 window."""
        return {"before": self.section.read(box),
                "after": volume.read_region(self.output, *box.size),
                "repaired": volume.read_region(self.label_ref, *box.size) > 0,
                "artifact": upsample_window(self.mask, self.factor, *box.size)}

    def tile_arrays(self, tile: Any, box: Box) -> dict[str, np.ndarray]:
        """`window` on ``box`` plus ``owned``: the repaired pixels inside the tile's core."""
        a = self.window(box)
        core = np.zeros(box.shape, dtype=bool)
        hit = box.overlap(core_box(tile))
        if hit is not None:
            core[hit[0]] = True
        a["owned"] = a["repaired"] & core
        return a

    def owned_box(self, tile: Any) -> Box:
        """The bounding box of the pixels the tile owns (its core when it owns none)."""
        core = core_box(tile)
        ys, xs = np.nonzero(volume.read_region(self.label_ref, *core.size))
        if not len(ys):
            return core
        return Box(core.y0 + int(ys.min()), core.x0 + int(xs.min()), core.y0 + int(ys.max()) + 1,
                   core.x0 + int(xs.max()) + 1)


def measure_tile(sec: SectionWindows, tile: Any, settings: QCSettings) -> dict[str, float]:
    """Metrics of one plan row, on a window around its owned pixels that holds the ring and its cells."""
    if tile.status == STATUS_INSUFFICIENT:
        return {**dict.fromkeys(METRIC_COLUMNS, math.nan), "repaired_px": 0, "repaired_um2": 0.0}
    owned = sec.owned_box(tile)

    def measure(width_um: float) -> dict[str, float]:
        pad = math.ceil((settings.ring_gap_um + width_um + DETECTION_CONTEXT_UM) / sec.ps)
        a = sec.tile_arrays(tile, _padded(owned, pad, sec.info.plane_shape))
        return tile_metrics(a["before"], a["after"], a["owned"], a["repaired"], a["artifact"], sec.ps, settings)

    m = measure(settings.ring_width_um)
    if m["ring_width_um"] > settings.ring_width_um:  # the ring widened: again, on a window that holds it
        m = measure(m["ring_width_um"])
    return m


def _review_columns(review: dict[str, Any], tile: str) -> tuple[str, int]:
    rec = review.get(tile)
    return (rec["status"], int(rec["round"])) if rec else ("unreviewed", 0)


def measure_section(sec: SectionWindows, plan: pd.DataFrame, review: dict[str, Any], settings: QCSettings,
                    progress: bool = True) -> pd.DataFrame:
    """The metrics table of a section: one row per planned tile (`ID_COLUMNS`, metrics, flags)."""
    rows = []
    for tile in tqdm(plan.itertuples(index=False), total=len(plan), desc=f"qc {plan['section'].iat[0]}"
                     if len(plan) else "qc", unit="tile", disable=not progress):
        m = measure_tile(sec, tile, settings)
        flags = flag_tile(m, settings.thresholds, tile.status)
        status, rnd = _review_columns(review, tile.tile)
        rows.append({"section": tile.section, "tile": tile.tile, "row": tile.row, "col": tile.col, "part": tile.part,
                     "wave": tile.wave, "batch": tile.batch, "seed": tile.seed, "status": tile.status,
                     "review": status, "review_round": rnd, "core_y0": tile.core_y0, "core_x0": tile.core_x0,
                     "core_height": tile.core_height, "core_width": tile.core_width, **m,
                     "severity": severity(m, settings.thresholds),
                     "flags": ";".join(f.code for f in flags), "flag_reasons": " | ".join(f.reason for f in flags)})
    columns = [*ID_COLUMNS, "core_y0", "core_x0", "core_height", "core_width", *METRIC_COLUMNS, "severity", "flags",
               "flag_reasons"]
    return pd.DataFrame(rows, columns=columns)
