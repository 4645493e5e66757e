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
tiles whose owned box meets it (`cytopaint.blend.tiles`). Blocks that no tile touches are copied: as stored bytes when
input and output encode blocks alike (same codecs, block shape, dtype and fill value), else
decoded and re-encoded.

Levels >= 1 go level by level, each block written once: copied from the input where no level-0
pixel under it changed, else recomputed from its 2x2 children with the reductions and block
alignment of `cytopaint.io.pyramid.rebuild_pyramid` (which, taking one rectangle for all levels, would rebuild
whole windows around scattered damage). The result equals a full rebuild from level 0 when the
input pyramid was made by the same method. An input whose levels are not the factor-2 ``yx``
pyramid of `cytopaint.io.writer.create_image` (other shapes or factors) gets levels >= 1 rebuilt from level 0.
``labels/repaired`` (uint8) is 1 exactly on the owned union, with a max pyramid; blocks with no
owned pixel below them are left unwritten (zero, the fill value).

The output is built in ``<out>.partial/<name>`` and renamed into place at the end: a killed run
leaves no ``<out>``, and the next run removes the leftover ``.partial``. The input is only opened
read-only.

``sha256_level0`` in the receipt is `cytopaint.io.digest`'s: computed while level 0 is written,
recomputed from a store by `cytopaint.io.digest.level0_digest`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from cytopaint.geometry import Box, grid_boxes, row_runs
from cytopaint.io import digest, pyramid, volume, writer
from cytopaint.io.batchfile import BatchFile
from cytopaint.plan.ownership import paste_owned

from .blocks import block_any, blocks_in, grid_region
from .copier import Copier
from .tiles import OwnedTile, check_overlaps, index_batch

LABEL = "repaired"
_COPY_JOB = 256  # clean blocks per copy job of a coarse level


