"""Random training patches from sections: inside tissue, away from artifact masks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..io import masks, volume
from ..morphology import dilate


@dataclass
class SectionPatches:
    """One section at the training pixel size, held in memory, with the valid patch origins."""

    name: str
    image: np.ndarray  # (Y, X) uint8 at the training level
    origins: np.ndarray  # (n, 2) top-left corners of valid patches


def level_for_pixel_size(info: volume.ImageInfo, pixel_size_um: float) -> int:
    """The pyramid level whose pixel size equals ``pixel_size_um`` (within 1%)."""
    for level, (fy, fx) in enumerate(info.downscale):
        py, px = info.pixel_size_um[0] * fy, info.pixel_size_um[1] * fx
        if math.isclose(py, pixel_size_um, rel_tol=0.01) and math.isclose(px, pixel_size_um, rel_tol=0.01):
            return level
    sizes = ", ".join(f"{info.pixel_size_um[0] * fy:g}" for fy, _ in info.downscale)
    raise ValueError(f"{info.path}: no pyramid level at {pixel_size_um:g} µm/px (levels: {sizes} µm/px)")


def mask_at_level(mask: np.ndarray, mask_factor: tuple[int, int], level_factor: tuple[int, int],
                  shape: tuple[int, int]) -> np.ndarray:
    """Resample a boolean mask (factor vs level 0) onto a level's grid (factor vs level 0), conservatively (any)."""
    out = np.asarray(mask, dtype=bool)
    for axis in (0, 1):
        m, lv = mask_factor[axis], level_factor[axis]
        if m >= lv:
            out = np.repeat(out, m // lv, axis=axis)
        else:
            k = lv // m
            n = -(-out.shape[axis] // k) * k
            pad = [(0, 0), (0, 0)]
            pad[axis] = (0, n - out.shape[axis])
            out = np.pad(out, pad).reshape(*(out.shape[:axis]), n // k, k, *(out.shape[axis + 1:]))
            out = out.any(axis=axis + 1)
    fixed = np.zeros(shape, dtype=bool)
    h, w = min(shape[0], out.shape[0]), min(shape[1], out.shape[1])
    fixed[:h, :w] = out[:h, :w]
    return fixed


def valid_origins(image: np.ndarray, artifact: np.ndarray, patch: int, background: int = 225,
                  min_tissue: float = 0.9, stride: int | None = None) -> np.ndarray:
    """Top-left corners (on a stride grid) of patches with >= ``min_tissue`` tissue and no artifact pixel.

    Tissue is where the smoothed image is darker than ``background``.
    """
    stride = stride or max(1, patch // 8)
    tissue = ndimage.uniform_filter(image.astype(np.float32), size=9) < background
    ny, nx = image.shape
    if ny < patch or nx < patch:
        return np.zeros((0, 2), dtype=np.int64)

    def box_sums(a: np.ndarray) -> np.ndarray:
        c = np.pad(np.cumsum(np.cumsum(a.astype(np.int64), 0), 1), ((1, 0), (1, 0)))
        return c[patch:, patch:] - c[:-patch, patch:] - c[patch:, :-patch] + c[:-patch, :-patch]

    ok = (box_sums(tissue) >= min_tissue * patch * patch) & (box_sums(artifact) == 0)
    ys, xs = np.nonzero(ok[::stride, ::stride])
    return np.stack([ys * stride, xs * stride], axis=1).astype(np.int64)


def load_section(name: str, image_ref: str, mask_ref: str | None, pixel_size_um: float, patch: int,
                 z: int | None = None, margin_um: float = 10.0, background: int = 225) -> SectionPatches:
    """Read a section at the training pixel size and find the patches clear of artifacts (dilated by ``margin_um``)."""
    info = volume.read_info(image_ref)
    if info.dtype != np.uint8:
        raise ValueError(f"{image_ref}: training reads uint8 images, this one is {info.dtype}")
    level = level_for_pixel_size(info, pixel_size_um)
    image = np.asarray(volume.open_level(image_ref, level, z))
    artifact = np.zeros(image.shape, dtype=bool)
    if mask_ref:
        coarse, factor = masks.load_mask(mask_ref, info, z=z)
        level_factor = tuple(int(round(f)) for f in info.downscale[level])
        artifact = mask_at_level(np.asarray(coarse), factor, level_factor, image.shape)
        artifact = dilate(artifact, margin_um / pixel_size_um)
    return SectionPatches(name, image, valid_origins(image, artifact, patch, background))


class PatchSampler:
    """Draws patches uniformly over the valid origins of all sections, with random dihedral augmentation."""

    def __init__(self, sections: list[SectionPatches], patch: int):
        self.sections = [s for s in sections if len(s.origins)]
        if not self.sections:
            raise ValueError("no valid training patches: every section is background or artifact at this patch size")
        self.patch = patch
        self.weights = np.array([len(s.origins) for s in self.sections], dtype=np.float64)
        self.weights /= self.weights.sum()

    def sample(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """(batch, patch, patch) uint8 patches."""
        out = np.empty((batch, self.patch, self.patch), dtype=np.uint8)
        which = rng.choice(len(self.sections), size=batch, p=self.weights)
        for i, s in enumerate(which):
            sec = self.sections[s]
            y, x = sec.origins[rng.integers(len(sec.origins))]
            p = sec.image[y:y + self.patch, x:x + self.patch]
            p = np.rot90(p, k=int(rng.integers(4)))
            out[i] = p[:, ::-1] if rng.integers(2) else p
        return out

    @property
    def n_origins(self) -> int:
        return int(sum(len(s.origins) for s in self.sections))
