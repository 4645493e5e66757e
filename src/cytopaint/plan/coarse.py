"""The dilated artifact mask on the mask's own (coarse) grid, and per-core pixel counts from it.

Planning reads the coarse mask in bands of core rows. A coarse pixel counts as wholly in the
dilated mask D when any of its level-0 pixels is (`coarse_dilation` is exactly that set), so the
counts below are upper bounds of the level-0 counts, exact for a mask at level-0 resolution.
Memory is one band of the coarse mask (a few tens of MiB), whatever the section's size.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from .grid import AxisGrid, Factor, factors

_BAND_ELEMENTS = 1 << 22  # working-set target of one band, in array elements


class MaskArray(Protocol):
    """A 2-D array that can be sliced (numpy, zarr, dask); nonzero means artifact."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...


def coarse_structure(margin_px: int, factor: Factor) -> np.ndarray:
    """Structuring element of the exact coarse counterpart of a level-0 disk dilation.

    Coarse pixel q is in the dilation of a coarse mask by this element iff one of q's level-0
    pixels lies within ``margin_px`` (Euclidean) of a level-0 pixel of the upsampled mask: blocks
    d apart along an axis have their nearest pixels (|d| - 1) * f + 1 apart.
    """
    if margin_px < 0:
        raise ValueError(f"margin must be >= 0, got {margin_px}")
    gaps = []
    for f in factors(factor):
        k = 0 if margin_px == 0 else (margin_px - 1) // f + 1
        d = np.abs(np.arange(-k, k + 1))
        gaps.append(np.where(d == 0, 0, (d - 1) * f + 1))
    return gaps[0][:, None] ** 2 + gaps[1][None, :] ** 2 <= margin_px**2


def check_mask(mask: MaskArray, fy: int, fx: int, shape: tuple[int, int]) -> None:
    """Raise ValueError unless ``mask`` is 2-D and, scaled by (fy, fx), covers the plane ``shape``."""
    if len(mask.shape) != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    for n, f, extent, axis in zip(mask.shape, (fy, fx), shape, "yx", strict=True):
        if abs(n * f - extent) > f:
            raise ValueError(f"mask {axis} extent {n} x {f} px disagrees with the plane's {extent} px")


def _coarse_block(mask: MaskArray, rows: tuple[int, int], cols: tuple[int, int], fy: int, fx: int,
                  shape: tuple[int, int]) -> np.ndarray:
    """Coarse rows [a, b) x columns [c, d), False outside the mask and the image's coarse extent."""
    (a, b), (c, d) = rows, cols
    hp, wp = -(-shape[0] // fy), -(-shape[1] // fx)
    out = np.zeros((b - a, d - c), dtype=bool)
    ylo, yhi = max(a, 0), min(b, mask.shape[0], hp)
    xlo, xhi = max(c, 0), min(d, mask.shape[1], wp)
    if ylo < yhi and xlo < xhi:
        out[ylo - a : yhi - a, xlo - c : xhi - c] = np.asarray(mask[ylo:yhi, xlo:xhi]) != 0
    return out


def dilated_rows(
    mask: MaskArray, fy: int, fx: int, shape: tuple[int, int], margin_px: int, a: int, b: int,
    cols: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rows [a, b) of `coarse_dilation` (columns ``cols``, default all), reading only those plus a halo."""
    element = coarse_structure(margin_px, (fy, fx))
    ky, kx = element.shape[0] // 2, element.shape[1] // 2
    c, d = cols if cols is not None else (0, -(-shape[1] // fx))
    block = _coarse_block(mask, (a - ky, b + ky), (c - kx, d + kx), fy, fx, shape)
    out = np.zeros((b - a, d - c), dtype=bool)
    if not block.any():
        return out
    # the element is a stack of centred runs: dilate along x once per run length, shift in y
    half = np.array([np.flatnonzero(r).max() - kx for r in element])
    for k in np.unique(half):
        run = block if k == 0 else ndimage.maximum_filter1d(block.view(np.uint8), 2 * k + 1, axis=1, mode="constant")
        run = run.view(bool)[:, kx : kx + d - c]
        for dy in np.flatnonzero(half == k):
            out |= run[dy : dy + b - a]
    return out


def coarse_dilation(mask: MaskArray, factor: Factor, shape: tuple[int, int], margin_px: int) -> np.ndarray:
    """Coarse pixels holding at least one level-0 pixel of the dilated mask (exactly those).

    ``mask`` is the coarse artifact mask, ``factor`` level-0 pixels per mask pixel, ``shape`` the
    level-0 plane; the result has the plane's coarse extent, ceil(shape / factor).
    """
    fy, fx = factors(factor)
    check_mask(mask, fy, fx, shape)
    return dilated_rows(mask, fy, fx, shape, margin_px, 0, -(-shape[0] // fy))


def segment_counts(
    mask: MaskArray, fy: int, fx: int, shape: tuple[int, int], margin_px: int, gy: AxisGrid, gx: AxisGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cores that may own pixels, and per core segment the level-0 count of coarse-dilated pixels.

    Returns rows, cols (row-major order) and counts of shape (N, Sy, Sx). Works in bands of core
    rows: along each axis a count over [e0, e1) is a difference of level-0 prefix sums, and the
    prefix sum at e is f * (sum of whole blocks before e) + (e mod f) * (block containing e).
    """
    sy, sx = gy.n_segments, gx.n_segments
    wp = -(-shape[1] // fx)
    per_row = (-(-gy.core // fy) + 2 + 2 * sy) * wp + sy * gx.n * (sx + 1) * 3
    step = max(1, _BAND_ELEMENTS // per_row)
    block_x, offset_x = gx.edges // fx, gx.edges % fx
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for ra in range(0, gy.n, step):
        rb = min(ra + step, gy.n)
        i0, i1 = ra * gy.core // fy, -(-min(rb * gy.core, shape[0]) // fy)
        dilated = dilated_rows(mask, fy, fx, shape, margin_px, i0, i1)
        if not dilated.any():
            continue
        block = np.zeros((i1 - i0 + 1, wp), dtype=np.int64)  # one zero row past the band
        block[:-1] = dilated
        prefix_y = np.zeros_like(block)
        np.cumsum(block[:-1], axis=0, out=prefix_y[1:])
        edges = gy.edges[ra:rb]
        block_y, offset_y = edges // fy - i0, edges % fy
        cum_y = fy * prefix_y[block_y] + offset_y[..., None] * block[block_y]  # (nb, Sy + 1, wp)
        seg_rows = np.zeros((rb - ra, sy, wp + 1), dtype=np.int64)  # rows of each y-segment per column
        seg_rows[..., :-1] = np.diff(cum_y, axis=1)
        prefix_x = np.zeros_like(seg_rows)
        np.cumsum(seg_rows[..., :-1], axis=2, out=prefix_x[..., 1:])
        cum_x = fx * prefix_x[:, :, block_x] + offset_x * seg_rows[:, :, block_x]  # (nb, Sy, ncols, Sx + 1)
        counts = np.diff(cum_x, axis=3).transpose(0, 2, 1, 3)  # (nb, ncols, Sy, Sx)
        rr, cc = np.nonzero(counts.any(axis=(2, 3)))
        found.append((rr + ra, cc, counts[rr, cc].astype(np.int32)))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, sy, sx), np.int32)
    rows, cols, counts = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return rows.astype(np.int64), cols.astype(np.int64), counts
