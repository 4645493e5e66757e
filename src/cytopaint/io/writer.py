"""OME-Zarr section I/O, writing: empty multiscale images and labels, filled region by region.

Output images are created empty (all pyramid levels, downscale 2 in y and x, never in z) and
filled region by region; `cytopaint.io.pyramid.rebuild_pyramid` then recomputes the coarse levels
from level 0 where a region changed. NGFF 0.4 (zarr v2) and 0.5 (zarr v3) are written.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr

from .pyramid import rebuild_pyramid
from .volume import (DOWNSCALE, NGFF_ZARR_FORMAT, SUPPORTED_AXES, ImageInfo, label_ref, ome_attrs,
                     open_group, open_plane, read_info, read_multiscale)

_LABEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _per_axis(value: float | Sequence[float], ndim: int, what: str) -> tuple[float, ...]:
    """One value per axis; a scalar means (y, x) alike (a stack's z must be given explicitly)."""
    vals = (float(value),) * 2 if np.isscalar(value) else tuple(float(v) for v in value)
    if len(vals) == ndim:
        return vals
    raise ValueError(f"{what} needs {ndim} values for a {ndim}-D image, got {value!r}")


def _blocks(value: Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    vals = tuple(int(v) for v in value)
    if len(vals) == 2 and ndim == 3:
        vals = (1, *vals)
    if len(vals) != ndim or min(vals) < 1:
        raise ValueError(f"{what} {value!r} does not fit a {ndim}-D image")
    if ndim == 3 and vals[0] != 1:
        raise ValueError(f"{what} {value!r}: 3-D stacks are chunked one plane deep")
    return vals


def _level_shape(shape: tuple[int, ...], level: int) -> tuple[int, ...]:
    f = DOWNSCALE**level
    return (*shape[:-2], -(-shape[-2] // f), -(-shape[-1] // f))


def _datasets(
    scale: tuple[float, ...], trans: tuple[float, ...], n_levels: int
) -> list[dict[str, Any]]:
    """NGFF datasets for a yx pyramid of factor 2: coarse pixel centres sit on their children's."""
    out = []
    for level in range(n_levels):
        f = np.ones(len(scale))
        f[-2:] = DOWNSCALE**level
        s = np.asarray(scale) * f
        t = np.asarray(trans) + np.asarray(scale) * (f - 1) / 2
        out.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [float(v) for v in s]},
                    {"type": "translation", "translation": [float(v) for v in t]},
                ],
            }
        )
    return out


def _write_ome(group: zarr.Group, ngff: str, content: dict[str, Any]) -> None:
    """Merge ``content`` into the group's OME metadata, in the layout of the NGFF version."""
    if ngff == "0.5":
        group.attrs["ome"] = {**ome_attrs(group), "version": "0.5", **content}
    else:
        group.attrs.update(content)


def _create_arrays(
    group: zarr.Group,
    paths: Sequence[str],
    shapes: Sequence[tuple[int, ...]],
    *,
    dtype: np.dtype,
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    axes: str,
) -> None:
    v3 = group.metadata.zarr_format == 3
    for path, shape in zip(paths, shapes, strict=True):
        group.create_array(
            path,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            shards=shards,
            fill_value=0,
            dimension_names=list(axes) if v3 else None,
            chunk_key_encoding=None if v3 else {"name": "v2", "separator": "/"},
        )


def create_image(
    path: str | os.PathLike[str],
    shape: Sequence[int],
    *,
    pixel_size_um: float | Sequence[float],
    n_levels: int,
    chunks: Sequence[int] = (512, 512),
    dtype: str | np.dtype = "uint8",
    ngff: str = "0.5",
    shards: Sequence[int] | None = None,
    translation_um: Sequence[float] | None = None,
    overwrite: bool = False,
) -> ImageInfo:
    """Create an empty multiscale image (all levels, downscale 2 in y and x) to fill by region.

    ``shape`` is (Y, X) or (Z, Y, X). ``pixel_size_um`` is a scalar or (y, x) for 2-D, and
    (z, y, x) for a stack. ``chunks``/``shards`` are (y, x) or per axis; stacks are chunked one
    plane deep so that sections can be written in parallel. Shards need NGFF 0.5.
    """
    path = os.fspath(path)
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if ndim not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{path}: shape {shape} is not (Y, X) or (Z, Y, X)")
    if ngff not in NGFF_ZARR_FORMAT:
        raise ValueError(f"{path}: NGFF version {ngff!r} not supported (need 0.4 or 0.5)")
    if n_levels < 1:
        raise ValueError(f"{path}: n_levels must be >= 1, got {n_levels}")
    axes = SUPPORTED_AXES[ndim - 2]
    scale = _per_axis(pixel_size_um, ndim, "pixel_size_um")
    origin = (0.0,) * ndim if translation_um is None else translation_um
    trans = _per_axis(origin, ndim, "translation_um")
    chunk_shape = _blocks(chunks, ndim, "chunks")
    shard_shape = None if shards is None else _blocks(shards, ndim, "shards")
    if shard_shape is not None:
        if ngff != "0.5":
            raise ValueError(f"{path}: shards need NGFF 0.5 (zarr v3)")
        if any(s % c for s, c in zip(shard_shape, chunk_shape, strict=True)):
            raise ValueError(f"{path}: shards {shard_shape} not a multiple of chunks {chunk_shape}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: already exists")
    group = zarr.open_group(path, mode="w", zarr_format=NGFF_ZARR_FORMAT[ngff])
    _create_arrays(
        group,
        [str(level) for level in range(n_levels)],
        [_level_shape(shape, level) for level in range(n_levels)],
        dtype=np.dtype(dtype),
        chunks=chunk_shape,
        shards=shard_shape,
        axes=axes,
    )
    ms: dict[str, Any] = {
        "name": os.path.basename(os.path.normpath(path)),
        "type": "mean",
        "axes": [
            {"name": a, "type": "space", "unit": "micrometer"} for a in axes
        ],
        "datasets": _datasets(scale, trans, n_levels),
    }
    if ngff == "0.4":
        ms["version"] = "0.4"
    _write_ome(group, ngff, {"multiscales": [ms]})
    return read_info(path)


