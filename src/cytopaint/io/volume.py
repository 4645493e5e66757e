"""OME-Zarr section I/O: metadata, lazy plane reads, region reads and writes, pyramids, labels.

Sections are 2-D images (axes ``yx``) or planes of 3-D stacks (axes ``zyx``, plane chosen by
``z``). NGFF 0.4 (zarr v2) and 0.5 (zarr v3) are read and written. A store reference may name a
group inside the store with ``#``: ``section.ome.zarr#labels/artifacts``.

Inputs are only ever opened read-only. Output images are created empty (all pyramid levels,
downscale 2 in y and x, never in z) and filled region by region; ``rebuild_pyramid`` then
recomputes the coarse levels from level 0, only where a region changed, in bounded windows.
Pyramid methods: images take the 2x2 mean rounded half up (integers), labels the 2x2 maximum
(a coarse label pixel is nonzero when any of its children is; with class values the largest
wins). An odd edge averages (or maximises over) the pixels present.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import zarr
import zarr.errors

SUPPORTED_AXES = ("yx", "zyx")
NGFF_ZARR_FORMAT = {"0.4": 2, "0.5": 3}
DOWNSCALE = 2
_UNIT_TO_UM = {
    None: 1.0,
    "angstrom": 1e-4,
    "nanometer": 1e-3,
    "micrometer": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
}
_LABEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")

Region = tuple[int, int, int, int]  # (y0, x0, h, w)


@dataclass(frozen=True)
class ImageInfo:
    """Metadata of one OME-Zarr multiscale image or label image (level 0 unless stated)."""

    path: str  # store reference, with '#group' when the multiscale is inside the store
    axes: str  # "yx" or "zyx"
    shape: tuple[int, ...]
    dtype: np.dtype
    scale_um: tuple[float, ...]  # per axis, micrometer
    translation_um: tuple[float, ...]  # per axis, micrometer
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    level_paths: tuple[str, ...]
    level_shapes: tuple[tuple[int, ...], ...]
    downscale: tuple[tuple[float, float], ...]  # (y, x) factor of each level vs level 0
    zarr_format: int
    ngff: str  # "0.4" or "0.5"
    is_label: bool

    @property
    def plane_shape(self) -> tuple[int, int]:
        """(Y, X) of level 0."""
        return self.shape[-2], self.shape[-1]

    @property
    def pixel_size_um(self) -> tuple[float, float]:
        """(y, x) pixel size of level 0 in micrometer."""
        return self.scale_um[-2], self.scale_um[-1]

    @property
    def n_levels(self) -> int:
        return len(self.level_paths)


# --------------------------------------------------------------------------- references


def split_ref(ref: str | os.PathLike[str]) -> tuple[str, str]:
    """Split ``store#group/path`` into the store and the group path inside it ('' if none)."""
    store, _, sub = os.fspath(ref).partition("#")
    return store, sub.strip("/")


def _label_ref(path: str | os.PathLike[str], label: str | None) -> str:
    path = os.fspath(path)
    if label is None:
        return path
    store, sub = split_ref(path)
    return f"{store}#{'/'.join(p for p in (sub, 'labels', label) if p)}"


def _open_group(ref: str | os.PathLike[str], mode: str) -> zarr.Group:
    ref = os.fspath(ref)
    store, sub = split_ref(ref)
    if "://" not in store and not os.path.exists(store):
        raise FileNotFoundError(f"{store}: no such OME-Zarr store")
    try:
        group = zarr.open_group(store, mode=mode)
    except (zarr.errors.NodeNotFoundError, zarr.errors.ContainsArrayError) as err:
        raise ValueError(f"{store}: not a zarr group ({err})") from None
    if sub:
        try:
            group = group[sub]
        except KeyError:
            raise FileNotFoundError(f"{ref}: no group {sub!r} in {store}") from None
        if not isinstance(group, zarr.Group):
            raise ValueError(f"{ref}: {sub!r} is an array, not a multiscale group")
    return group


