"""Artifact masks: loading at a chosen scale, nearest upsampling, dilation, components.

A mask is a label image (nonzero = artifact), inside the image store (``image#labels/NAME``)
or a separate OME-Zarr, possibly coarser than the image by an integer factor. Its grid is
taken as aligned with the image's: coarse pixel (i, j) covers image level-0 pixels
[i*fy, (i+1)*fy) x [j*fx, (j+1)*fx).
"""

from __future__ import annotations

import math
import os

import dask.array as da
import numpy as np
from scipy import ndimage

from .volume import ImageInfo, open_level, read_info

Factor = tuple[int, int]


def load_mask(
    mask_ref: str | os.PathLike[str],
    image_info: ImageInfo,
    z: int | None = None,
    level: int | None = None,
) -> tuple[da.Array, Factor]:
    """Open a mask as a lazy boolean (y, x) array at pyramid ``level`` (default: its finest).

    Returns the mask and its (y, x) scale factor relative to image level 0. Raises ValueError
    when the mask's pixel size is not an integer multiple of the image's, or when the physical
    extents (shape x pixel size) differ by more than one mask pixel. A 3-D mask needs ``z``
    (a level-0 plane index); a 2-D mask is the mask of whichever plane is being repaired.
    """
    ref = os.fspath(mask_ref)
    info = read_info(ref)
    level = 0 if level is None else level
    if not 0 <= level < info.n_levels:
        raise ValueError(f"{ref}: level {level} out of range (0..{info.n_levels - 1})")
    if info.axes == "zyx" and image_info.axes == "zyx" and info.shape[0] != image_info.shape[0]:
        raise ValueError(
            f"{ref}: {info.shape[0]} planes, image {image_info.path} has {image_info.shape[0]}"
        )
    shape = info.level_shapes[level][-2:]
    mask_px = [p * f for p, f in zip(info.pixel_size_um, info.downscale[level], strict=True)]
    factor = []
    axes = zip("yx", mask_px, image_info.pixel_size_um, shape, image_info.plane_shape, strict=True)
    for axis, mp, ip, mn, im in axes:
        ratio = mp / ip
        if ratio < 1 - 1e-6 or not math.isclose(ratio, round(ratio), rel_tol=1e-3):
            raise ValueError(
                f"{ref}: {axis} pixel size {mp:g} um at level {level} is not an integer multiple "
                f"of the image's {ip:g} um ({image_info.path})"
            )
        if abs(mn * mp - im * ip) > mp * (1 + 1e-6):
            raise ValueError(
                f"{ref}: {axis} extent {mn * mp:g} um (level {level}) disagrees with image "
                f"{image_info.path} extent {im * ip:g} um by more than one mask pixel"
            )
        factor.append(round(ratio))
    plane = open_level(ref, level, z if info.axes == "zyx" else None)
    return plane != 0, (factor[0], factor[1])


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
