"""Artifact masks: loading one level of a mask label image, with its scale factor to the image.

A mask is a label image (nonzero = artifact), inside the image store (``image#labels/NAME``)
or a separate OME-Zarr, possibly coarser than the image by an integer factor. Its grid is
taken as aligned with the image's: coarse pixel (i, j) covers image level-0 pixels
[i*fy, (i+1)*fy) x [j*fx, (j+1)*fx).
"""

from __future__ import annotations

import math
import os

import dask.array as da

from cytopaint.io.volume import ImageInfo, open_level, read_info

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
