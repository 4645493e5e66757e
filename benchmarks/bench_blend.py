"""Blend throughput against plain copies of the same store, with peak memory.

    python benchmarks/bench_blend.py [--size 8192] [--damage 0.05] [--blob-px 32] [--repeat 2] [--workdir DIR]

Builds a synthetic uint8 section (dark cells on a light noisy background; chunks 512, 5 levels,
NGFF 0.5) and batch files of 1024 px tiles with 512 px cores (16 tiles a file) owning blobs
that cover about ``--damage`` of the plane, with random pixels where they own. Then times, each
in a fresh process on a warm page cache: (a) ``shutil.copytree`` of the store, (b) a zarr
array-level copy of every level (decode and encode, 4096 px windows), (c) decompressing every
array of every batch file with numpy (a floor set by the batch format), (d) ``blend_section``.
Throughput is level-0 bytes / wall time (best of ``--repeat``); memory is the peak RSS of the
process doing the work.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr
from scipy import ndimage

from cytopaint.io import pyramid, writer
from cytopaint.io.batchfile import TileResult, write_batch
from cytopaint.blend.stage import blend_section

CHUNK, LEVELS, TILE, CORE, PER_FILE = 512, 5, 1024, 512, 16
Job = Callable[[Path, Path, list[Path]], None]  # (input store, output path, batch files)


def synthetic_image(size: int, rng: np.random.Generator) -> np.ndarray:
    """Light background with 6 % noise and dark blurred cells, about one per 150 px^2."""
    cells = np.zeros((size, size), dtype=np.float32)
    n = size * size // 150
    cells[rng.integers(0, size, n), rng.integers(0, size, n)] = 1.0
    cells = ndimage.gaussian_filter(cells, 2.5) * (2 * np.pi * 2.5**2)
    img = 200.0 - 120.0 * np.minimum(cells, 1.5) + rng.normal(0, 6, (size, size)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def damage_mask(size: int, fraction: float, blob_px: float, rng: np.random.Generator) -> np.ndarray:
    """Blobs (thresholded noise smoothed over ``blob_px``) covering ``fraction`` of the plane."""
    coarse = ndimage.gaussian_filter(rng.normal(size=(size // 16, size // 16)), blob_px / 16, mode="wrap")
    blobs = coarse > np.quantile(coarse, 1 - fraction)
    return np.repeat(np.repeat(blobs, 16, axis=0), 16, axis=1)


def fabricate(workdir: Path, size: int, fraction: float, blob_px: float, seed: int) -> tuple[Path, list[Path]]:
    """Write the section store and the batch files; return their paths."""
    rng = np.random.default_rng(seed)
    image = synthetic_image(size, rng)
    store = workdir / "section.ome.zarr"
    writer.create_image(store, image.shape, pixel_size_um=1.0, n_levels=LEVELS, chunks=(CHUNK, CHUNK))
    writer.write_region(store, image, 0, 0)
    pyramid.rebuild_pyramid(store)
    mask = damage_mask(size, fraction, blob_px, rng)
    border = (TILE - CORE) // 2
    tiles = []
    for cy in range(0, size, CORE):
        for cx in range(0, size, CORE):
            y0, x0 = (min(max(c - border, 0), size - TILE) for c in (cy, cx))
            owned = np.zeros((TILE, TILE), dtype=bool)
            core = (slice(cy - y0, cy - y0 + CORE), slice(cx - x0, cx - x0 + CORE))
            owned[core] = mask[cy : cy + CORE, cx : cx + CORE]
            if owned.any():
                pixels = image[y0 : y0 + TILE, x0 : x0 + TILE].copy()
                pixels[owned] = rng.integers(0, 256, int(owned.sum()), dtype=np.uint8)
                tiles.append(TileResult(f"r{cy // CORE}c{cx // CORE}", y0, x0, pixels, owned, {}))
    order = rng.permutation(len(tiles))  # batches mix tiles from all over the plane, like waves do
    files = []
    for k in range(0, len(tiles), PER_FILE):
        files.append(workdir / "batches" / f"batch_{k // PER_FILE}.npz")
        write_batch(files[-1], [tiles[i] for i in order[k : k + PER_FILE]], {})
    print(f"section {size}x{size}, {len(tiles)} tiles in {len(files)} batch files, "
          f"damage {mask.mean():.3f}, store {du(store) / 2**20:.0f} MiB")
    return store, files


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def copy_tree(src: Path, dst: Path, _files: list[Path]) -> None:
    shutil.copytree(src, dst)


def copy_arrays(src: Path, dst: Path, _files: list[Path]) -> None:
    """Decode and re-encode every level into a new group, window by window."""
    group_in, group_out = zarr.open_group(src, mode="r"), zarr.open_group(dst, mode="w")
    for name, arr in group_in.arrays():
        out = group_out.create_array(name, shape=arr.shape, chunks=arr.chunks, dtype=arr.dtype, fill_value=0)
        for y in range(0, arr.shape[0], 4096):
            for x in range(0, arr.shape[1], 4096):
                out[y : y + 4096, x : x + 4096] = arr[y : y + 4096, x : x + 4096]


def blend(src: Path, dst: Path, files: list[Path]) -> None:
    receipt = blend_section(str(src), None, files, dst)
    print(f"    blend stages (s): {receipt['durations_s']}; touched chunks {receipt['touched_chunks']}")


def read_batches(_src: Path, _dst: Path, files: list[Path]) -> None:
    """Decompress every array of every batch file (what any reader of the batch format pays)."""
    for f in files:
        with np.load(f) as npz:
            for key in npz.files:
                npz[key]


def peak_rss_mib() -> float:
    """High-water RSS of this process (VmHWM: unlike ru_maxrss, not inherited from a parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(job: Job, src: Path, dst: Path, files: list[Path], queue: mp.Queue) -> None:
    t0 = time.perf_counter()
    job(src, dst, files)
    queue.put((time.perf_counter() - t0, peak_rss_mib()))


def measure(job: Job, src: Path, dst: Path, files: list[Path]) -> tuple[float, float]:
    """Wall time and peak RSS (MiB) of ``job`` run in a fresh interpreter."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    shutil.rmtree(dst, ignore_errors=True)
    proc = ctx.Process(target=_child, args=(job, src, dst, files, queue))
    proc.start()
    result = queue.get()
    proc.join()
    shutil.rmtree(dst, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--damage", type=float, default=0.05)
    parser.add_argument("--blob-px", type=float, default=32.0,
                        help="damage blob scale: 32 touches nearly every chunk, 256 leaves most untouched")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        src, files = fabricate(work, args.size, args.damage, args.blob_px, args.seed)
        mb = args.size * args.size / 1e6
        print(f"{'method':<28}{'MB/s':>8}{'s':>8}{'peak RSS MiB':>14}")
        jobs = [("shutil.copytree", copy_tree), ("zarr array copy, all levels", copy_arrays),
                ("read all batch files", read_batches), ("blend_section", blend)]
        for name, job in jobs:
            runs = [measure(job, src, work / "out.ome.zarr", files) for _ in range(args.repeat)]
            best = min(r[0] for r in runs)
            print(f"{name:<28}{mb / best:>8.0f}{best:>8.2f}{max(r[1] for r in runs):>14.0f}")


if __name__ == "__main__":
    main()