def create_like(
    src_info: ImageInfo, path: str | os.PathLike[str], *, overwrite: bool = False
) -> ImageInfo:
    """Create an empty image mirroring an input's axes, shape, dtype, scale, origin, chunking,
    shards, pyramid depth and NGFF version (stacks are chunked one plane deep; levels halve)."""
    one_plane = (lambda b: (1, *b[1:])) if src_info.axes == "zyx" else (lambda b: b)
    return create_image(
        path,
        src_info.shape,
        pixel_size_um=src_info.scale_um,
        n_levels=src_info.n_levels,
        chunks=one_plane(src_info.chunks),
        dtype=src_info.dtype,
        ngff=src_info.ngff,
        shards=None if src_info.shards is None else one_plane(src_info.shards),
        translation_um=src_info.translation_um,
        overwrite=overwrite,
    )


def create_label(
    image_path: str | os.PathLike[str], name: str, *, dtype: str | np.dtype = "uint8"
) -> ImageInfo:
    """Create an empty ``labels/<name>`` with the image's shape, levels, scale and chunks."""
    image_path = os.fspath(image_path)
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"{image_path}: label name {name!r} must match [A-Za-z0-9_.-]+")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"{image_path}: label dtype must be integer, got {dtype}")
    image = open_group(image_path, "r+")
    info, ms = read_multiscale(image, image_path)
    if info.is_label:
        raise ValueError(f"{image_path}: is a label image, cannot hold labels")
    labels = image.require_group("labels")
    names = list(ome_attrs(labels).get("labels", []))
    if name in names or name in labels:
        raise FileExistsError(f"{image_path}: label {name!r} already exists")
    group = labels.create_group(name)
    _create_arrays(
        group,
        info.level_paths,
        info.level_shapes,
        dtype=dtype,
        chunks=info.chunks,
        shards=info.shards,
        axes=info.axes,
    )
    label_ms = copy.deepcopy(ms)
    label_ms.update(name=name, type="max")
    _write_ome(
        group,
        info.ngff,
        {
            "multiscales": [label_ms],
            "image-label": {"version": info.ngff, "source": {"image": "../../"}},
        },
    )
    _write_ome(labels, info.ngff, {"labels": [*names, name]})
    return read_info(label_ref(image_path, name))


# --------------------------------------------------------------------------- writing


def write_region(
    path: str | os.PathLike[str],
    block: np.ndarray,
    y0: int,
    x0: int,
    *,
    level: int = 0,
    label: str | None = None,
    z: int | None = None,
) -> None:
    """Write a 2-D block at (y0, x0) into one level of an image, or of its label ``label``."""
    ref = label_ref(path, label)
    arr, lead = open_plane(ref, level, z, "r+")
    block = np.asarray(block)
    if block.ndim != 2:
        raise ValueError(f"{ref}: block must be 2-D (y, x), got shape {block.shape}")
    h, w = block.shape
    ny, nx = arr.shape[-2:]
    if y0 < 0 or x0 < 0 or y0 + h > ny or x0 + w > nx:
        raise ValueError(
            f"{ref}: block {block.shape} at {(y0, x0)} exceeds level {level} of shape {(ny, nx)}"
        )
    if not np.can_cast(block.dtype, arr.dtype, casting="safe"):
        raise ValueError(f"{ref}: block dtype {block.dtype} does not fit {arr.dtype} without loss")
    arr[(*lead, slice(y0, y0 + h), slice(x0, x0 + w))] = block.astype(arr.dtype, copy=False)



def write_section(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    pixel_size_um: float,
    n_levels: int,
    labels: dict[str, np.ndarray] | None = None,
    chunks: Sequence[int] = (512, 512),
    ngff: str = "0.5",
) -> ImageInfo:
    """Write an in-memory 2-D image (and label images of the same shape) with their pyramids."""
    image = np.asarray(image)
    info = create_image(path, image.shape, pixel_size_um=pixel_size_um, n_levels=n_levels, chunks=chunks,
                        dtype=image.dtype, ngff=ngff)
    write_region(path, image, 0, 0)
    rebuild_pyramid(path)
    for name, label in (labels or {}).items():
        if label.shape != image.shape:
            raise ValueError(f"{path}: label {name} shape {label.shape} differs from the image's {image.shape}")
        create_label(path, name, dtype=label.dtype if label.dtype != bool else np.uint8)
        write_region(path, label.astype(np.uint8) if label.dtype == bool else label, 0, 0, label=name)
        rebuild_pyramid(path, label=name)
    return info
