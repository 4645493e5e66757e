"""Free-form irregular masks (after Liu et al. 2018 and DeepFill v2): random walks of thick strokes.

Strokes are chains of straight segments with round joints (capsules); widths and segment lengths scale
with the patch size. Segments are added until the hole ratio reaches a target drawn uniformly from the
requested bin; a segment that would overshoot the bin is redrawn thinner and shorter.
"""

from __future__ import annotations

import math

import numpy as np

LIU_BINS = tuple((k / 10, (k + 1) / 10) for k in range(6))  # hole-ratio bins 0-10%, ..., 50-60%


def _capsule(mask: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
             radius: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """Pixels (centres at integer coordinates) within `radius` of the segment p0-p1: (bbox slices, sub-mask)."""
    h, w = mask.shape
    r0 = max(0, int(math.floor(min(p0[0], p1[0]) - radius)))
    r1 = min(h, int(math.ceil(max(p0[0], p1[0]) + radius)) + 1)
    c0 = max(0, int(math.floor(min(p0[1], p1[1]) - radius)))
    c1 = min(w, int(math.ceil(max(p0[1], p1[1]) + radius)) + 1)
    yy = np.arange(r0, r1, dtype=np.float64)[:, None] - p0[0]
    xx = np.arange(c0, c1, dtype=np.float64)[None, :] - p0[1]
    dy, dx = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip((yy * dy + xx * dx) / max(dy * dy + dx * dx, 1e-12), 0, 1)
    inside = (yy - t * dy) ** 2 + (xx - t * dx) ** 2 <= radius * radius
    return (slice(r0, r1), slice(c0, c1)), inside


def freeform_mask(shape: tuple[int, int], coverage_bin: tuple[float, float] = (0.1, 0.2),
                  rng: np.random.Generator | int | None = None, max_vertices: int = 12,
                  width_frac: tuple[float, float] = (0.03, 0.12), length_frac: float = 0.3) -> np.ndarray:
    """A boolean mask (True = hole) whose hole ratio lies in coverage_bin = (lo, hi) (fractions, lo <= r < hi).

    width_frac and length_frac give the stroke width range and the longest segment as fractions of
    min(shape). Raises ValueError when the bin cannot hold a non-empty mask of this shape.
    """
    h, w = int(shape[0]), int(shape[1])
    lo, hi = float(coverage_bin[0]), float(coverage_bin[1])
    if not 0 <= lo < hi <= 1 or h < 1 or w < 1:
        raise ValueError(f"need 0 <= lo < hi <= 1 and a positive shape, got bin {coverage_bin}, shape {shape}")
    n = h * w
    lo_px = max(int(math.ceil(lo * n)), 1)
    hi_px = int(math.ceil(hi * n)) - 1 if hi < 1 else n  # largest allowed count
    if lo_px > hi_px:
        raise ValueError(f"no pixel count of a {h}x{w} mask falls in {coverage_bin}")
    rng = np.random.default_rng(rng)
    size = min(h, w)
    target = int(rng.integers(lo_px, hi_px + 1))
    mask = np.zeros((h, w), bool)
    count = 0
    wmin, wmax = max(1.0, width_frac[0] * size), max(1.0, width_frac[1] * size)
    for _stroke in range(100_000):
        if count >= target:
            break
        p = (rng.uniform(0, h - 1), rng.uniform(0, w - 1))
        heading = rng.uniform(0, 2 * math.pi)
        width = rng.uniform(wmin, wmax)
        for _ in range(int(rng.integers(4, max_vertices + 1))):
            heading += rng.uniform(-0.4 * math.pi, 0.4 * math.pi)
            length = rng.uniform(0.1, 1.0) * length_frac * size
            for _attempt in range(8):  # shrink the segment until it does not overshoot the bin
                q = (min(max(p[0] + length * math.sin(heading), 0), h - 1),
                     min(max(p[1] + length * math.cos(heading), 0), w - 1))
                sl, inside = _capsule(mask, p, q, width / 2)
                new = inside & ~mask[sl]
                added = int(new.sum())
                if count + added <= hi_px:
                    break
                width, length = max(1.0, width * 0.6), length * 0.6
            else:
                continue
            mask[sl] |= new
            count += added
            p = q
            if count >= target:
                break
            if q[0] in (0, h - 1) or q[1] in (0, w - 1):
                heading += math.pi  # bounce off the border
    else:
        raise RuntimeError(f"could not fill {coverage_bin} of a {h}x{w} mask")
    return mask
