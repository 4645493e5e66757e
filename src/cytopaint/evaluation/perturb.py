"""Disturbances of the paper's Figure 3 (after Heusel et al. 2017), to check that the FCD rises with them.

Each takes a uint8 (H, W) image and a level and returns a new uint8 image; level 0 returns an
unchanged copy. All share the signature f(image, level, rng): rng is a numpy Generator or a seed
(passed to np.random.default_rng), so a result is reproducible from its seed; the blur, which is
deterministic, ignores it and does not need it.

- gaussian_noise: I + n, n ~ N(0, sigma²) in grey levels, rounded and clipped to 0..255.
- gaussian_blur: I * G_sigma (sigma in pixels, reflected border), rounded.
- salt_and_pepper: round(fraction x H x W) pixels drawn without replacement, each set to 0 or 255
  with probability 1/2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

Rng = np.random.Generator | int


def _check(image: np.ndarray, level: float, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"image must be a 2-D uint8 array, got {getattr(image, 'dtype', type(image))}")
    if level < 0:
        raise ValueError(f"{name} must be >= 0, got {level}")


def gaussian_noise(image: np.ndarray, sigma: float, rng: Rng) -> np.ndarray:
    """I + N(0, sigma²) per pixel (sigma in grey levels), rounded and clipped to uint8."""
    _check(image, sigma, "sigma")
    if sigma == 0:
        return image.copy()
    noisy = image + np.random.default_rng(rng).normal(0.0, sigma, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, sigma_px: float, rng: Rng | None = None) -> np.ndarray:
    """Gaussian filter of standard deviation sigma_px, rounded; deterministic, rng is ignored."""
    _check(image, sigma_px, "sigma_px")
    if sigma_px == 0:
        return image.copy()
    blurred = ndi.gaussian_filter(image.astype(np.float32), sigma_px, mode="reflect")
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def salt_and_pepper(image: np.ndarray, fraction: float, rng: Rng) -> np.ndarray:
    """round(fraction x size) distinct pixels set to 0 or 255 (probability 1/2 each)."""
    _check(image, fraction, "fraction")
    if fraction > 1:
        raise ValueError(f"fraction must be <= 1, got {fraction}")
    gen = np.random.default_rng(rng)
    n = round(fraction * image.size)
    out = image.copy()
    out.flat[gen.choice(image.size, n, replace=False)] = gen.integers(0, 2, n, dtype=np.uint8) * np.uint8(255)
    return out


# name: (disturbance, levels from none to strong)
PERTURBATIONS: dict[str, tuple[Callable[[np.ndarray, float, Rng], np.ndarray], tuple[float, ...]]] = {
    "gaussian-noise": (gaussian_noise, (0, 5, 10, 20, 40)),
    "gaussian-blur": (gaussian_blur, (0, 0.5, 1, 2, 4)),
    "salt-and-pepper": (salt_and_pepper, (0, 0.01, 0.02, 0.05, 0.1)),
}
