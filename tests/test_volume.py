"""Tests for cytopaint.volume: OME-Zarr metadata, region I/O, pyramids and labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from ome_zarr.writer import write_image, write_labels
from ome_zarr_models import open_ome_zarr

from cytopaint.io import pyramid, volume, writer

NGFF = ["0.4", "0.5"]


def ome_zarr_input(path: Path, data: np.ndarray, ngff: str, *, unit: str = "micrometer", scale: float = 1.0) -> str:
    """An input section written by ome-zarr itself (a third-party writer), with a mask label."""
    fmt = FormatV04() if ngff == "0.4" else FormatV05()
    group = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    axes = "yx" if data.ndim == 2 else "zyx"
    scales = dict(zip(axes, [scale] * data.ndim, strict=True))
    write_image(
        data,
        group,
        fmt=fmt,
        axes=axes,
        scale_factors=(2, 2),
        scale=scales,
        axes_units=dict.fromkeys(axes, unit),
        storage_options={"chunks": (1,) * (data.ndim - 2) + (32, 32)},
    )
    write_labels(
        (data > 200).astype(np.uint8),
        group,
        name="mask",
        fmt=fmt,
        axes=axes,
        scaler=None,
        scale_factors=(2, 2),
        scale=scales,
        axes_units=dict.fromkeys(axes, unit),
    )
    return str(path)


def snapshot(root: str) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[p] = (fh.read(), os.stat(p).st_mtime_ns)
    return out


def fill_random(path: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    data = rng.integers(0, 256, shape, dtype=np.uint8)
    writer.write_region(path, data, 0, 0)
    return data


def levels(path: str) -> list[np.ndarray]:
    info = volume.read_info(path)
    return [np.asarray(volume.open_level(path, level)) for level in range(info.n_levels)]


@pytest.mark.parametrize("ngff", NGFF)
def test_created_image_and_label_validate_and_read(tmp_path: Path, ngff: str) -> None:
    path = str(tmp_path / "out.ome.zarr")
    info = writer.create_image(path, (100, 70), pixel_size_um=0.5, chunks=(32, 32), n_levels=3, ngff=ngff)
    assert (info.ngff, info.zarr_format, info.axes, info.n_levels) == (ngff, volume.NGFF_ZARR_FORMAT[ngff], "yx", 3)
    assert info.level_shapes == ((100, 70), (50, 35), (25, 18))
    assert info.downscale == ((1, 1), (2, 2), (4, 4))
    label = writer.create_label(path, "repaired")
    assert label.is_label and label.level_shapes == info.level_shapes and label.scale_um == info.scale_um
    fill_random(path, (100, 70), np.random.default_rng(0))
    writer.write_region(path, np.ones((3, 3), np.uint8), 5, 5, label="repaired")
    pyramid.rebuild_pyramid(path)
    pyramid.rebuild_pyramid(path, label="repaired")

    model = open_ome_zarr(path)
    assert type(model).__module__ == f"ome_zarr_models.v0{ngff[-1]}.image"

    nodes = list(Reader(parse_url(path))())
    specs = [{type(s) for s in n.specs} for n in nodes]
    image = next(n for n, sp in zip(nodes, specs, strict=True) if sp == {Multiscales})
    labels = next(n for n, sp in zip(nodes, specs, strict=True) if sp == {Label, Multiscales})
    assert [d.shape for d in image.data] == list(info.level_shapes)
    assert [d.shape for d in labels.data] == list(info.level_shapes)
    assert np.asarray(labels.data[1])[2, 2] == 1  # max pyramid keeps the small mask


def test_sharded_image_validates_and_rebuilds(tmp_path: Path) -> None:
    path = str(tmp_path / "sharded.ome.zarr")
    info = writer.create_image(path, (128, 96), pixel_size_um=1.0, chunks=(16, 16), shards=(32, 32), n_levels=3)
    assert info.shards == (32, 32) and info.chunks == (16, 16)
    writer.create_label(path, "repaired")
    assert volume.read_info(path + "#labels/repaired").shards == (32, 32)
    data = fill_random(path, (128, 96), np.random.default_rng(1))
    assert pyramid.rebuild_pyramid(path, region=(40, 40, 1, 1)) == [(0, 0, 32, 32), (0, 0, 32, 24)]
    np.testing.assert_array_equal(levels(path)[1][:32, :32], pyramid.downsample_mean(data)[:32, :32])
    open_ome_zarr(path)
    with pytest.raises(ValueError, match="shards need NGFF 0.5"):
        writer.create_image(tmp_path / "v2.zarr", (64, 64), pixel_size_um=1.0, n_levels=1, ngff="0.4", shards=(64, 64))


@pytest.mark.parametrize("ngff", NGFF)
def test_reads_third_party_input(tmp_path: Path, ngff: str) -> None:
    data = np.random.default_rng(2).integers(0, 256, (88, 72), dtype=np.uint8)
    path = ome_zarr_input(tmp_path / "in.ome.zarr", data, ngff, unit="nanometer", scale=500.0)
    info = volume.read_info(path)
    assert info.pixel_size_um == pytest.approx((0.5, 0.5))
    assert (info.ngff, info.axes, info.dtype) == (ngff, "yx", np.uint8)
    assert info.plane_shape == (88, 72) and info.chunks == (32, 32)
    assert info.n_levels == 3 and info.downscale == ((1, 1), (2, 2), (4, 4))
    assert not info.is_label and volume.read_info(path + "#labels/mask").is_label
    np.testing.assert_array_equal(volume.open_level(path).compute(), data)
    np.testing.assert_array_equal(volume.read_region(path, 10, 20, 30, 40), data[10:40, 20:60])
    np.testing.assert_array_equal(volume.read_region(path + "#labels/mask", 0, 0, 88, 72), data > 200)


def test_read_region_clips_and_pads(tmp_path: Path) -> None:
    data = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    path = ome_zarr_input(tmp_path / "in.ome.zarr", data, "0.5")
    out = volume.read_region(path, -5, 25, 10, 10, fill=7)
    assert out.shape == (10, 10) and out.dtype == np.uint16
    np.testing.assert_array_equal(out[5:, :5], data[:5, 25:])
    assert (out[:5] == 7).all() and (out[:, 5:] == 7).all()
    assert (volume.read_region(path, 100, 100, 4, 4, level=1) == 0).all()
    assert volume.read_region(path, 0, 0, 0, 3).shape == (0, 3)


def test_input_never_written(tmp_path: Path) -> None:
    from cytopaint.io.masks import load_mask

    data = np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)
    path = ome_zarr_input(tmp_path / "in.ome.zarr", data, "0.5")
    before = snapshot(path)
    info = volume.read_info(path)
    volume.open_level(path, 1).compute()
    volume.read_region(path, -3, -3, 70, 70)
    load_mask(path + "#labels/mask", info)[0].compute()
    writer.create_like(info, tmp_path / "out.ome.zarr")
    assert snapshot(path) == before


@pytest.mark.parametrize("ngff", NGFF)
def test_write_region_round_trips(tmp_path: Path, ngff: str) -> None:
    path = str(tmp_path / "out.ome.zarr")
    writer.create_image(path, (50, 60), pixel_size_um=1.0, chunks=(16, 16), n_levels=2, ngff=ngff)
    writer.create_label(path, "repaired", dtype="uint16")
    block = np.random.default_rng(4).integers(0, 256, (20, 25), dtype=np.uint8)
    writer.write_region(path, block, 7, 30)
    writer.write_region(path, block[:5, :5], 20, 25, level=1)
    writer.write_region(path, block.astype(np.uint16) * 3, 1, 2, label="repaired")
    np.testing.assert_array_equal(volume.read_region(path, 7, 30, 20, 25), block)
    np.testing.assert_array_equal(volume.read_region(path, 20, 25, 5, 5, level=1), block[:5, :5])
    written = volume.read_region(path + "#labels/repaired", 1, 2, 20, 25)
    np.testing.assert_array_equal(written, block.astype(np.uint16) * 3)
    assert volume.read_region(path, 0, 0, 7, 60).sum() == 0
    with pytest.raises(ValueError, match="exceeds level 0"):
        writer.write_region(path, block, 40, 0)
    with pytest.raises(ValueError, match="without loss"):
        writer.write_region(path, block.astype(np.float32), 0, 0)
    with pytest.raises(ValueError, match="level 2 out of range"):
        writer.write_region(path, block, 0, 0, level=2)
    with pytest.raises(ValueError, match="z=0 given for a 2-D image"):
        writer.write_region(path, block, 0, 0, z=0)


def test_downsample_methods() -> None:
    a = np.array([[0, 1, 10], [1, 1, 13], [255, 255, 5]], dtype=np.uint8)
    # (0+1+1+1)/4 = 0.75 -> 1; (10+13)/2 = 11.5 -> 12 (half up); (255+255)/2; 5
    np.testing.assert_array_equal(pyramid.downsample_mean(a), [[1, 12], [255, 5]])
    assert pyramid.downsample_mean(a).dtype == np.uint8
    np.testing.assert_array_equal(pyramid.downsample_mean(np.array([[1, 2], [2, 2]], np.uint8)), [[2]])
    np.testing.assert_allclose(pyramid.downsample_mean(np.array([[1.0, 2.0], [2.0, 2.0]])), [[1.75]])
    labels = np.array([[0, 0, 0], [0, 3, 0], [0, 0, 2]], np.uint8)
    np.testing.assert_array_equal(pyramid.downsample_max(labels), [[3, 0], [0, 2]])


@pytest.mark.parametrize("label", [None, "repaired"])
def test_region_rebuild_equals_full_rebuild(tmp_path: Path, label: str | None) -> None:
    rng = np.random.default_rng(5)
    shape, high = (301, 259), (256 if label is None else 4)
    stores = [str(tmp_path / f"{name}.ome.zarr") for name in ("full", "region")]
    data = rng.integers(0, high, shape, dtype=np.uint8)
    patch = rng.integers(0, high, (37, 41), dtype=np.uint8)
    for path in stores:
        writer.create_image(path, shape, pixel_size_um=1.0, chunks=(32, 32), n_levels=5)
        writer.create_label(path, "repaired")
        writer.write_region(path, data, 0, 0, label=label)
        pyramid.rebuild_pyramid(path, label=label, window_px=64)
        writer.write_region(path, patch, 150, 215, label=label)
    full, region = stores
    ref = lambda p: p if label is None else f"{p}#labels/repaired"  # noqa: E731
    before = levels(ref(region))
    pyramid.rebuild_pyramid(full, label=label)
    done = pyramid.rebuild_pyramid(region, label=label, region=(150, 215, 37, 41), window_px=32)
    assert done == [(64, 96, 32, 32), (32, 32, 32, 32), (0, 0, 32, 32), (0, 0, 19, 17)]
    after, expected = levels(ref(region)), levels(ref(full))
    for level in range(5):
        np.testing.assert_array_equal(after[level], expected[level])
    assert not np.array_equal(after[1], before[1])
    reduce = pyramid.downsample_mean if label is None else pyramid.downsample_max
    chain = [after[0]]
    for _ in range(4):
        chain.append(reduce(chain[-1]))
    for got, want in zip(after, chain, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ngff", NGFF)
def test_stack_planes(tmp_path: Path, ngff: str) -> None:
    data = np.random.default_rng(6).integers(0, 256, (3, 40, 36), dtype=np.uint8)
    src = ome_zarr_input(tmp_path / "stack.ome.zarr", data, ngff)
    info = volume.read_info(src)
    assert info.axes == "zyx" and info.plane_shape == (40, 36) and info.chunks == (1, 32, 32)
    np.testing.assert_array_equal(volume.open_level(src, z=1).compute(), data[1])
    np.testing.assert_array_equal(volume.read_region(src, 5, 6, 7, 8, z=2), data[2, 5:12, 6:14])
    with pytest.raises(ValueError, match="needs z"):
        volume.open_level(src)
    with pytest.raises(ValueError, match="z=3 out of range"):
        volume.read_region(src, 0, 0, 1, 1, z=3)

    out = str(tmp_path / "out.ome.zarr")
    made = writer.create_like(info, out)
    assert (made.axes, made.shape, made.scale_um, made.chunks, made.n_levels, made.ngff) == (
        info.axes, info.shape, info.scale_um, info.chunks, info.n_levels, info.ngff
    )
    assert made.level_shapes == ((3, 40, 36), (3, 20, 18), (3, 10, 9))
    writer.create_label(out, "repaired")
    writer.write_region(out, data[1], 0, 0, z=1)
    writer.write_region(out, np.ones((2, 2), np.uint8), 0, 0, z=1, label="repaired")
    pyramid.rebuild_pyramid(out, z=1)
    pyramid.rebuild_pyramid(out, label="repaired")
    np.testing.assert_array_equal(volume.open_level(out, 1, z=1).compute(), pyramid.downsample_mean(data[1]))
    assert volume.open_level(out, 1, z=0).compute().sum() == 0
    assert volume.open_level(out + "#labels/repaired", 2, z=1).compute()[0, 0] == 1
    open_ome_zarr(out)


@pytest.mark.parametrize("ngff", NGFF)
def test_create_like_mirrors_input(tmp_path: Path, ngff: str) -> None:
    data = np.zeros((64, 48), dtype=np.uint16)
    info = volume.read_info(ome_zarr_input(tmp_path / "in.ome.zarr", data, ngff, unit="millimeter", scale=0.002))
    made = writer.create_like(info, tmp_path / "out.ome.zarr")
    for field in ("axes", "shape", "dtype", "chunks", "shards", "level_shapes", "downscale", "zarr_format", "ngff"):
        assert getattr(made, field) == getattr(info, field), field
    assert made.scale_um == pytest.approx(info.scale_um) and made.translation_um == pytest.approx(info.translation_um)
    assert made.pixel_size_um == pytest.approx((2.0, 2.0))
    with pytest.raises(FileExistsError):
        writer.create_like(info, tmp_path / "out.ome.zarr")
    with pytest.raises(FileExistsError):
        writer.create_label(tmp_path / "in.ome.zarr", "mask")


def test_clear_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.ome.zarr")
    with pytest.raises(FileNotFoundError, match="missing.ome.zarr"):
        volume.read_info(missing)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty.zarr: not a zarr group"):
        volume.read_info(empty)
    plain = str(tmp_path / "plain.zarr")
    zarr.open_group(plain, mode="w").create_array("0", shape=(4, 4), dtype="uint8")
    with pytest.raises(ValueError, match="plain.zarr: not an OME-Zarr multiscale"):
        volume.open_level(plain)
    cyx = str(tmp_path / "cyx.zarr")
    write_image(np.zeros((2, 16, 16), np.uint8), zarr.open_group(cyx, mode="w"), axes="cyx", scale_factors=())
    with pytest.raises(ValueError, match="cyx.zarr: axes 'cyx' not supported"):
        volume.read_region(cyx, 0, 0, 2, 2)
    out = str(tmp_path / "out.ome.zarr")
    writer.create_image(out, (16, 16), pixel_size_um=1.0, n_levels=1)
    with pytest.raises(FileNotFoundError, match="no group 'labels/nope'"):
        volume.read_info(out + "#labels/nope")
    with pytest.raises(ValueError, match="is not"):
        writer.create_image(tmp_path / "bad.zarr", (4, 4, 4, 4), pixel_size_um=1.0, n_levels=1)
    with pytest.raises(ValueError, match="one plane deep"):
        writer.create_image(tmp_path / "bad.zarr", (4, 4, 4), pixel_size_um=(1, 1, 1), chunks=(2, 4, 4), n_levels=1)
    with pytest.raises(ValueError, match="pixel_size_um needs 3 values"):
        writer.create_image(tmp_path / "bad.zarr", (4, 4, 4), pixel_size_um=1.0, n_levels=1)
    with pytest.raises(ValueError, match="label dtype must be integer"):
        writer.create_label(out, "f", dtype="float32")
