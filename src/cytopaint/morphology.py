"""Boolean masks as arrays: nearest upsampling of a coarse mask, Euclidean dilation, components.

Pure functions on numpy (and dask) arrays; `cytopaint.io.masks` loads the masks they work on.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
from scipy import ndimage

Factor = tuple[int, int]


def upsample_window(
    mask_coarse: np.ndarray | da.Array,
    factor: int | Factor,
    y0: int,
    x0: int,
    h: int,
    w: int,
) -> np.ndarray:
    """Level-0 window (y0, x0, h, w) of a coarse mask by nearest neighbour; False outside it."""
    fy, fx = (factor, factor) if isinstance(factor, int) else factor
    ny, nx = mask_coarse.shape
    out = np.zeros((h, w), dtype=bool)
    ya, yb = max(y0, 0), min(y0 + h, ny * fy)
    xa, xb = max(x0, 0), min(x0 + w, nx * fx)
    if ya >= yb or xa >= xb:
        return out
    cy0, cy1 = ya // fy, -(-yb // fy)
    cx0, cx1 = xa // fx, -(-xb // fx)
    coarse = np.asarray(mask_coarse[cy0:cy1, cx0:cx1]).astype(bool)
    fine = np.repeat(np.repeat(coarse, fy, axis=0), fx, axis=1)
    oy, ox = ya - cy0 * fy, xa - cx0 * fx
    out[ya - y0 : yb - y0, xa - x0 : xb - x0] = fine[oy : oy + yb - ya, ox : ox + xb - xa]
    return out


def _dilate_np(mask: np.ndarray, radius: float) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    # Only the mask's bounding box grown by the radius can change: transform just that.
    r = math.ceil(radius)
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    y0, y1 = max(ys[0] - r, 0), min(ys[-1] + r + 1, mask.shape[0])
    x0, x1 = max(xs[0] - r, 0), min(xs[-1] + r + 1, mask.shape[1])
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = ndimage.distance_transform_edt(~mask[y0:y1, x0:x1]) <= radius
    return out


def dilate(mask: np.ndarray | da.Array, radius_px: float) -> np.ndarray | da.Array:
    """Dilate by a Euclidean disk of ``radius_px`` (pixels within that distance of the mask).

    Uses an exact Euclidean distance transform, linear in the pixel count. A dask mask is
    dilated chunk by chunk with an overlap of the radius.
    """
    if isinstance(mask, da.Array):
        depth = max(math.ceil(radius_px), 0)
        return mask.astype(bool).map_overlap(
            _dilate_np, depth=depth, boundary="none", radius=radius_px, dtype=bool
        )
    return _dilate_np(mask, radius_px)


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label 8-connected components of a boolean mask.

    Returns ``(labels, boxes)``: an int32 label image (0 = background, components 1..n) and an
    (n, 4) int array whose row k-1 is the bounding box (y0, x0, h, w) of component k.
    """
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    boxes = [
        (ys.start, xs.start, ys.stop - ys.start, xs.stop - xs.start)
        for ys, xs in ndimage.find_objects(labels)
    ]
    return labels.astype(np.int32, copy=False), np.array(boxes, dtype=np.int64).reshape(n, 4)


_BAND_PX = 1 << 26  # mask pixels AnyPooled reads at once: a few times this in bytes, whatever the mask


class AnyPooled:
    """A coarser view of a 2-D mask: pixel (i, j) is True where any mask pixel of block (i, j) is nonzero.

    Blocks are ``ky`` x ``kx`` mask pixels (those at the far edges hold what is there), so the view is
    a conservative summary of the mask, whatever the mask's own pyramid does. It is lazy: slicing it
    with plain ``[y0:y1, x0:x1]`` reads just the mask rows and columns under those blocks, from
    numpy, zarr or dask alike, in bands of rows, so that pooling a whole full-resolution mask holds
    a band of it at a time.
    """

    def __init__(self, mask: np.ndarray | da.Array, factor: Factor) -> None:
        if len(mask.shape) != 2:
            raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
        self.mask, (self.ky, self.kx) = mask, (int(factor[0]), int(factor[1]))
        if self.ky < 1 or self.kx < 1:
            raise ValueError(f"pooling factor must be >= 1, got {factor}")

    @property
    def shape(self) -> tuple[int, int]:
        return -(-self.mask.shape[0] // self.ky), -(-self.mask.shape[1] // self.kx)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        (y0, y1, ys), (x0, x1, xs) = rows.indices(self.shape[0]), cols.indices(self.shape[1])
        if ys != 1 or xs != 1:
            raise ValueError("AnyPooled takes plain slices with step 1")
        y1, x1 = max(y1, y0), max(x1, x0)
        h, w = y1 - y0, x1 - x0
        out = np.zeros((h, w), dtype=bool)
        band = max(1, _BAND_PX // max(1, w * self.kx * self.ky))  # output rows pooled per read
        for b0 in range(0, h, band):
            b1 = min(b0 + band, h)
            fine = np.asarray(self.mask[(y0 + b0) * self.ky : (y0 + b1) * self.ky,
                                        x0 * self.kx : x1 * self.kx]) != 0
            padded = np.zeros(((b1 - b0) * self.ky, w * self.kx), dtype=bool)
            padded[: fine.shape[0], : fine.shape[1]] = fine
            out[b0:b1] = padded.reshape(b1 - b0, self.ky, w, self.kx).any(axis=(1, 3))
        return out
