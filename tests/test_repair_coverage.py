"""Every artifact pixel is repaired or reported, for masks whose pyramid loses small artifacts.

Label pyramids are usually nearest-downsampled (ome-zarr's `write_labels` does so by default), so
an artifact smaller than a coarse pixel is absent from the coarse levels. Planning must read the
finest level (here through `morphology.AnyPooled`), or such artifacts are never repaired and
nothing says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import TINY, blob_image
from ome_zarr.format import FormatV05
from ome_zarr.writer import write_image, write_labels

from cytopaint.blend.stage import LABEL, blend_section
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet
from cytopaint.io import masks, volume
from cytopaint.models import package as modelpkg
from cytopaint.morphology import AnyPooled, upsample_window
from cytopaint.plan.ownership import batch_dependencies, core_box
from cytopaint.plan.section import Section
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.plan.table import STATUS_INSUFFICIENT
from cytopaint.repaint.stage import RepaintConfig, run_batch

SHAPE = (192, 192)


def crystals(seed: int) -> np.ndarray:
    """Crystal-sized artifacts (1-3 px) scattered over the section, plus one tear-like band."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=np.uint8)
    for _ in range(14):
        y, x = rng.integers(4, SHAPE[0] - 8, 2)
        h, w = rng.integers(1, 4, 2)
        mask[y:y + h, x:x + w] = 4
    mask[100:104, 20:90] = 1
    return mask


def third_party_section(path: Path, seed: int) -> tuple[str, np.ndarray]:
    """Image and artifact labels written by ome-zarr itself, with its default (nearest) label pyramid."""
    group = zarr.open_group(path, mode="w", zarr_format=3)
    write_image(blob_image(SHAPE, seed), group, fmt=FormatV05(), axes="yx", scale_factors=(2, 4, 8),
                storage_options={"chunks": (64, 64)})
    mask = crystals(seed)
    write_labels(mask, group, name="artifacts", fmt=FormatV05(), axes="yx")
    return str(path), mask


@pytest.fixture(scope="module")
def model_64(tmp_path_factory) -> str:
    """A tiny network on 64 px tiles: cores of 32 px, so the planner may pool the mask by 8."""
    path = tmp_path_factory.mktemp("model") / "m"
    torch.manual_seed(0)
    net = UNet(TINY.__class__(**{**TINY.to_dict(), "image_size": 64}))
    modelpkg.save(path, net, name="tiny64", diffusion=DiffusionConfig(steps=10), pixel_size_um=1.0,
                  training={"command": "test", "data": [], "seed": 0, "code_version": "test"})
    return str(path)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_artifact_pixel_is_repaired_or_reported(tmp_path: Path, model_64: str, seed: int) -> None:
    image, mask = third_party_section(tmp_path / "s.ome.zarr", seed)
    mask_ref = f"{image}#labels/artifacts"
    info = volume.read_info(image)
    coarse, factor = masks.load_mask(mask_ref, info, level=3)
    assert factor == (8, 8)
    nearest = upsample_window(np.asarray(coarse), factor, 0, 0, *SHAPE)
    assert (mask.astype(bool) & ~nearest).any(), "the test needs artifacts that vanish at the coarse level"

    section = Section("s", image, mask_ref)
    plan_section(section, model_64, TilingConfig(margin_um=1, min_known=0.2, max_batch=4), None, tmp_path / "plan")
    plan, summary = read_plan_dir(tmp_path / "plan")
    assert summary["mask_factor"] == [8, 8] and summary["mask_level"] == 0
    deps, files = batch_dependencies(plan), {}
    for b in summary["batches"]:
        files[b] = tmp_path / f"batch_{b}.npz"
        run_batch(Section.from_plan(summary), plan, b, [files[d] for d in deps[b]], model_64,
                  RepaintConfig(jump_length=1, jump_n_sample=1, steps=2), files[b], progress=False)
    out = tmp_path / "repaired.ome.zarr"
    blend_section(image, None, list(files.values()), out)

    repaired = np.asarray(volume.open_level(f"{out}#labels/{LABEL}", 0)) > 0
    reported = np.zeros(SHAPE, dtype=bool)
    for tile in plan[plan["status"] == STATUS_INSUFFICIENT].itertuples():
        reported[core_box(tile).slices()] = True
    missed = mask.astype(bool) & ~repaired & ~reported
    assert not missed.any(), f"{int(missed.sum())} artifact pixels neither repaired nor reported"
    before, after = np.asarray(volume.open_level(image, 0)), np.asarray(volume.open_level(out, 0))
    assert np.array_equal(after[~repaired], before[~repaired])


def test_any_pooling_is_the_block_maximum_of_the_finest_level() -> None:
    rng = np.random.default_rng(3)
    fine = (rng.random((37, 53)) > 0.97).astype(np.uint8) * 4
    pooled = AnyPooled(zarr.array(fine, chunks=(10, 10)), (4, 3))
    padded = np.zeros((40, 54), dtype=bool)
    padded[:37, :53] = fine > 0
    expected = padded.reshape(10, 4, 18, 3).any(axis=(1, 3))
    assert pooled.shape == (10, 18)
    assert np.array_equal(pooled[:, :], expected)
    assert np.array_equal(pooled[3:7, 5:20], expected[3:7, 5:18])
    assert pooled[6:2, :].shape == (0, 18)
    with pytest.raises(ValueError, match="step"):
        pooled[::2, :]
