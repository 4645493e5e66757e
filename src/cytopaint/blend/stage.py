"""Blend repaired tiles into a new OME-Zarr section: ``repaired.ome.zarr``.

The output mirrors the input's dtype, level-0 scale and origin, chunks (and shards), pyramid depth
and NGFF version. A plane ``z`` of a 3-D ``zyx`` stack is written as a 2-D ``yx`` image with the
stack's y/x scale, origin, chunks and shards (the z axis, scale and origin are dropped).

Level 0 is the input, except the pixels each tile owns, which take that tile's pixels. Owned sets
of different tiles must not overlap, so every generated pixel is written once and nothing is
averaged. Level 0 goes in windows aligned to the write block (the shard, else the chunk), composed
in parallel threads, so each block is written by exactly one write and memory is a few windows
plus their tiles, whatever the section's size. Batch files are indexed once (each tile's owned
mask, kept as compressed bits over its bounding box); a window then reads just the pixels of the
tiles whose owned box meets it. Blocks that no tile touches are copied: as stored bytes when
input and output encode blocks alike (same codecs, block shape, dtype and fill value), else
decoded and re-encoded.

Levels >= 1 go level by level, each block written once: copied from the input where no level-0
pixel under it changed, else recomputed from its 2x2 children with the reductions and block
alignment of `volume.rebuild_pyramid` (which, taking one rectangle for all levels, would rebuild
whole windows around scattered damage). The result equals a full rebuild from level 0 when the
input pyramid was made by the same method. An input whose levels are not the factor-2 ``yx``
pyramid of `volume.create_image` (other shapes or factors) gets levels >= 1 rebuilt from level 0.
``labels/repaired`` (uint8) is 1 exactly on the owned union, with a max pyramid; blocks with no
owned pixel below them are left unwritten (zero, the fill value).

The output is built in ``<out>.partial/<name>`` and renamed into place at the end: a killed run
leaves no ``<out>``, and the next run removes the leftover ``.partial``. The input is only opened
read-only.

``sha256_level0`` in the receipt: sha256 of the concatenated sha256 digests of the level-0 chunks
(each chunk's C-order pixel bytes, edge chunks clipped to the image), chunks in row-major order.
It does not depend on the window size or the codecs; `level0_digest` recomputes it from a store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import zarr
from tqdm import tqdm
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from cytopaint.io import volume

LABEL = "repaired"
SHA256_SCHEME = (
    "sha256 over the sha256 digests of the level-0 chunks (C-order pixel bytes, edge chunks "
    "clipped), chunks in row-major order"
)
_RAW_BATCH = 256  # encoded blocks copied concurrently
_NPY_HEADERS = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), image coordinates, end exclusive


@dataclass(frozen=True)
class _Tile:
    """One tile of one batch file: its window, what it owns (cropped to its box, packed bits)."""

    batch: int  # index into the batch file list
    name: str
    y0: int
    x0: int
    box: Box  # bounding box of the owned pixels
    packed: bytes  # zlib of np.packbits(owned[box])
    n_owned: int

    def owned(self, box: Box) -> np.ndarray:
        """The owned mask on ``box``, which lies inside the tile's box."""
        h, w = self.box[2] - self.box[0], self.box[3] - self.box[1]
        bits = np.unpackbits(np.frombuffer(zlib.decompress(self.packed), np.uint8), count=h * w)
        mask = bits.reshape(h, w).view(bool)
        return mask[box[0] - self.box[0] : box[2] - self.box[0], box[1] - self.box[1] : box[3] - self.box[1]]


# --------------------------------------------------------------------------- batch files
# Batch files are `cytopaint.batchio` results: an .npz with ``T.pixels``, ``T.owned`` per tile T
# and ``meta`` (JSON, the tile window origins under "tiles"). They are read here member by member
# (whole reads through zipfile, a prefix of rows where that is all a window needs), because
# `batchio.read_batch` holds a whole batch in memory and numpy's own npz reader is slow.


