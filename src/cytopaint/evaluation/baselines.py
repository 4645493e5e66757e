"""Classical inpainting baselines for the evaluation, on one uint8 grey-level image.

Each baseline is ``f(image, mask) -> repaired``: ``image`` uint8 (H, W), ``mask`` bool (H, W), True
where pixels are to be filled. The result is a new uint8 array whose pixels outside ``mask`` are
bit-identical to ``image`` (pasted back); ``image`` is never modified. A mask with no known pixel
outside it raises ValueError (there is nothing to inpaint from).

- biharmonic: minimises the squared Laplacian (thin plate) inside each connected hole,
  Δ²u = 0 with the known pixels as boundary condition (Damelin & Hoang 2018; scikit-image).
- telea: fast marching from the hole border, each pixel a weighted average of its known
  neighbours within ``radius_px`` (Telea 2004; OpenCV).
- navier_stokes: propagates isophotes into the hole by transporting image smoothness along
  them, a fluid-dynamics analogy (Bertalmio, Bertozzi & Sapiro 2001; OpenCV).
- mean_fill: the mean grey level of the known pixels everywhere inside the mask.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic


def _check(image: np.ndarray, mask: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"image must be a 2-D uint8 array, got {getattr(image, 'dtype', type(image))} "
                         f"with shape {getattr(image, 'shape', None)}")
    if not isinstance(mask, np.ndarray) or mask.dtype != bool:
        raise ValueError(f"mask must be a bool array, got {getattr(mask, 'dtype', type(mask))}")
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    if mask.all():
        raise ValueError("mask covers the whole image: no known pixel to inpaint from")


def _paste(image: np.ndarray, mask: np.ndarray, filled: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[mask] = filled[mask]
    return out


def biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Biharmonic inpainting (Δ²u = 0 in the hole), solved per connected hole, rounded to uint8."""
    _check(image, mask)
    if not mask.any():
        return image.copy()
    filled = inpaint_biharmonic(image, mask, split_into_regions=True)  # floats in [0, 1] (image / 255)
    return _paste(image, mask, np.clip(np.rint(filled * 255.0), 0, 255).astype(np.uint8))


def _opencv(image: np.ndarray, mask: np.ndarray, radius_px: float, flags: int) -> np.ndarray:
    _check(image, mask)
    if radius_px <= 0:
        raise ValueError(f"radius_px must be positive, got {radius_px}")
    if not mask.any():
        return image.copy()
    return _paste(image, mask, cv2.inpaint(image, mask.astype(np.uint8), float(radius_px), flags))


def telea(image: np.ndarray, mask: np.ndarray, radius_px: float = 5) -> np.ndarray:
    """Telea's fast-marching inpainting (cv2.INPAINT_TELEA) with neighbourhood radius radius_px.

    OpenCV's implementation is off by up to a few grey levels even where the image is constant.
    """
    return _opencv(image, mask, radius_px, cv2.INPAINT_TELEA)


def navier_stokes(image: np.ndarray, mask: np.ndarray, radius_px: float = 5) -> np.ndarray:
    """Navier-Stokes based inpainting (cv2.INPAINT_NS) with neighbourhood radius radius_px."""
    return _opencv(image, mask, radius_px, cv2.INPAINT_NS)


def mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Every masked pixel set to mean(image[~mask]), rounded half to even (np.rint)."""
    _check(image, mask)
    out = image.copy()
    out[mask] = np.uint8(np.rint(image[~mask].mean()))
    return out


BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "biharmonic": biharmonic,
    "telea": telea,
    "navier-stokes": navier_stokes,
    "mean-fill": mean_fill,
}
