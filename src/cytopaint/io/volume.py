"""OME-Zarr section I/O, reading: store references, multiscale metadata, lazy plane and region reads.

Sections are 2-D images (axes ``yx``) or planes of 3-D stacks (axes ``zyx``, plane chosen by
``z``). NGFF 0.4 (zarr v2) and 0.5 (zarr v3) are read and written. A store reference may name a
group inside the store with ``#``: ``section.ome.zarr#labels/artifacts``.

Inputs are only ever opened read-only. Writing outputs is `cytopaint.io.writer`, their pyramids
`cytopaint.io.pyramid`.
"""

from __future__ import annotations

import os
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


def label_ref(path: str | os.PathLike[str], label: str | None) -> str:
    path = os.fspath(path)
    if label is None:
        return path
    store, sub = split_ref(path)
    return f"{store}#{'/'.join(p for p in (sub, 'labels', label) if p)}"


def metadata_file(ref: str | os.PathLike[str]) -> str | None:
    """The metadata file of a local multiscale group (``zarr.json``, or ``.zattrs`` for zarr v2), if any."""
    store, sub = split_ref(ref)
    if "://" in store:
        return None
    for name in ("zarr.json", ".zattrs"):
        path = os.path.join(store, sub, name)
        if os.path.isfile(path):
            return path
    return None


def open_group(ref: str | os.PathLike[str], mode: str) -> zarr.Group:
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


def ome_attrs(group: zarr.Group) -> dict[str, Any]:
    attrs = group.attrs.asdict()
    if group.metadata.zarr_format == 3:
        ome = attrs.get("ome")
        return dict(ome) if isinstance(ome, dict) else {}
    return attrs


def _fold_transforms(
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


def read_multiscale(group: zarr.Group, ref: str) -> tuple[ImageInfo, dict[str, Any]]:
    """Parse and check a multiscale group; also return its raw (first) multiscales entry."""
    ome = ome_attrs(group)
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
        scale, trans = _fold_transforms([*ds["coordinateTransformations"], *glob], ndim, ref)
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
    return read_multiscale(open_group(ref, "r"), ref)[0]


# --------------------------------------------------------------------------- reading


def level_array(group: zarr.Group, info: ImageInfo, level: int) -> zarr.Array:
    if not 0 <= level < info.n_levels:
        raise ValueError(f"{info.path}: level {level} out of range (0..{info.n_levels - 1})")
    return group[info.level_paths[level]]


def plane_index(info: ImageInfo, level: int, z: int | None) -> tuple[int, ...]:
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


def open_plane(ref: str, level: int, z: int | None, mode: str = "r") -> tuple[zarr.Array, tuple[int, ...]]:
    """The array of one level of a multiscale (opened in ``mode``) and the leading index of plane ``z``."""
    group = open_group(ref, mode)
    info, _ = read_multiscale(group, ref)
    return level_array(group, info, level), plane_index(info, level, z)


def _chunk_ranges(arr: zarr.Array, index: tuple[Any, ...]) -> list[range]:
    """Per axis, the stored chunks (shards, if any) that ``index`` (ints and slices) touches."""
    out = []
    for sl, c, n in zip(index, arr.metadata.chunks, arr.shape, strict=False):
        start, stop = (sl, sl + 1) if isinstance(sl, int) else (sl.start or 0, n if sl.stop is None else sl.stop)
        out.append(range(start // c, max(-(-stop // c), start // c + 1)))
    return out


def _broken_chunk(arr: zarr.Array, index: tuple[Any, ...]) -> str | None:
    """The key of the first chunk under ``index`` that cannot be read, probing chunk by chunk."""
    chunks = arr.metadata.chunks
    grid = _chunk_ranges(arr, index)
    for coords in np.ndindex(*(len(r) for r in grid)):
        ij = tuple(r[k] for r, k in zip(grid, coords, strict=True))
        try:
            arr[tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(ij, chunks, arr.shape, strict=True))]
        except Exception:  # noqa: BLE001 - whatever the codec raises marks the broken chunk
            return arr.metadata.encode_chunk_key(ij)
    return None


def read_array(arr: zarr.Array, index: tuple[Any, ...], ref: str) -> np.ndarray:
    """``arr[index]``; a chunk that cannot be decoded raises ValueError naming the store, array and chunk.

    Codecs raise errors of their own types (a truncated zstd frame, a short read): they become one
    error that says which chunk of which store is damaged.
    """
    try:
        return arr[index]
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - see the docstring
        key = _broken_chunk(arr, index)
        where = f"chunk {key!r} of array {arr.path!r}" if key else f"array {arr.path!r} at {index}"
        raise ValueError(f"{ref}: {where} cannot be read, the store is damaged "
                         f"({type(err).__name__}: {err})") from err


def open_level(path: str | os.PathLike[str], level: int = 0, z: int | None = None) -> da.Array:
    """Lazy 2-D (y, x) dask array of one pyramid level of a section (opened read-only)."""
    arr, lead = open_plane(os.fspath(path), level, z)
    return da.from_zarr(arr)[lead]


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
    arr, lead = open_plane(os.fspath(path), level, z)
    ny, nx = arr.shape[-2:]
    out = np.full((h, w), fill, dtype=arr.dtype)
    ya, yb = max(y0, 0), min(y0 + h, ny)
    xa, xb = max(x0, 0), min(x0 + w, nx)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = read_array(arr, (*lead, slice(ya, yb), slice(xa, xb)),
                                                              os.fspath(path))
    return out
