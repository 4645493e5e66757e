"""Tests for cytopaint.blend: composing tiles into repaired.ome.zarr, pyramids, labels, safety."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import blob_image, make_section
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from ome_zarr.writer import write_image
from ome_zarr_models import open_ome_zarr

from cytopaint.io import pyramid, volume, writer
from cytopaint.io.batchfile import TileResult, write_batch
from cytopaint.blend.stage import blend_section
from cytopaint.io.digest import level0_digest

CORE, BORDER = 32, 8  # tile cores partition the plane; windows add a border, kept inside the image


def fabricate_batches(
    folder: Path, image: np.ndarray, n_files: int = 2, seed: int = 0, density: float = 0.5
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Batch files whose tiles own random blobs inside their cores; returns files, expected, union.

    Tile pixels outside the owned set are garbage (255 - input) so that using them shows up.
    """
    rng = np.random.default_rng(seed)
    ny, nx = image.shape
    expected, union = image.copy(), np.zeros(image.shape, dtype=bool)
    per_file: list[list[TileResult]] = [[] for _ in range(n_files)]
    for cy in range(0, ny, CORE):
        for cx in range(0, nx, CORE):
            if rng.random() > density:
                continue
            y0, x0 = max(cy - BORDER, 0), max(cx - BORDER, 0)
            y1, x1 = min(cy + CORE + BORDER, ny), min(cx + CORE + BORDER, nx)
            owned = np.zeros((y1 - y0, x1 - x0), dtype=bool)
            core = (slice(cy - y0, min(cy + CORE, ny) - y0), slice(cx - x0, min(cx + CORE, nx) - x0))
            owned[core] = rng.random(owned[core].shape) < 0.3
            pixels = 255 - image[y0:y1, x0:x1]
            pixels[owned] = rng.integers(0, 256, owned.sum(), dtype=np.uint8)
            expected[y0:y1, x0:x1][owned] = pixels[owned]
            union[y0:y1, x0:x1] |= owned
            if (cy + cx) // CORE % 3 == 0:  # some arrays stored in Fortran order
                pixels, owned = np.asfortranarray(pixels), np.asfortranarray(owned)
            per_file[int(rng.integers(n_files))].append(TileResult(f"r{cy}c{cx}", y0, x0, pixels, owned, {}))
    files = []
    for k, tiles in enumerate(per_file):
        files.append(folder / f"batch_{k}.npz")
        write_batch(files[-1], tiles, {"batch": k})
    return files, expected, union


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file under a store."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = (hashlib.sha256(Path(p).read_bytes()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def level(path: Path | str, lv: int, label: str | None = None) -> np.ndarray:
    ref = str(path) if label is None else f"{path}#labels/{label}"
    return np.asarray(volume.open_level(ref, lv))


def full_pyramid(a: np.ndarray, n_levels: int, reduce) -> list[np.ndarray]:
    out = [a]
    for _ in range(1, n_levels):
        out.append(reduce(out[-1]))
    return out


def chunk_digest(a: np.ndarray, chunk: int) -> str:
    """The receipt's level-0 sha256, computed independently of blend."""
    h = hashlib.sha256()
    for y in range(0, a.shape[0], chunk):
        for x in range(0, a.shape[1], chunk):
            h.update(hashlib.sha256(np.ascontiguousarray(a[y : y + chunk, x : x + chunk])).digest())
    return h.hexdigest()