def _npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of an .npy stream, left positioned at its data."""
    major, _ = np.lib.format.read_magic(fh)
    if major not in _NPY_HEADERS:
        raise ValueError(f"unsupported .npy format version {major}")
    shape, fortran, dtype = _NPY_HEADERS[major](fh)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed in batch files")
    return shape, fortran, dtype


def _read_npy(zf: zipfile.ZipFile, key: str, rows: int | None = None) -> np.ndarray:
    """Array ``key`` of an .npz (read-only); only its first ``rows`` rows when given."""
    with zf.open(f"{key}.npy") as fh:
        shape, fortran, dtype = _npy_header(fh)
        if rows is not None and not fortran and len(shape) == 2 and rows < shape[0]:
            shape = (rows, shape[1])
        count = int(np.prod(shape))
        data = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype, count=count)
    return data.reshape(shape, order="F" if fortran else "C")


def _index_batch(b: int, path: Path, plane: tuple[int, int], dtype: np.dtype) -> list[_Tile]:
    """Check every tile's window, shapes and dtype; record its owned box and packed mask."""
    ny, nx = plane
    if not path.is_file():
        raise FileNotFoundError(f"batch result {path} does not exist")
    tiles = []
    with zipfile.ZipFile(path) as zf:
        for name, m in json.loads(str(_read_npy(zf, "meta")[()]))["tiles"].items():
            y0, x0 = int(m["y0"]), int(m["x0"])
            owned = _read_npy(zf, f"{name}.owned")
            with zf.open(f"{name}.pixels.npy") as fh:
                shape, _, pdtype = _npy_header(fh)
            where = f"{path}: tile {name}"
            if owned.ndim != 2 or owned.dtype != bool or tuple(shape) != owned.shape:
                raise ValueError(f"{where}: pixels {shape} and owned {owned.shape} ({owned.dtype}) "
                                 "must be 2-D of one shape, owned boolean")
            if pdtype != dtype:
                raise ValueError(f"{where}: pixels are {pdtype}, the image is {dtype}")
            h, w = owned.shape
            if y0 < 0 or x0 < 0 or y0 + h > ny or x0 + w > nx:
                raise ValueError(f"{where}: window {(y0, x0, h, w)} (y0, x0, h, w) falls outside "
                                 f"the image plane {plane}")
            rows, cols = np.flatnonzero(owned.any(axis=1)), np.flatnonzero(owned.any(axis=0))
            if rows.size == 0:
                continue
            crop = owned[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            box = (y0 + int(rows[0]), x0 + int(cols[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[-1]) + 1)
            packed = zlib.compress(np.packbits(crop).tobytes(), 1)
            tiles.append(_Tile(b, name, y0, x0, box, packed, int(np.count_nonzero(crop))))
    return tiles


def _check_overlaps(tiles: list[_Tile], batch_files: Sequence[Path]) -> None:
    """Refuse tiles whose owned sets share a pixel (exact; masks compared only where boxes meet)."""
    if len(tiles) < 2:
        return
    boxes = np.array([t.box for t in tiles], dtype=np.int64)
    order = np.argsort(boxes[:, 0], kind="stable")
    sorted_y0 = boxes[order, 0]
    for k, i in enumerate(order):
        cand = order[k + 1 : np.searchsorted(sorted_y0, boxes[i, 2], side="left")]
        for j in cand[(boxes[cand, 1] < boxes[i, 3]) & (boxes[cand, 3] > boxes[i, 1])]:
            a, b = tiles[i], tiles[j]
            meet = (max(a.box[0], b.box[0]), max(a.box[1], b.box[1]),
                    min(a.box[2], b.box[2]), min(a.box[3], b.box[3]))
            shared = np.count_nonzero(a.owned(meet) & b.owned(meet))
            if shared:
                raise ValueError(
                    f"owned pixels overlap: tile {a.name} of {batch_files[a.batch]} and tile "
                    f"{b.name} of {batch_files[b.batch]} both own {shared} pixel(s) in "
                    f"rows {meet[0]}:{meet[2]}, cols {meet[1]}:{meet[3]}"
                )


# --------------------------------------------------------------------------- geometry and copying


def _windows(shape: tuple[int, int], step: tuple[int, int]) -> Iterator[tuple[int, int, int, int]]:
    """Row-major windows (y0, x0, y1, x1) of ``step`` over a plane of ``shape``, clipped."""
    for y0 in range(0, shape[0], step[0]):
        for x0 in range(0, shape[1], step[1]):
            yield y0, x0, min(y0 + step[0], shape[0]), min(x0 + step[1], shape[1])


def _blocks_in(win: tuple[int, int, int, int], block: tuple[int, int]) -> list[tuple[int, int]]:
    """Grid coordinates of the blocks in a block-aligned window."""
    by, bx = block
    return [
        (i, j)
        for i in range(win[0] // by, -(-win[2] // by))
        for j in range(win[1] // bx, -(-win[3] // bx))
    ]


def _block_slices(ij: tuple[int, int], block: tuple[int, int], shape: tuple[int, int]) -> tuple[slice, slice]:
    (i, j), (by, bx) = ij, block
    return slice(i * by, min((i + 1) * by, shape[0])), slice(j * bx, min((j + 1) * bx, shape[1]))


def _same_encoding(src: zarr.Array, dst: zarr.Array) -> bool:
    """Whether a stored block of ``src`` (one plane deep) is a valid stored block of ``dst``."""
    s, d = src.metadata.to_dict(), dst.metadata.to_dict()
    if s["zarr_format"] != d["zarr_format"]:
        return False
    src_block, dst_block = src.metadata.chunks, dst.metadata.chunks
    lead = len(src_block) - len(dst_block)
    if lead < 0 or any(c != 1 for c in src_block[:lead]) or tuple(src_block[lead:]) != tuple(dst_block):
        return False
    keys = ("data_type", "fill_value", "codecs") if s["zarr_format"] == 3 else (
        "dtype", "fill_value", "compressor", "filters", "order")
    return all(s[k] == d[k] for k in keys)


class _Copier:
    """Copies blocks of one level from the input to the output, encoded bytes when possible."""

    def __init__(self, src: zarr.Array, lead: tuple[int, ...], dst: zarr.Array) -> None:
        self.src, self.lead, self.dst = src, lead, dst
        self.raw = _same_encoding(src, dst)
        self.block = tuple(dst.metadata.chunks)
        self.shape = tuple(dst.shape)

    def read(self, win: tuple[int, int, int, int]) -> np.ndarray:
        return self.src[(*self.lead, slice(win[0], win[2]), slice(win[1], win[3]))]

    def copy(self, blocks: Sequence[tuple[int, int]]) -> None:
        """Copy whole blocks (grid coordinates)."""
        if self.raw:
            for k in range(0, len(blocks), _RAW_BATCH):
                sync(self._copy_raw(blocks[k : k + _RAW_BATCH]))
            return
        for ij in blocks:
            ys, xs = _block_slices(ij, self.block, self.shape)
            self.dst[ys, xs] = self.src[(*self.lead, ys, xs)]

    async def _copy_raw(self, blocks: Sequence[tuple[int, int]]) -> None:
        src, dst = self.src.store_path, self.dst.store_path
        proto = default_buffer_prototype()

        async def one(ij: tuple[int, int]) -> None:
            key = self.src.metadata.encode_chunk_key((*self.lead, *ij))
            buf = await src.store.get(f"{src.path}/{key}", prototype=proto)
            if buf is not None:  # a missing block reads as the fill value, as it will in dst
                await dst.store.set(f"{dst.path}/{self.dst.metadata.encode_chunk_key(ij)}", buf)

        await asyncio.gather(*(one(ij) for ij in blocks))


def _block_any(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block of ``a`` (edge blocks clipped), whether any of its elements is nonzero."""
    ny, nx = -(-a.shape[0] // block[0]), -(-a.shape[1] // block[1])
    a = np.pad(a, [(0, ny * block[0] - a.shape[0]), (0, nx * block[1] - a.shape[1])])
    return a.reshape(ny, block[0], nx, block[1]).any(axis=(1, 3))


def _chunk_digests(data: np.ndarray, origin: tuple[int, int], chunk: tuple[int, int], out: np.ndarray) -> None:
    """sha256 of each chunk of a chunk-aligned window, into ``out[ci, cj]``."""
    cy, cx = chunk
    for y in range(0, data.shape[0], cy):
        for x in range(0, data.shape[1], cx):
            piece = np.ascontiguousarray(data[y : y + cy, x : x + cx])
            out[(origin[0] + y) // cy, (origin[1] + x) // cx] = np.frombuffer(
                hashlib.sha256(piece).digest(), dtype=np.uint8
            )


def _halving_pyramid(info: volume.ImageInfo) -> bool:
    """Whether the input's levels are the factor-2 yx pyramid `volume.create_image` makes."""
    ny, nx = info.plane_shape
    return all(
        shape[:-2] == info.shape[:-2]
        and shape[-2:] == (-(-ny // 2**lv), -(-nx // 2**lv))
        and np.allclose(f, 2**lv)
        for lv, (shape, f) in enumerate(zip(info.level_shapes, info.downscale, strict=True))
    )


def level0_digest(path: str | os.PathLike[str], z: int | None = None, *, window_px: int = 4096) -> str:
    """The receipt's ``sha256_level0`` of a stored image (see the module docstring)."""
    info = volume.read_info(path)
    chunk = info.chunks[-2:]
    plane = info.plane_shape
    digests = np.zeros((-(-plane[0] // chunk[0]), -(-plane[1] // chunk[1]), 32), dtype=np.uint8)
    step = tuple(max(window_px // c, 1) * c for c in chunk)
    for win in _windows(plane, step):
        data = volume.read_region(path, win[0], win[1], win[2] - win[0], win[3] - win[1], z=z)
        _chunk_digests(data, win[:2], chunk, digests)
    return hashlib.sha256(digests.tobytes()).hexdigest()


# --------------------------------------------------------------------------- blending


def _open_input(image_ref: str, z: int | None) -> tuple[volume.ImageInfo, list[zarr.Array], tuple[int, ...]]:
    info = volume.read_info(image_ref)
    if info.axes == "yx" and z is not None:
        raise ValueError(f"{image_ref}: z={z} given for a 2-D image")
    if info.axes == "zyx" and (z is None or not 0 <= z < info.shape[0]):
        raise ValueError(f"{image_ref}: a 3-D stack needs z in 0..{info.shape[0] - 1}, got {z}")
    store, sub = volume.split_ref(image_ref)
    group = zarr.open_group(store, mode="r")
    if sub:
        group = group[sub]
    return info, [group[p] for p in info.level_paths], () if z is None else (z,)


def _default_workers() -> int:
    return min(len(os.sched_getaffinity(0)), 8)


def blend_section(
    image_ref: str,
    z: int | None,
    batch_files: list[Path],
    out_path: Path,
    *,
    window_px: int = 4096,
    progress: bool = False,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``out_path`` (the repaired section, see the module docstring) and return a receipt.

    ``workers`` threads read batch files and compose level-0 windows (default: the usable CPUs,
    at most 8); memory is about ``workers`` windows of ``window_px`` squared pixels plus their
    tiles, and a few KB per tile for the index. Raises FileExistsError if ``out_path`` exists,
    and ValueError, before anything is written, for tiles outside the image, of the wrong dtype
    or shape, or owning a pixel another tile owns.

    Receipt (JSON-ready): ``output``, ``input``, ``z``, ``n_batch_files``, ``n_tiles`` (with
    owned pixels), ``pixels_repaired``, ``block_shape`` (the write block: shard, else chunk),
    ``touched_chunks`` (level-0 blocks rewritten), ``input_shape``, ``output_shape``,
    ``sha256_level0`` and ``sha256_scheme``, ``pyramid`` (how levels >= 1 were made),
    ``copied_encoded`` (per copied level: untouched blocks copied as stored bytes), ``rebuilt``
    (per level >= 1: the number of blocks recomputed and their bounding ``region`` (y0, x0, h, w)
    in that level's pixels) and ``durations_s``.
    """
    t_start = time.perf_counter()
    out_path = Path(out_path)
    batch_files = [Path(p) for p in batch_files]
    if out_path.exists():
        raise FileExistsError(f"{out_path}: already exists; remove it to blend again")
    info, src_levels, lead = _open_input(image_ref, z)
    staging = out_path.with_name(out_path.name + ".partial")
    store = staging / out_path.name
    try:
        with ThreadPoolExecutor(max(workers or _default_workers(), 1)) as pool:  # joined before cleanup
            found = pool.map(_index_batch, range(len(batch_files)), batch_files,
                             [info.plane_shape] * len(batch_files), [info.dtype] * len(batch_files))
            tiles = [t for ts in found for t in ts]
            _check_overlaps(tiles, batch_files)
            t_index = time.perf_counter()
            shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted earlier attempt
            receipt = _Blender(info, src_levels, lead, tiles, batch_files, store, window_px).run(pool, progress)
        os.replace(store, out_path)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    receipt["durations_s"] = {"index": round(t_index - t_start, 3), **receipt["durations_s"],
                              "total": round(time.perf_counter() - t_start, 3)}
    return {"output": str(out_path), "input": str(image_ref), "z": z,
            "n_batch_files": len(batch_files), **receipt}


class _Blender:
    """Builds one output store: level 0 by windows (in threads), then the pyramids."""

    def __init__(
        self,
        info: volume.ImageInfo,
        src_levels: list[zarr.Array],
        lead: tuple[int, ...],
        tiles: list[_Tile],
        batch_files: Sequence[Path],
        store: Path,
        window_px: int,
    ) -> None:
        self.info, self.src_levels, self.lead = info, src_levels, lead
        self.tiles, self.batch_files, self.store, self.window_px = tiles, batch_files, store, window_px
        self.plane = info.plane_shape
        store.parent.mkdir(parents=True)
        out = volume.create_image(
            store,
            self.plane,
            pixel_size_um=info.pixel_size_um,
            n_levels=info.n_levels,
            chunks=info.chunks[-2:],
            dtype=info.dtype,
            ngff=info.ngff,
            shards=None if info.shards is None else info.shards[-2:],
            translation_um=info.translation_um[-2:],
        )
        volume.create_label(store, LABEL)
        group = zarr.open_group(store, mode="r+")
        self.dst_levels = [group[p] for p in out.level_paths]
        self.label_levels = [group[f"labels/{LABEL}/{p}"] for p in out.level_paths]
        self.chunk = out.chunks
        self.block = out.shards or out.chunks
        by, bx = self.block
        self.step = (max(window_px // by, 1) * by, max(window_px // bx, 1) * bx)
        self.by_window: dict[tuple[int, int], list[_Tile]] = defaultdict(list)
        for t in tiles:
            for wi in range(t.box[0] // self.step[0], (t.box[2] - 1) // self.step[0] + 1):
                for wj in range(t.box[1] // self.step[1], (t.box[3] - 1) // self.step[1] + 1):
                    self.by_window[wi, wj].append(t)
        self.copier = _Copier(src_levels[0], lead, self.dst_levels[0])
        self.dirty = np.zeros((-(-self.plane[0] // by), -(-self.plane[1] // bx)), dtype=bool)
        cy, cx = self.chunk
        self.digests = np.zeros((-(-self.plane[0] // cy), -(-self.plane[1] // cx), 32), dtype=np.uint8)

    def run(self, pool: ThreadPoolExecutor, progress: bool) -> dict[str, Any]:
        """Write everything (windows and blocks in ``pool``); return the receipt's content."""
        t0 = time.perf_counter()
        windows = list(_windows(self.plane, self.step))
        for _ in tqdm(pool.map(self._level0_window, windows), total=len(windows), desc="blend level 0",
                      unit="window", disable=not progress):
            pass
        n_touched = int(self.dirty.sum())
        t1 = time.perf_counter()
        copied_encoded, rebuilt = self._pyramids(pool)
        t2 = time.perf_counter()
        return {
            "n_tiles": len(self.tiles),
            "pixels_repaired": sum(t.n_owned for t in self.tiles),
            "block_shape": list(self.block),
            "touched_chunks": n_touched,
            "input_shape": list(self.info.shape),
            "output_shape": list(self.plane),
            "sha256_level0": hashlib.sha256(self.digests.tobytes()).hexdigest(),
            "sha256_scheme": SHA256_SCHEME,
            "pyramid": "copied where untouched, rebuilt where touched" if len(copied_encoded) > 1
            else "rebuilt from level 0",
            "copied_encoded": copied_encoded,
            "rebuilt": rebuilt,
            "durations_s": {"level0": round(t1 - t0, 3), "pyramids": round(t2 - t1, 3)},
        }

    def _level0_window(self, win: Box) -> None:
        """Copy or compose one window of level 0, write its label, mark its dirty blocks."""
        data = self.copier.read(win)
        here = self.by_window.get((win[0] // self.step[0], win[1] // self.step[1]))
        touched = self._compose(data, win, here) if here else None
        blocks = _blocks_in(win, self.block)
        if touched is not None and touched.any():
            self.label_levels[0][win[0] : win[2], win[1] : win[3]] = touched.view(np.uint8)
            (by, bx), (bi, bj) = self.block, (win[0] // self.block[0], win[1] // self.block[1])
            dirty = _block_any(touched, self.block)
            self.dirty[bi : bi + dirty.shape[0], bj : bj + dirty.shape[1]] = dirty
            for i, j0, j1 in _runs(dirty, dirty.shape[1]) if self.copier.raw else ():
                part = data[i * by : (i + 1) * by, j0 * bx : j1 * bx]
                y0, x0 = win[0] + i * by, win[1] + j0 * bx
                self.dst_levels[0][y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = part
        if self.copier.raw:
            self.copier.copy([ij for ij in blocks if not self.dirty[ij]])
        else:
            self.dst_levels[0][win[0] : win[2], win[1] : win[3]] = data
        _chunk_digests(data, win[:2], self.chunk, self.digests)

    def _compose(self, data: np.ndarray, win: Box, tiles: list[_Tile]) -> np.ndarray:
        """Paste the owned pixels of ``tiles`` into the window ``data``; return the pasted mask."""
        touched = np.zeros(data.shape, dtype=bool)
        by_batch: dict[int, list[_Tile]] = defaultdict(list)
        for t in tiles:
            by_batch[t.batch].append(t)
        for b, group in by_batch.items():
            with zipfile.ZipFile(self.batch_files[b]) as zf:
                for t in group:
                    meet = (max(t.box[0], win[0]), max(t.box[1], win[1]),
                            min(t.box[2], win[2]), min(t.box[3], win[3]))
                    pixels = _read_npy(zf, f"{t.name}.pixels", rows=meet[2] - t.y0)
                    owned = t.owned(meet)
                    dst = (slice(meet[0] - win[0], meet[2] - win[0]), slice(meet[1] - win[1], meet[3] - win[1]))
                    src = (slice(meet[0] - t.y0, meet[2] - t.y0), slice(meet[1] - t.x0, meet[3] - t.x0))
                    np.copyto(data[dst], pixels[src], where=owned)
                    touched[dst] |= owned
        return touched

    def _pyramids(self, pool: ThreadPoolExecutor) -> tuple[list[bool], dict[str, dict[str, Any]]]:
        """Levels >= 1 of the image and of the label, level by level, each block written once.

        A block is copied from the input when no level-0 pixel under it changed, else recomputed
        from its 2x2 children in the output with `volume.downsample_mean` (labels:
        `volume.downsample_max`, and untouched label blocks stay unwritten zeros): the reductions
        and the block alignment of `volume.rebuild_pyramid`, so the result equals its full
        rebuild. An input pyramid of other shapes is rebuilt from level 0 instead. Returns whether
        each copied level went as encoded bytes, and per level the rebuilt blocks and their box.
        """
        reuse = _halving_pyramid(self.info)
        if not reuse:
            volume.rebuild_pyramid(self.store, window_px=self.window_px)
        copied_encoded = [self.copier.raw]
        rebuilt: dict[str, dict[str, Any]] = {}
        dirty = self.dirty
        for lv in range(1, self.info.n_levels):
            dirty = _block_any(dirty, (2, 2))  # the blocks of level lv with a dirty child
            runs = list(_runs(dirty, self.step[1] // self.block[1]))  # a window wide at most
            jobs = [pool.submit(_reduce, self.label_levels[lv - 1], self.label_levels[lv], run, self.block,
                                volume.downsample_max) for run in runs]
            if reuse:
                copier = _Copier(self.src_levels[lv], self.lead, self.dst_levels[lv])
                copied_encoded.append(copier.raw)
                clean = [(int(i), int(j)) for i, j in zip(*np.nonzero(~dirty), strict=True)]
                jobs += [pool.submit(copier.copy, clean[k : k + _RAW_BATCH]) for k in range(0, len(clean), _RAW_BATCH)]
                jobs += [pool.submit(_reduce, self.dst_levels[lv - 1], self.dst_levels[lv], run, self.block,
                                     volume.downsample_mean) for run in runs]
            for job in jobs:
                job.result()
            done = dirty if reuse else np.ones_like(dirty)
            rebuilt[str(lv)] = {"blocks": int(done.sum()),
                                "region": _grid_region(done, self.block, self.dst_levels[lv].shape)}
        return copied_encoded, rebuilt


def _grid_region(blocks: np.ndarray, block: tuple[int, int], shape: tuple[int, ...]) -> list[int]:
    """(y0, x0, h, w) in pixels of the bounding box of the True blocks (zeros if none)."""
    rows, cols = np.flatnonzero(blocks.any(axis=1)), np.flatnonzero(blocks.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    y0, x0 = int(rows[0]) * block[0], int(cols[0]) * block[1]
    y1, x1 = min(int(rows[-1] + 1) * block[0], shape[0]), min(int(cols[-1] + 1) * block[1], shape[1])
    return [y0, x0, y1 - y0, x1 - x0]


def _runs(dirty: np.ndarray, max_len: int) -> Iterator[tuple[int, int, int]]:
    """Row runs (row, first, end) of True in a 2-D bool grid, at most ``max_len`` long."""
    for i, row in enumerate(dirty):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.view(np.int8), [0]])))
        for j0, j1 in zip(edges[::2], edges[1::2], strict=True):
            for j in range(j0, j1, max_len):
                yield i, int(j), int(min(j + max_len, j1))


def _reduce(src: zarr.Array, dst: zarr.Array, run: tuple[int, int, int], block: tuple[int, int],
            reduce: Callable[[np.ndarray], np.ndarray]) -> None:
    """Recompute a run of blocks of ``dst`` (one level coarser than ``src``) from ``src``."""
    (i, j0, j1), (by, bx) = run, block
    ya, yb = i * by, min((i + 1) * by, dst.shape[0])
    xa, xb = j0 * bx, min(j1 * bx, dst.shape[1])
    dst[ya:yb, xa:xb] = reduce(src[2 * ya : min(2 * yb, src.shape[0]), 2 * xa : min(2 * xb, src.shape[1])])
