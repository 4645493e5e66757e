"""Smaller windows for tiles that own little: the sampler's cost follows the window, not the artifact.

A grid tile reads a full model tile (T x T) whatever it owns, so an isolated crystal of a few µm
costs as much as a tile deep in a fold. A tile whose owned pixels fit in the central
``core_fraction`` of a smaller square window of an allowed side S (the network's halvings of T,
`cytopaint.diffusion.unet.UNetConfig.sides`) is given that window instead, centred on what it
owns within its whole window, and its core is cut to the window. The ownership contract is kept:
the pixels of D in the old core all lie in the new one (the bounding box is taken from the coarse
mask, which covers D), so every pixel of D still has exactly one owner, and the window is still at
least ``min_known`` known. Only first-wave tiles are shrunk: isolated small artifacts and the rims
of large ones. At T = 1024 a 256 px window costs 1/16 of a tile per network evaluation.

Everything here reads the coarse mask of `cytopaint.plan.coarse`: bounding boxes are upper bounds
and known fractions lower bounds of the level-0 values, exact for a mask at level 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .coarse import MaskArray, dilated_rows
from .table import STATUS_OK


def _coarse_dilated(mask: MaskArray, fy: int, fx: int, shape: tuple[int, int], margin_px: int,
                    y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, int, int]:
    """Coarse pixels of D meeting the level-0 box [y0, y1) x [x0, x1), and its first coarse row and column."""
    a, b = y0 // fy, -(-y1 // fy)
    c, d = x0 // fx, -(-x1 // fx)
    return dilated_rows(mask, fy, fx, shape, margin_px, a, b, cols=(c, d)), a, c


def _extent(hits: np.ndarray, first: int, f: int, lo: int, hi: int) -> tuple[int, int] | None:
    """Level-0 span [start, stop) of the coarse indices ``hits`` (offset ``first``), clipped to [lo, hi)."""
    idx = np.flatnonzero(hits)
    if idx.size == 0:
        return None
    start, stop = max((first + idx[0]) * f, lo), min((first + idx[-1] + 1) * f, hi)
    return (start, stop) if start < stop else None


def _overlap(first: int, n: int, f: int, lo: int, hi: int) -> np.ndarray:
    """Level-0 length of each of ``n`` coarse pixels from ``first`` inside [lo, hi)."""
    starts = (first + np.arange(n)) * f
    return np.clip(np.minimum(starts + f, hi) - np.maximum(starts, lo), 0, None)


def shrink_windows(plan: pd.DataFrame, mask: MaskArray, factor: tuple[int, int], shape: tuple[int, int],
                   margin_px: int, sides: Sequence[int], core_fraction: float, min_known: float) -> pd.DataFrame:
    """The plan with a smaller window (and core cut to it) for every tile that owns little.

    ``sides`` are the window sides allowed below the tile's own; a tile of the first wave (status ok)
    takes the smallest S whose central ``core_fraction`` holds the bounding box of its owned pixels
    and whose window, centred on that box and shifted inside the tile's own window, is at least
    ``min_known`` known. Inside its own window, it reads nothing the wave's scheduling did not
    allow it (no pixel that a tile of the same wave generates). Other tiles keep their windows:
    later waves own the inside of large holes, and a smaller window would need their known context
    recounted.
    """
    fy, fx = factor
    out = plan.copy()
    for i, tile in enumerate(plan.itertuples(index=False)):
        if tile.status != STATUS_OK or tile.wave != 0:
            continue
        cy0, cx0 = int(tile.core_y0), int(tile.core_x0)
        cy1, cx1 = cy0 + int(tile.core_height), cx0 + int(tile.core_width)
        d, a, c = _coarse_dilated(mask, fy, fx, shape, margin_px, cy0, cy1, cx0, cx1)
        ys, xs = _extent(d.any(axis=1), a, fy, cy0, cy1), _extent(d.any(axis=0), c, fx, cx0, cx1)
        if ys is None or xs is None:
            continue
        bh, bw = ys[1] - ys[0], xs[1] - xs[0]
        wy0, wx0 = int(tile.y0), int(tile.x0)
        for side in sorted(s for s in sides if s < min(int(tile.height), int(tile.width))):
            if max(bh, bw) > core_fraction * side:
                continue
            y0 = min(max((ys[0] + ys[1] - side) // 2, wy0), wy0 + int(tile.height) - side)
            x0 = min(max((xs[0] + xs[1] - side) // 2, wx0), wx0 + int(tile.width) - side)
            win, wa, wc = _coarse_dilated(mask, fy, fx, shape, margin_px, y0, y0 + side, x0, x0 + side)
            unknown = _overlap(wa, win.shape[0], fy, y0, y0 + side) @ win @ _overlap(wc, win.shape[1], fx, x0,
                                                                                      x0 + side)
            known = 1.0 - float(unknown) / side**2
            if known < min_known:
                continue
            ny0, nx0 = max(cy0, y0), max(cx0, x0)
            out.iloc[i, out.columns.get_indexer(["y0", "x0", "height", "width", "core_y0", "core_x0", "core_height",
                                                "core_width", "known_fraction"])] = [
                y0, x0, side, side, ny0, nx0, min(cy1, y0 + side) - ny0, min(cx1, x0 + side) - nx0, known]
            break
    return out