def check_readers(path: Path) -> None:
    open_ome_zarr(path)
    nodes = list(Reader(parse_url(str(path)))())
    assert any(n.load(Multiscales) for n in nodes)
    assert any(n.load(Label) for n in nodes)


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_blend_composes_owned_pixels_and_rebuilds_touched_pyramid(tmp_path: Path, ngff: str) -> None:
    src = make_section(tmp_path / "in.ome.zarr", (200, 170), n_levels=3, chunks=(32, 32), ngff=ngff)
    image = level(src, 0)
    files, expected, union = fabricate_batches(tmp_path, image)
    before = snapshot(src)
    out = tmp_path / "repaired.ome.zarr"

    receipt = blend_section(str(src), None, files, out, window_px=64)

    assert snapshot(src) == before
    got = level(out, 0)
    assert np.array_equal(got[~union], image[~union])
    assert np.array_equal(got, expected)
    label = level(out, 0, "repaired")
    assert label.dtype == np.uint8 and np.array_equal(label != 0, union)
    for lv, want in enumerate(full_pyramid(expected, 3, pyramid.downsample_mean)):
        assert np.array_equal(level(out, lv), want), lv
    for lv, want in enumerate(full_pyramid(union.astype(np.uint8), 3, pyramid.downsample_max)):
        assert np.array_equal(level(out, lv, "repaired"), want), lv
    a, b = volume.read_info(src), volume.read_info(out)
    assert (b.dtype, b.chunks, b.shards, b.level_shapes, b.ngff, b.scale_um) == (
        a.dtype, a.chunks, a.shards, a.level_shapes, a.ngff, a.scale_um)
    check_readers(out)
    assert not (tmp_path / "repaired.ome.zarr.partial").exists()
    assert receipt["pixels_repaired"] == union.sum()
    assert receipt["n_batch_files"] == 2 and receipt["n_tiles"] > 4
    assert receipt["sha256_level0"] == chunk_digest(expected, 32) == level0_digest(out)
    assert receipt["copied_encoded"] == [True, True, True]
    touched = {(y // 32, x // 32) for y, x in zip(*np.nonzero(union), strict=True)}
    assert receipt["touched_chunks"] == len(touched)
    assert receipt["output_shape"] == [200, 170]
    assert receipt["rebuilt"]["1"]["blocks"] == len({(i // 2, j // 2) for i, j in touched})
    json.dumps(receipt)


def test_no_batches_give_an_exact_copy_and_an_empty_label(tmp_path: Path) -> None:
    src = make_section(tmp_path / "in.ome.zarr", (96, 128), n_levels=3)
    out = tmp_path / "repaired.ome.zarr"
    receipt = blend_section(str(src), None, [], out, window_px=32, progress=True)
    for lv in range(3):
        assert np.array_equal(level(out, lv), level(src, lv))
        assert not level(out, lv, "repaired").any()
        for f in (src / str(lv)).rglob("*"):  # untouched chunks are copied as stored
            if f.is_file() and f.name != "zarr.json":
                assert f.read_bytes() == (out / f.relative_to(src)).read_bytes()
    assert receipt["pixels_repaired"] == 0 and receipt["touched_chunks"] == 0
    assert receipt["sha256_level0"] == level0_digest(src)
    check_readers(out)


@pytest.mark.parametrize(
    ("stack", "shards", "encoded"),
    [(True, None, True), (True, (32, 32), False), (False, (32, 32), True)],
    ids=["stack", "sharded-stack", "sharded"],
)
def test_stack_planes_and_shards(tmp_path: Path, stack: bool, shards: tuple[int, int] | None, encoded: bool) -> None:
    """A stack's plane is written as a 2-D image; blocks are copied encoded where codecs allow
    (a sharded stack's shard codec names a 3-D inner chunk, so its plane is re-encoded)."""
    src = tmp_path / "in.ome.zarr"
    shape, size = ((3, 128, 96), (20.0, 1.0, 1.0)) if stack else ((128, 96), (1.0, 1.0))
    writer.create_image(src, shape, pixel_size_um=size, n_levels=3, chunks=(16, 16), shards=shards)
    planes = [blob_image((128, 96), seed=k) for k in range(3)]
    planes[1][:64, :32] = 0  # stored as missing blocks
    for k, p in enumerate(planes if stack else planes[1:2]):
        writer.write_region(src, p, 0, 0, z=k if stack else None)
    pyramid.rebuild_pyramid(src)
    files, expected, union = fabricate_batches(tmp_path, planes[1], n_files=1, seed=3)
    out = tmp_path / "repaired.ome.zarr"
    before = snapshot(src)
    receipt = blend_section(str(src), 1 if stack else None, files, out, window_px=32)
    assert snapshot(src) == before
    info = volume.read_info(out)
    assert info.axes == "yx" and info.chunks == (16, 16) and info.shards == shards
    assert info.pixel_size_um == (1.0, 1.0) and info.n_levels == 3
    assert np.array_equal(level(out, 0), expected)
    for lv, want in enumerate(full_pyramid(expected, 3, pyramid.downsample_mean)):
        assert np.array_equal(level(out, lv), want), lv
    assert np.array_equal(level(out, 0, "repaired") != 0, union)
    assert receipt["copied_encoded"] == [encoded] * 3
    assert receipt["block_shape"] == list(shards or (16, 16)) and receipt["input_shape"] == list(shape)
    assert receipt["sha256_level0"] == chunk_digest(expected, 16)
    check_readers(out)


@pytest.mark.parametrize("shape", [(100, 90), (128, 96)], ids=["odd-pyramid", "halving-pyramid"])
def test_foreign_input_is_reencoded_and_its_pyramid_kept_where_untouched(tmp_path: Path, shape) -> None:
    """An ome-zarr-written NGFF 0.4 input (other codecs, another downsampling method): blocks are
    decoded and re-encoded; coarse blocks over untouched pixels are the input's when its levels
    have the shapes of a factor-2 pyramid (the others are recomputed from the finer output level),
    and all levels >= 1 are rebuilt from level 0 when they do not."""
    image = blob_image(shape, seed=5)
    src = tmp_path / "in.ome.zarr"
    write_image(image, zarr.open_group(src, mode="w", zarr_format=2), fmt=FormatV04(), axes="yx",
                scale_factors=(2, 2), storage_options={"chunks": (32, 32)})
    files, expected, union = fabricate_batches(tmp_path, image, seed=7, density=0.3)
    out = tmp_path / "repaired.ome.zarr"
    before = snapshot(src)
    receipt = blend_section(str(src), None, files, out, window_px=64)
    assert snapshot(src) == before
    assert np.array_equal(level(out, 0), expected)
    assert not any(receipt["copied_encoded"])
    halving = shape == (128, 96)
    how = "copied where untouched, rebuilt where touched" if halving else "rebuilt from level 0"
    assert receipt["pyramid"] == how
    for lv in (1, 2):  # a coarse block is the input's, or recomputed from the output's finer level
        got, rebuilt = level(out, lv), pyramid.downsample_mean(level(out, lv - 1))
        kept = level(src, lv) if halving else rebuilt
        f = 32 * 2**lv  # level-0 pixels per block side at this level
        for i in range(0, got.shape[0], 32):
            for j in range(0, got.shape[1], 32):
                touched = union[i * 2**lv : i * 2**lv + f, j * 2**lv : j * 2**lv + f].any()
                want = rebuilt if touched else kept
                assert np.array_equal(got[i : i + 32, j : j + 32], want[i : i + 32, j : j + 32]), (lv, i, j)
    check_readers(out)


def test_overlapping_owned_sets_are_refused_before_writing(tmp_path: Path) -> None:
    src = make_section(tmp_path / "in.ome.zarr", (64, 64))
    image = level(src, 0)
    owned = np.zeros((40, 40), dtype=bool)
    owned[30:40, 30] = owned[30, 30:40] = True  # an L: its box holds image rows/cols 30..39
    other = np.zeros((40, 40), dtype=bool)
    other[6:11, 6:11] = True  # image rows/cols 30..34: shares 9 pixels with the L
    write_batch(tmp_path / "a.npz", [TileResult("t0", 0, 0, image[:40, :40], owned, {})], {})
    write_batch(tmp_path / "b.npz", [TileResult("t1", 24, 24, image[24:64, 24:64], other, {})], {})
    out = tmp_path / "repaired.ome.zarr"
    with pytest.raises(ValueError, match=r"overlap: tile t0 of .*a\.npz and tile t1 of .*b\.npz both own 9 "):
        blend_section(str(src), None, [tmp_path / "a.npz", tmp_path / "b.npz"], out)
    assert not out.exists() and not (tmp_path / "repaired.ome.zarr.partial").exists()
    other[:] = False
    other[11:16, 11:16] = True  # inside the L's box, but no pixel in common: accepted
    write_batch(tmp_path / "b.npz", [TileResult("t1", 24, 24, image[24:64, 24:64], other, {})], {})
    receipt = blend_section(str(src), None, [tmp_path / "a.npz", tmp_path / "b.npz"], out)
    assert receipt["pixels_repaired"] == 19 + 25


@pytest.mark.parametrize(
    ("y0", "x0", "dtype", "message"),
    [(40, 0, np.uint8, "outside the image"), (-1, 0, np.uint8, "outside the image"),
     (0, 0, np.uint16, "pixels are uint16")],
)
def test_bad_tiles_are_refused(tmp_path: Path, y0: int, x0: int, dtype: type, message: str) -> None:
    src = make_section(tmp_path / "in.ome.zarr", (64, 64))
    owned = np.ones((32, 32), dtype=bool)
    write_batch(tmp_path / "a.npz", [TileResult("t", y0, x0, np.zeros((32, 32), dtype), owned, {})], {})
    with pytest.raises(ValueError, match=message):
        blend_section(str(src), None, [tmp_path / "a.npz"], tmp_path / "out.ome.zarr")


KILL_MIDWAY = """
import os, signal, sys
from cytopaint.blend import stage as blend
from cytopaint.io import pyramid
pyramid.downsample_max = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies after level 0
blend.blend_section(sys.argv[1], None, sys.argv[3:], sys.argv[2], window_px=32)
"""


def test_a_killed_run_leaves_no_output_and_a_rerun_starts_clean(tmp_path: Path, monkeypatch) -> None:
    src = make_section(tmp_path / "in.ome.zarr", (64, 64), n_levels=2)
    files, expected, _ = fabricate_batches(tmp_path, level(src, 0))
    out = tmp_path / "repaired.ome.zarr"
    partial = tmp_path / "repaired.ome.zarr.partial"
    killed = subprocess.run([sys.executable, "-c", KILL_MIDWAY, str(src), str(out), *map(str, files)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists() and (partial / "repaired.ome.zarr" / "0").is_dir()

    monkeypatch.setattr(pyramid, "downsample_max", lambda *a, **k: sys.exit("stopped"))
    with pytest.raises(SystemExit):
        blend_section(str(src), None, files, out)
    assert not out.exists() and not partial.exists()  # cleaned up on the way out
    monkeypatch.undo()

    (partial / "stale").mkdir(parents=True)
    receipt = blend_section(str(src), None, files, out, window_px=32)
    assert not partial.exists() and not (out / "stale").exists()
    assert np.array_equal(level(out, 0), expected)
    assert receipt["sha256_level0"] == chunk_digest(expected, 32)
    with pytest.raises(FileExistsError):
        blend_section(str(src), None, files, out)
