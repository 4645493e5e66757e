"""Pyramid levels of OME-Zarr images: 2x2 reductions and the rebuild of coarse levels from level 0.

Images take the 2x2 mean rounded half up (integers), labels the 2x2 maximum (a coarse label
pixel is nonzero when any of its children is; with class values the largest wins). An odd edge
averages (or maximises over) the pixels present.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .volume import DOWNSCALE, Region, label_ref, open_group, plane_index, read_multiscale


def _pad_even(a: np.ndarray) -> np.ndarray:
    pad = [(0, a.shape[0] % 2), (0, a.shape[1] % 2)]
    return np.pad(a, pad, mode="edge") if any(p for _, p in pad) else a


def downsample_mean(a: np.ndarray) -> np.ndarray:
    """2x2 mean of a 2-D array, integers rounded half up; an odd edge averages what is there."""
    a = _pad_even(np.asarray(a))
    if a.dtype.kind in "iu":
        acc = np.dtype(f"int{min(64, 16 * a.dtype.itemsize)}")
        s = a[0::2, 0::2].astype(acc) + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
        return ((s + 2) // 4).astype(a.dtype)
    s = a[0::2, 0::2].astype(np.float64) + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
    return (s / 4).astype(a.dtype)


def downsample_max(a: np.ndarray) -> np.ndarray:
    """2x2 maximum of a 2-D array (label pyramids); an odd edge uses what is there."""
    a = _pad_even(np.asarray(a))
    top = np.maximum(a[0::2, 0::2], a[0::2, 1::2])
    return np.maximum(top, np.maximum(a[1::2, 0::2], a[1::2, 1::2]))


def _align(lo: int, hi: int, step: int, size: int) -> tuple[int, int]:
    return lo // step * step, min(-(-hi // step) * step, size)


def rebuild_pyramid(
    path: str | os.PathLike[str],
    *,
    label: str | None = None,
    region: Region | None = None,
    z: int | None = None,
    window_px: int = 2048,
) -> list[Region]:
    """Recompute levels >= 1 from level 0 where ``region`` (level-0 y0, x0, h, w) changed.

    At each level the dirty region is widened to whole chunks (shards if any), so the result
    equals a full rebuild and every chunk is rewritten whole. Work goes in windows of about
    ``window_px`` squared output pixels. A stack rebuilds plane ``z`` (all planes if None).
    Returns the region rewritten at each level >= 1 (in that level's pixels). Neighbouring
    regions share coarse chunks: run one rebuild per store at a time.
    """
    ref = label_ref(path, label)
    group = open_group(ref, "r+")
    info, _ = read_multiscale(group, ref)
    halving = all(
        math.isclose(f, DOWNSCALE**i) and shape[:-2] == info.shape[:-2]
        for i, (fyx, shape) in enumerate(zip(info.downscale, info.level_shapes, strict=True))
        for f in fyx
    )
    if not halving:
        raise ValueError(f"{ref}: not a factor-2 yx pyramid {info.downscale}; cannot rebuild")
    reduce = downsample_max if info.is_label else downsample_mean
    arrays = [group[p] for p in info.level_paths]
    block = info.shards or info.chunks
    by, bx = block[-2:]
    ny, nx = info.plane_shape
    y0, x0, h, w = (0, 0, ny, nx) if region is None else region
    ya, yb = _align(max(y0, 0), min(y0 + h, ny), by, ny)
    xa, xb = _align(max(x0, 0), min(x0 + w, nx), bx, nx)
    if ya >= yb or xa >= xb:
        return []
    if info.axes == "yx" or z is not None:
        planes = [plane_index(info, 0, z)]
    else:
        planes = [(zz,) for zz in range(info.shape[0])]
    wy, wx = max(window_px // by, 1) * by, max(window_px // bx, 1) * bx
    done = []
    for level in range(1, info.n_levels):
        src, dst = arrays[level - 1], arrays[level]
        ly, lx = dst.shape[-2:]
        sy, sx = src.shape[-2:]
        ya, yb = _align(ya // 2, -(-yb // 2), by, ly)
        xa, xb = _align(xa // 2, -(-xb // 2), bx, lx)
        for lead in planes:
            for wy0 in range(ya, yb, wy):
                wy1 = min(wy0 + wy, yb)
                for wx0 in range(xa, xb, wx):
                    wx1 = min(wx0 + wx, xb)
                    rows = slice(2 * wy0, min(2 * wy1, sy))
                    cols = slice(2 * wx0, min(2 * wx1, sx))
                    out = reduce(src[(*lead, rows, cols)])
                    dst[(*lead, slice(wy0, wy1), slice(wx0, wx1))] = out
        done.append((ya, xa, yb - ya, xb - xa))
    return done