# --------------------------------------------------------------------------- metadata


def _ome_attrs(group: zarr.Group) -> dict[str, Any]:
    attrs = group.attrs.asdict()
    if group.metadata.zarr_format == 3:
        ome = attrs.get("ome")
        return dict(ome) if isinstance(ome, dict) else {}
    return attrs


def _compose(
    transforms: Sequence[dict[str, Any]], ndim: int, ref: str
) -> tuple[np.ndarray, np.ndarray]:
    """Fold a list of NGFF scale/translation transforms into one (scale, translation)."""
    scale, trans = np.ones(ndim), np.zeros(ndim)
    for t in transforms:
        kind = t.get("type")
        if kind == "identity":
            continue
        if kind not in ("scale", "translation") or kind not in t:
            raise ValueError(f"{ref}: unsupported coordinate transformation {t}")
        values = np.asarray(t[kind], dtype=float)
        if values.shape != (ndim,):
            raise ValueError(f"{ref}: transformation {t} does not have {ndim} values")
        if kind == "scale":
            scale, trans = scale * values, trans * values
        else:
            trans = trans + values
    return scale, trans


def _read_multiscale(group: zarr.Group, ref: str) -> tuple[ImageInfo, dict[str, Any]]:
    """Parse and check a multiscale group; also return its raw (first) multiscales entry."""
    ome = _ome_attrs(group)
    multiscales = ome.get("multiscales")
    if not multiscales:
        raise ValueError(f"{ref}: not an OME-Zarr multiscale image (no 'multiscales' metadata)")
    ms = multiscales[0]
    ngff = str(ome.get("version", ms.get("version")))
    if ngff not in NGFF_ZARR_FORMAT:
        raise ValueError(f"{ref}: NGFF version {ngff!r} not supported (need 0.4 or 0.5)")
    axes_meta = ms.get("axes", [])
    axes = "".join(a["name"] if isinstance(a, dict) else str(a) for a in axes_meta)
    if axes not in SUPPORTED_AXES:
        raise ValueError(f"{ref}: axes {axes!r} not supported (need 'yx' or 'zyx')")
    to_um = []
    for a in axes_meta:
        unit = a.get("unit") if isinstance(a, dict) else None
        if unit not in _UNIT_TO_UM:
            raise ValueError(f"{ref}: unit {unit!r} of axis {a['name']!r} not supported")
        to_um.append(_UNIT_TO_UM[unit])
    ndim = len(axes)
    glob = ms.get("coordinateTransformations", [])
    level_paths, level_shapes, scales = [], [], []
    for ds in ms["datasets"]:
        try:
            arr = group[ds["path"]]
        except KeyError:
            raise ValueError(f"{ref}: dataset {ds['path']!r} listed but missing") from None
        if "coordinateTransformations" not in ds:
            raise ValueError(f"{ref}: dataset {ds['path']!r} has no coordinateTransformations")
        if arr.ndim != ndim:
            raise ValueError(f"{ref}: dataset {ds['path']!r} has {arr.ndim} dims, axes {axes!r}")
        scale, trans = _compose([*ds["coordinateTransformations"], *glob], ndim, ref)
        level_paths.append(ds["path"])
        level_shapes.append(tuple(int(s) for s in arr.shape))
        scales.append((scale * to_um, trans * to_um))
    arr0 = group[level_paths[0]]
    s0, t0 = scales[0]
    info = ImageInfo(
        path=ref,
        axes=axes,
        shape=level_shapes[0],
        dtype=np.dtype(arr0.dtype),
        scale_um=tuple(float(v) for v in s0),
        translation_um=tuple(float(v) for v in t0),
        chunks=tuple(int(c) for c in arr0.chunks),
        shards=tuple(int(s) for s in arr0.shards) if arr0.shards else None,
        level_paths=tuple(level_paths),
        level_shapes=tuple(level_shapes),
        downscale=tuple((float(s[-2] / s0[-2]), float(s[-1] / s0[-1])) for s, _ in scales),
        zarr_format=int(group.metadata.zarr_format),
        ngff=ngff,
        is_label="image-label" in ome,
    )
    return info, ms