def _halving_pyramid(info: volume.ImageInfo) -> bool:
    """Whether the input's levels are the factor-2 yx pyramid `cytopaint.io.writer.create_image` makes."""
    ny, nx = info.plane_shape
    return all(
        shape[:-2] == info.shape[:-2]
        and shape[-2:] == (-(-ny // 2**lv), -(-nx // 2**lv))
        and np.allclose(f, 2**lv)
        for lv, (shape, f) in enumerate(zip(info.level_shapes, info.downscale, strict=True))
    )


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
    """Write the repaired section ``out_path`` (see the module docstring) and return its receipt.

    Parameters
    ----------
    image_ref, z
        The input image (plane ``z`` of a stack, or None); it is only read.
    batch_files
        Every batch result of the section (`cytopaint.io.batchfile`).
    out_path
        The store to write; it must not exist yet.
    window_px
        Side of the level-0 windows composed at once (rounded to whole write blocks).
    workers
        Threads that read batch files and compose windows (default: the usable CPUs, at most 8);
        memory is about ``workers`` windows of ``window_px`` squared pixels plus their tiles, and
        a few KB per tile for the index.

    Returns
    -------
    dict
        The receipt (JSON-ready): ``output``, ``input``, ``z``, ``n_batch_files``, ``n_tiles`` (with
        owned pixels), ``pixels_repaired``, ``block_shape`` (the write block: shard, else chunk),
        ``touched_chunks`` (level-0 blocks rewritten), ``input_shape``, ``output_shape``,
        ``sha256_level0`` and ``sha256_scheme``, ``pyramid`` (how levels >= 1 were made),
        ``copied_encoded`` (per copied level: untouched blocks copied as stored bytes), ``rebuilt``
        (per level >= 1: the number of blocks recomputed and their bounding ``region``
        (y0, x0, h, w) in that level's pixels) and ``durations_s``.

    Raises FileExistsError if ``out_path`` exists, and ValueError, before anything is written,
    for tiles outside the image, of the wrong dtype or shape, or owning a pixel another tile owns.
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
            found = pool.map(index_batch, range(len(batch_files)), batch_files,
                             [info.plane_shape] * len(batch_files), [info.dtype] * len(batch_files))
            tiles = [t for ts in found for t in ts]
            check_overlaps(tiles, batch_files)
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
        tiles: list[OwnedTile],
        batch_files: Sequence[Path],
        store: Path,
        window_px: int,
    ) -> None:
        self.info, self.src_levels, self.lead = info, src_levels, lead
        self.tiles, self.batch_files, self.store, self.window_px = tiles, batch_files, store, window_px
        self.plane = info.plane_shape
        store.parent.mkdir(parents=True)
        out = writer.create_image(
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
        writer.create_label(store, LABEL)
        group = zarr.open_group(store, mode="r+")
        self.dst_levels = [group[p] for p in out.level_paths]
        self.label_levels = [group[f"labels/{LABEL}/{p}"] for p in out.level_paths]
        self.chunk = out.chunks
        self.block = out.shards or out.chunks
        by, bx = self.block
        self.step = (max(window_px // by, 1) * by, max(window_px // bx, 1) * bx)
        self.by_window: dict[tuple[int, int], list[OwnedTile]] = defaultdict(list)
        for t in tiles:
            for wi in range(t.box.y0 // self.step[0], (t.box.y1 - 1) // self.step[0] + 1):
                for wj in range(t.box.x0 // self.step[1], (t.box.x1 - 1) // self.step[1] + 1):
                    self.by_window[wi, wj].append(t)
        self.copier = Copier(src_levels[0], lead, self.dst_levels[0])
        self.dirty = np.zeros((-(-self.plane[0] // by), -(-self.plane[1] // bx)), dtype=bool)
        self.digests = digest.chunk_digest_grid(self.plane, self.chunk)

    def run(self, pool: ThreadPoolExecutor, progress: bool) -> dict[str, Any]:
        """Write everything (windows and blocks in ``pool``); return the receipt's content."""
        t0 = time.perf_counter()
        windows = list(grid_boxes(self.plane, self.step))
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
            "sha256_level0": digest.combine(self.digests),
            "sha256_scheme": digest.SHA256_SCHEME,
            "pyramid": "copied where untouched, rebuilt where touched" if len(copied_encoded) > 1
            else "rebuilt from level 0",
            "copied_encoded": copied_encoded,
            "rebuilt": rebuilt,
            "durations_s": {"level0": round(t1 - t0, 3), "pyramids": round(t2 - t1, 3)},
        }

    def _level0_window(self, win: Box) -> None:
        """Copy or compose one window of level 0, write its label, mark its dirty blocks."""
        data = self.copier.read(win)
        here = self.by_window.get((win.y0 // self.step[0], win.x0 // self.step[1]))
        touched = self._compose(data, win, here) if here else None
        blocks = blocks_in(win, self.block)
        if touched is not None and touched.any():
            self.label_levels[0][win.slices()] = touched.view(np.uint8)
            (by, bx), (bi, bj) = self.block, (win.y0 // self.block[0], win.x0 // self.block[1])
            dirty = block_any(touched, self.block)
            self.dirty[bi : bi + dirty.shape[0], bj : bj + dirty.shape[1]] = dirty
            for i, j0, j1 in row_runs(dirty, dirty.shape[1]) if self.copier.raw else ():
                part = data[i * by : (i + 1) * by, j0 * bx : j1 * bx]
                y0, x0 = win.y0 + i * by, win.x0 + j0 * bx
                self.dst_levels[0][y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = part
        if self.copier.raw:
            self.copier.copy([ij for ij in blocks if not self.dirty[ij]])
        else:
            self.dst_levels[0][win.slices()] = data
        digest.chunk_digests(data, (win.y0, win.x0), self.chunk, self.digests)

    def _compose(self, data: np.ndarray, win: Box, tiles: list[OwnedTile]) -> np.ndarray:
        """Paste the owned pixels of ``tiles`` into the window ``data``; return the pasted mask."""
        touched = np.zeros(data.shape, dtype=bool)
        by_batch: dict[int, list[OwnedTile]] = defaultdict(list)
        for t in tiles:
            by_batch[t.batch].append(t)
        for b, group in by_batch.items():
            with BatchFile(self.batch_files[b]) as batch:
                for t in group:
                    meet = t.box.intersection(win)
                    pixels = batch.pixels(t.name, rows=meet.y1 - t.y0)  # only the rows down to the window's end
                    at = Box.of_size(t.y0, t.x0, *pixels.shape)
                    paste_owned(data, win, pixels[meet.slices(at)], t.owned(meet), meet, touched)
        return touched

    def _pyramids(self, pool: ThreadPoolExecutor) -> tuple[list[bool], dict[str, dict[str, Any]]]:
        """Levels >= 1 of the image and of the label, level by level, each block written once.

        A block is copied from the input when no level-0 pixel under it changed, else recomputed
        from its 2x2 children in the output with `pyramid.downsample_mean` (labels:
        `pyramid.downsample_max`, and untouched label blocks stay unwritten zeros): the reductions
        and the block alignment of `pyramid.rebuild_pyramid`, so the result equals its full
        rebuild. An input pyramid of other shapes is rebuilt from level 0 instead. Returns whether
        each copied level went as encoded bytes, and per level the rebuilt blocks and their box.
        """
        reuse = _halving_pyramid(self.info)
        if not reuse:
            pyramid.rebuild_pyramid(self.store, window_px=self.window_px)
        copied_encoded = [self.copier.raw]
        rebuilt: dict[str, dict[str, Any]] = {}
        dirty = self.dirty
        for lv in range(1, self.info.n_levels):
            dirty = block_any(dirty, (2, 2))  # the blocks of level lv with a dirty child
            todo = list(row_runs(dirty, self.step[1] // self.block[1]))  # a window wide at most
            jobs = [pool.submit(_rebuild_run, self.label_levels[lv - 1], self.label_levels[lv], run, self.block,
                                pyramid.downsample_max) for run in todo]
            if reuse:
                copier = Copier(self.src_levels[lv], self.lead, self.dst_levels[lv])
                copied_encoded.append(copier.raw)
                clean = [(int(i), int(j)) for i, j in zip(*np.nonzero(~dirty), strict=True)]
                jobs += [pool.submit(copier.copy, clean[k : k + _COPY_JOB]) for k in range(0, len(clean), _COPY_JOB)]
                jobs += [pool.submit(_rebuild_run, self.dst_levels[lv - 1], self.dst_levels[lv], run, self.block,
                                     pyramid.downsample_mean) for run in todo]
            for job in jobs:
                job.result()
            done = dirty if reuse else np.ones_like(dirty)
            rebuilt[str(lv)] = {"blocks": int(done.sum()),
                                "region": grid_region(done, self.block, self.dst_levels[lv].shape)}
        return copied_encoded, rebuilt


def _rebuild_run(src: zarr.Array, dst: zarr.Array, run: tuple[int, int, int], block: tuple[int, int],
            reduce: Callable[[np.ndarray], np.ndarray]) -> None:
    """Recompute a run of blocks of ``dst`` (one level coarser than ``src``) from ``src``."""
    (i, j0, j1), (by, bx) = run, block
    ya, yb = i * by, min((i + 1) * by, dst.shape[0])
    xa, xb = j0 * bx, min(j1 * bx, dst.shape[1])
    dst[ya:yb, xa:xb] = reduce(src[2 * ya : min(2 * yb, src.shape[0]), 2 * xa : min(2 * xb, src.shape[1])])
