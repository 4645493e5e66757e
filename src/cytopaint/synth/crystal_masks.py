"""Crystal masks for the evaluation: clusters of small polygons, as sections show them, up to a coverage bin.

The free-form strokes of `cytopaint.synth.freeform` are holes wider than a tile's core; crystals
(`cytopaint.synth.artifacts.crystal_cluster`: 3-50 µm, in clusters within 80 µm) are what the
planner's small windows and split tiles repair, so they are judged on masks of their own.
"""

from __future__ import annotations

import math

import numpy as np

from .artifacts import crystal_cluster


def crystal_mask(shape: tuple[int, int], coverage_bin: tuple[float, float], rng: np.random.Generator | int | None,
                 pixel_size_um: float) -> np.ndarray:
    """A boolean mask (True = hole) of crystal clusters whose hole ratio lies in coverage_bin = (lo, hi).

    Clusters are placed uniformly; a crystal that would overshoot the bin is left out. Raises
    ValueError when the bin cannot be reached with crystals on this shape.
    """
    h, w = int(shape[0]), int(shape[1])
    lo, hi = float(coverage_bin[0]), float(coverage_bin[1])
    if not 0 <= lo < hi <= 1 or h < 1 or w < 1 or pixel_size_um <= 0:
        raise ValueError(f"need 0 <= lo < hi <= 1, a positive shape and pixel size, got bin {coverage_bin}, "
                         f"shape {shape}, pixel size {pixel_size_um}")
    n = h * w
    lo_px, hi_px = max(math.ceil(lo * n), 1), (math.ceil(hi * n) - 1 if hi < 1 else n)
    if lo_px > hi_px:
        raise ValueError(f"no pixel count of a {h}x{w} mask falls in {coverage_bin}")
    rng = np.random.default_rng(rng)
    target = int(rng.integers(lo_px, hi_px + 1))
    mask = np.zeros((h, w), dtype=bool)
    count = 0
    for _attempt in range(10_000):
        if count >= target:
            return mask
        cy, cx = rng.uniform(0, h) * pixel_size_um, rng.uniform(0, w) * pixel_size_um
        for crystal in crystal_cluster(rng, cy, cx):
            y0, x0, y1, x1 = (v / pixel_size_um for v in crystal.bbox())
            ys = np.arange(max(int(y0), 0), min(int(math.ceil(y1)) + 1, h))
            xs = np.arange(max(int(x0), 0), min(int(math.ceil(x1)) + 1, w))
            if ys.size == 0 or xs.size == 0:
                continue
            region = crystal.region(((ys + 0.5) * pixel_size_um)[:, None], ((xs + 0.5) * pixel_size_um)[None, :])
            window = mask[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            added = int((region & ~window).sum())
            if count + added <= hi_px:
                window |= region
                count += added
    raise ValueError(f"crystals do not reach coverage {coverage_bin} of a {h}x{w} mask "
                     f"at {pixel_size_um:g} µm per px")
