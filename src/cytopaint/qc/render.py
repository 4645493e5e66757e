"""Images of the section report, as PNG data URIs (embedded in the page, no external resources).

`overview`: the section, input and repaired, with artifact and repaired outlines; `tile_views`: a
tile's before, after, mask and difference views and its repaired border.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from cytopaint.io import masks, volume

from .measure import SectionWindows
from .metrics import tissue_mask, white_level

PANEL_PX = 256  # tile views are reduced to at most this many pixels a side
OVERVIEW_PX = 1400  # the overview is reduced to at most this many pixels a side
COLORS = {"artifact": (245, 130, 32), "owned": (0, 190, 215), "other": (160, 110, 220), "ring": (60, 190, 90)}


def _png(rgb: np.ndarray) -> str:
    """A data URI of an (h, w) grey, (h, w, 3) RGB or (h, w, 4) RGBA uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def block_reduce(a: np.ndarray, f: int, how: str) -> np.ndarray:
    """Block mean (grey) or block any (masks) by an integer factor; edge blocks are partial."""
    if f <= 1:
        return a
    h, w = -(-a.shape[0] // f) * f, -(-a.shape[1] // f) * f
    if how == "any":
        p = np.zeros((h, w), dtype=bool)
        p[:a.shape[0], :a.shape[1]] = a
        return p.reshape(h // f, f, w // f, f).any(axis=(1, 3))
    p = np.pad(a.astype(np.float32), ((0, h - a.shape[0]), (0, w - a.shape[1])), mode="edge")
    return p.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _to_u8(a: np.ndarray, white: float) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float32) * (255.0 / white), 0, 255).astype(np.uint8)


def _outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The inner border of a mask, ``width`` pixels thick."""
    if not mask.any():
        return mask
    return mask & ~ndi.binary_erosion(mask, iterations=width, border_value=1)


def _paint(rgb: np.ndarray, where: np.ndarray, color: tuple[int, int, int], alpha: float = 1.0) -> None:
    rgb[where] = (1 - alpha) * rgb[where] + alpha * np.asarray(color, dtype=np.float32)


def _grey_rgb(grey_u8: np.ndarray) -> np.ndarray:
    return np.repeat(grey_u8[..., None], 3, axis=2).astype(np.float32)


def _diverging(d: np.ndarray, limit: float) -> np.ndarray:
    """Blue (darker after) - white (unchanged) - red (brighter after)."""
    t = np.clip(d / limit, -1, 1)[..., None]
    white = np.array([247, 247, 247], dtype=np.float32)
    red, blue = np.array([178, 24, 43], dtype=np.float32), np.array([33, 102, 172], dtype=np.float32)
    return np.where(t >= 0, white + t * (red - white), white - t * (blue - white)).astype(np.uint8)


def tile_views(a: dict[str, np.ndarray], ring: np.ndarray, white: float) -> dict[str, str]:
    """PNG data URIs of a tile window: before, after, the owned outline, mask and difference."""
    f = max(1, math.ceil(max(a["before"].shape) / PANEL_PX))
    before, after = block_reduce(a["before"], f, "mean"), block_reduce(a["after"], f, "mean")
    owned, artifact = block_reduce(a["owned"], f, "any"), block_reduce(a["artifact"], f, "any")
    other, ring_r = block_reduce(a["repaired"] & ~a["owned"], f, "any"), block_reduce(ring, f, "any")
    outline = np.zeros((*owned.shape, 4), dtype=np.uint8)
    outline[_outline(owned)] = (*COLORS["owned"], 255)
    mask = 0.55 * _grey_rgb(_to_u8(after, white)) + 0.45 * 255
    for region, key, alpha in ((ring_r, "ring", 0.3), (artifact, "artifact", 0.55), (other, "other", 0.6),
                               (owned, "owned", 0.6)):
        _paint(mask, region, COLORS[key], alpha)
    _paint(mask, _outline(artifact), COLORS["artifact"])
    diff = block_reduce(a["after"].astype(np.float32) - a["before"].astype(np.float32), f, "mean")
    return {"before": _png(_to_u8(before, white)), "after": _png(_to_u8(after, white)), "outline": _png(outline),
            "mask": _png(mask.astype(np.uint8)), "difference": _png(_diverging(diff, white / 2))}


def _level_for_overview(info: volume.ImageInfo) -> int:
    """The coarsest pyramid level whose longer side still has OVERVIEW_PX / 2 pixels (or level 0)."""
    best = 0
    for lv, shape in enumerate(info.level_shapes):
        if max(shape[-2:]) >= min(OVERVIEW_PX // 2, max(info.plane_shape)):
            best = lv
    return best


def _mask_at(mask_ref: str, info: volume.ImageInfo, z: int | None, factor: tuple[float, float],
             shape: tuple[int, int]) -> np.ndarray:
    """The artifact mask on a grid ``factor`` times coarser than level 0 (any-pooling)."""
    minfo = volume.read_info(mask_ref)
    level, mfac = 0, (1, 1)
    for lv in range(minfo.n_levels):
        _, f = masks.load_mask(mask_ref, info, z=z, level=lv)
        if f[0] <= factor[0] + 1e-6 and f[1] <= factor[1] + 1e-6:
            level, mfac = lv, f
    m = np.asarray(masks.load_mask(mask_ref, info, z=z, level=level)[0])
    ry, rx = factor[0] / mfac[0], factor[1] / mfac[1]
    if math.isclose(ry, round(ry)) and math.isclose(rx, round(rx)) and round(ry) == round(rx):
        m = block_reduce(m, int(round(ry)), "any")
    else:  # non-integer ratio: nearest
        m = m[np.minimum((np.arange(shape[0]) * ry).astype(int), m.shape[0] - 1)][
            :, np.minimum((np.arange(shape[1]) * rx).astype(int), m.shape[1] - 1)]
    out = np.zeros(shape, dtype=bool)
    out[:min(shape[0], m.shape[0]), :min(shape[1], m.shape[1])] = m[:shape[0], :shape[1]]
    return out


def overview(sec: SectionWindows) -> dict[str, Any]:
    """Overview images (input and repaired, outlined), their size, and tissue and repaired areas."""
    info = sec.info
    lv = _level_for_overview(info)
    fy, fx = info.downscale[lv]
    before = np.asarray(volume.open_level(sec.image_ref, lv, sec.z))
    after = np.asarray(volume.open_level(sec.output, lv))
    repaired = np.asarray(volume.open_level(sec.label_ref, lv)) > 0
    artifact = _mask_at(sec.mask_ref, info, sec.z, (fy, fx), before.shape)
    ps_ov = sec.ps * float(np.mean([fy, fx]))
    tissue = tissue_mask(after, ps_ov) | repaired
    f = max(1, math.ceil(max(before.shape) / OVERVIEW_PX))
    white = white_level(info.dtype)
    art_r, rep_r = block_reduce(artifact, f, "any"), block_reduce(repaired, f, "any")
    width = 2 if max(art_r.shape) >= 600 else 1
    images = {}
    for name, img in (("before", before), ("after", after)):
        rgb = _grey_rgb(_to_u8(block_reduce(img, f, "mean"), white))
        _paint(rgb, _outline(art_r, width), COLORS["artifact"])
        _paint(rgb, _outline(rep_r, width), COLORS["owned"])
        images[name] = _png(rgb.astype(np.uint8))
    return {"images": images, "shape": art_r.shape, "tissue_um2": float(tissue.sum()) * ps_ov ** 2, "level": lv}
