"""Tests for cytopaint.masks: loading, nearest upsampling, dilation, components."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from cytopaint.io import pyramid, volume, writer
from cytopaint.io.masks import load_mask
from cytopaint.morphology import components, dilate, upsample_window


def make_image(tmp_path: Path, shape: tuple[int, ...] = (64, 48), px: float | tuple = 1.0) -> volume.ImageInfo:
    return writer.create_image(tmp_path / "img.ome.zarr", shape, pixel_size_um=px, chunks=(16, 16), n_levels=3)


def make_mask(tmp_path: Path, data: np.ndarray, px: float | tuple[float, ...], name: str = "mask.ome.zarr") -> str:
    path = str(tmp_path / name)
    writer.create_image(path, data.shape, pixel_size_um=px, chunks=(16, 16), n_levels=2)
    for z, plane in enumerate(data if data.ndim == 3 else [data]):
        writer.write_region(path, plane, 0, 0, z=z if data.ndim == 3 else None)
    pyramid.rebuild_pyramid(path)
    return path


def test_load_mask_from_image_labels(tmp_path: Path) -> None:
    info = make_image(tmp_path)
    writer.create_label(info.path, "artifacts")
    values = np.zeros((64, 48), np.uint8)
    values[10:20, 5:9] = 3  # label values may encode the artifact class
    writer.write_region(info.path, values, 0, 0, label="artifacts")
    pyramid.rebuild_pyramid(info.path, label="artifacts")
    mask, factor = load_mask(info.path + "#labels/artifacts", info)
    assert isinstance(mask, da.Array) and mask.dtype == bool and factor == (1, 1)
    np.testing.assert_array_equal(mask.compute(), values > 0)
    coarse, factor = load_mask(info.path + "#labels/artifacts", info, level=2)
    assert factor == (4, 4) and coarse.shape == (16, 12)
    assert coarse.compute()[2:5, 1:3].all() and coarse.compute().sum() == 6


def test_load_coarse_separate_store(tmp_path: Path) -> None:
    info = make_image(tmp_path, (64, 50), px=0.5)  # 32 x 25 um
    coarse = np.zeros((8, 7), np.uint8)  # 4 um pixels: 32 x 28 um, within one coarse pixel
    coarse[2, 3] = 1
    path = make_mask(tmp_path, coarse, 4.0)
    mask, factor = load_mask(path, info)
    assert factor == (8, 8)
    window = upsample_window(mask, factor, 16, 24, 8, 8)
    assert window.all()
    _, factor1 = load_mask(path, info, level=1)
    assert factor1 == (16, 16)


def test_load_mask_rejects_mismatch(tmp_path: Path) -> None:
    info = make_image(tmp_path, (64, 48))
    too_small = make_mask(tmp_path, np.zeros((14, 12), np.uint8), 4.0, "small.zarr")  # 56 um vs 64 um
    with pytest.raises(ValueError, match="small.zarr: y extent 56 um .* disagrees"):
        load_mask(too_small, info)
    odd = make_mask(tmp_path, np.zeros((43, 32), np.uint8), 1.5, "odd.zarr")
    with pytest.raises(ValueError, match="not an integer multiple"):
        load_mask(odd, info)
    with pytest.raises(ValueError, match="level 5 out of range"):
        load_mask(make_mask(tmp_path, np.zeros((16, 12), np.uint8), 4.0, "ok.zarr"), info, level=5)
    with pytest.raises(FileNotFoundError, match="nope.zarr"):
        load_mask(tmp_path / "nope.zarr", info)


def test_load_mask_stack_plane(tmp_path: Path) -> None:
    info = make_image(tmp_path, (3, 32, 32), px=(20.0, 1.0, 1.0))
    data = np.zeros((3, 16, 16), np.uint8)
    data[1, 4, 4] = 1
    path = make_mask(tmp_path, data, (20.0, 2.0, 2.0))
    mask, factor = load_mask(path, info, z=1)
    assert factor == (2, 2) and mask.compute().sum() == 1 and mask.compute()[4, 4]
    assert load_mask(path, info, z=0)[0].compute().sum() == 0
    with pytest.raises(ValueError, match="needs z"):
        load_mask(path, info)
    flat = make_mask(tmp_path, data[1], 2.0, "flat.zarr")  # a 2-D mask serves any plane
    assert load_mask(flat, info, z=2)[0].compute()[4, 4]


@pytest.mark.parametrize("factor", [1, 3, (2, 5)])
def test_upsample_window_matches_full_repeat(factor: int | tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    coarse = rng.random((7, 6)) < 0.4
    fy, fx = (factor, factor) if isinstance(factor, int) else factor
    full = np.repeat(np.repeat(coarse, fy, 0), fx, 1)
    pad = 40  # the full mask inside a margin of False: windows may stick out of the mask
    padded = np.pad(full, pad)
    for y0, x0, h, w in [(0, 0, 5, 5), (3, 4, 11, 9), (-4, -3, 8, 30), (full.shape[0] - 2, 1, 9, 4), (-40, 30, 3, 3)]:
        got = upsample_window(coarse, factor, y0, x0, h, w)
        np.testing.assert_array_equal(got, padded[y0 + pad : y0 + pad + h, x0 + pad : x0 + pad + w])
    lazy = upsample_window(da.from_array(coarse, chunks=3), factor, 2, 2, 6, 6)
    np.testing.assert_array_equal(lazy, padded[pad + 2 : pad + 8, pad + 2 : pad + 8])


def brute_dilate(mask: np.ndarray, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    out = np.zeros_like(mask)
    for y, x in zip(*np.nonzero(mask), strict=True):
        out |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    return out


@pytest.mark.parametrize("radius", [0, 1, 2.5, 6])
def test_dilate_is_a_disk(radius: float) -> None:
    mask = np.random.default_rng(1).random((40, 50)) < 0.01
    mask[0, 0] = mask[39, 25] = True  # at the borders
    want = brute_dilate(mask, radius)
    np.testing.assert_array_equal(dilate(mask, radius), want)
    lazy = dilate(da.from_array(mask, chunks=(16, 16)), radius)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), want)


def test_dilate_single_pixel_and_empty() -> None:
    mask = np.zeros((9, 9), bool)
    assert not dilate(mask, 3).any()
    mask[4, 4] = True
    disk = dilate(mask, 2)
    assert disk.sum() == 13  # lattice points with x^2 + y^2 <= 4
    assert disk[4, 2] and disk[2, 4] and not disk[2, 2]
    assert dilate(mask, 0).sum() == 1 and mask.sum() == 1


def test_components_labels_and_boxes() -> None:
    mask = np.zeros((10, 12), bool)
    mask[1:3, 1:4] = True
    mask[3, 4] = True  # touches the first blob diagonally: same component
    mask[6:9, 8:10] = True
    labels, boxes = components(mask)
    assert labels.dtype == np.int32 and labels.max() == 2
    np.testing.assert_array_equal(boxes, [[1, 1, 3, 4], [6, 8, 3, 2]])
    assert (labels[mask] > 0).all() and (labels[~mask] == 0).all()
    empty_labels, empty_boxes = components(np.zeros((4, 4), bool))
    assert empty_labels.max() == 0 and empty_boxes.shape == (0, 4)