def read_info(path: str | os.PathLike[str]) -> ImageInfo:
    """Read the metadata of a multiscale image (``path`` may carry ``#labels/NAME``)."""
    ref = os.fspath(path)
    return _read_multiscale(_open_group(ref, "r"), ref)[0]


# --------------------------------------------------------------------------- reading


def _level_array(group: zarr.Group, info: ImageInfo, level: int) -> zarr.Array:
    if not 0 <= level < info.n_levels:
        raise ValueError(f"{info.path}: level {level} out of range (0..{info.n_levels - 1})")
    return group[info.level_paths[level]]


def _plane_index(info: ImageInfo, level: int, z: int | None) -> tuple[int, ...]:
    """Leading index that selects the plane ``z`` (a level-0 index) at ``level``."""
    if info.axes == "yx":
        if z is not None:
            raise ValueError(f"{info.path}: z={z} given for a 2-D image")
        return ()
    if z is None:
        raise ValueError(f"{info.path}: a 3-D stack needs z")
    if not 0 <= z < info.shape[0]:
        raise ValueError(f"{info.path}: z={z} out of range (0..{info.shape[0] - 1})")
    return (z * info.level_shapes[level][0] // info.shape[0],)


def open_level(path: str | os.PathLike[str], level: int = 0, z: int | None = None) -> da.Array:
    """Lazy 2-D (y, x) dask array of one pyramid level of a section (opened read-only)."""
    ref = os.fspath(path)
    group = _open_group(ref, "r")
    info, _ = _read_multiscale(group, ref)
    arr = _level_array(group, info, level)
    return da.from_zarr(arr)[_plane_index(info, level, z)]


def read_region(
    path: str | os.PathLike[str],
    y0: int,
    x0: int,
    h: int,
    w: int,
    level: int = 0,
    z: int | None = None,
    fill: int | float = 0,
) -> np.ndarray:
    """Read an (h, w) window of one level; the part outside the image is ``fill``."""
    if h < 0 or w < 0:
        raise ValueError(f"{path}: negative window size {(h, w)}")
    ref = os.fspath(path)
    group = _open_group(ref, "r")
    info, _ = _read_multiscale(group, ref)
    arr = _level_array(group, info, level)
    lead = _plane_index(info, level, z)
    ny, nx = arr.shape[-2:]
    out = np.full((h, w), fill, dtype=arr.dtype)
    ya, yb = max(y0, 0), min(y0 + h, ny)
    xa, xb = max(x0, 0), min(x0 + w, nx)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = arr[(*lead, slice(ya, yb), slice(xa, xb))]
    return out


# --------------------------------------------------------------------------- creating


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
        group.attrs["ome"] = {**_ome_attrs(group), "version": "0.5", **content}
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
    image = _open_group(image_path, "r+")
    info, ms = _read_multiscale(image, image_path)
    if info.is_label:
        raise ValueError(f"{image_path}: is a label image, cannot hold labels")
    labels = image.require_group("labels")
    names = list(_ome_attrs(labels).get("labels", []))
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
    return read_info(_label_ref(image_path, name))


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
    ref = _label_ref(path, label)
    group = _open_group(ref, "r+")
    info, _ = _read_multiscale(group, ref)
    arr = _level_array(group, info, level)
    lead = _plane_index(info, level, z)
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


# --------------------------------------------------------------------------- pyramids


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
    ref = _label_ref(path, label)
    group = _open_group(ref, "r+")
    info, _ = _read_multiscale(group, ref)
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
        planes = [_plane_index(info, 0, z)]
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
