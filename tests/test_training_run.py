"""The training command: patch sampling away from artifacts, checkpoint/resume, 2-process DDP, the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, make_section, write_sections_table

from cytopaint.models import package as modelpkg
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet
from cytopaint.morphology import dilate
from cytopaint.models.patches import PatchSampler, load_section, mask_at_level, valid_origins
from cytopaint.models.training import TrainSettings, learning_rate, run_training, train_package
from cytopaint.models.training_monitor import SheetSettings, draw_samples, read_log, smoothed


def test_valid_origins_avoid_artifacts_and_background() -> None:
    img = np.full((64, 64), 120, dtype=np.uint8)
    img[:, 48:] = 245  # background on the right
    art = np.zeros_like(img, dtype=bool)
    art[:16, :16] = True
    origins = valid_origins(img, art, patch=16, stride=4)
    assert len(origins)
    for y, x in origins:
        assert not art[y:y + 16, x:x + 16].any()
        assert (img[y:y + 16, x:x + 16] < 225).mean() >= 0.7  # tissue is judged on a 9-px smoothed image
    assert origins[:, 1].max() <= 36 and origins[:, 1].min() == 0


def test_mask_at_level_up_and_down() -> None:
    m = np.zeros((4, 4), dtype=bool)
    m[1, 2] = True
    up = mask_at_level(m, (4, 4), (2, 2), (8, 8))  # mask at 4x level 0, training level at 2x
    assert up.sum() == 4 and up[2:4, 4:6].all()
    down = mask_at_level(up, (2, 2), (4, 4), (4, 4))
    assert np.array_equal(down, m)


@pytest.fixture
def sections(tmp_path: Path) -> Path:
    rows = []
    for i in range(2):
        make_section(tmp_path / f"s{i}.ome.zarr", (96, 96), seed=i, holes=[(0, 0, 40, 40)])
        rows.append((f"s{i}", f"s{i}.ome.zarr", f"s{i}.ome.zarr#labels/artifacts"))
    return write_sections_table(tmp_path / "sections.tsv", rows)


def test_loaded_patches_stay_clear_of_the_dilated_mask(sections: Path) -> None:
    sec = load_section("s0", str(sections.parent / "s0.ome.zarr"), str(sections.parent / "s0.ome.zarr#labels/artifacts"),
                       pixel_size_um=1.0, patch=16, margin_um=4)
    assert len(sec.origins)
    hole = np.zeros((96, 96), dtype=bool)
    hole[:40, :40] = True
    dilated = dilate(hole, 4)
    assert not any(dilated[y:y + 16, x:x + 16].any() for y, x in sec.origins)
    assert any(dilated[max(y - 1, 0):y + 16, max(x - 1, 0):x + 16].any() for y, x in sec.origins)  # near the hole
    sampler = PatchSampler([sec], 16)
    batch = sampler.sample(8, np.random.default_rng(0))
    assert batch.shape == (8, 16, 16) and batch.dtype == np.uint8


SETTINGS = TrainSettings(steps=6, batch_size=4, lr=1e-3, warmup=1, ema_decay=0.9, precision="fp32",
                         checkpoint_every=3, log_every=1)


def _sampler(sections: Path) -> PatchSampler:
    base = sections.parent
    return PatchSampler([load_section(f"s{i}", str(base / f"s{i}.ome.zarr"),
                                      str(base / f"s{i}.ome.zarr#labels/artifacts"), 1.0, 16)
                         for i in range(2)], 16)


def test_resume_continues_the_same_loss_curve(sections: Path, tmp_path: Path) -> None:
    diffusion = DiffusionConfig(steps=20).build()
    torch.manual_seed(0)
    full_ema, full = run_training(_sampler(sections), UNet(TINY), diffusion, SETTINGS, tmp_path / "full",
                                  progress=False)
    torch.manual_seed(0)
    run_training(_sampler(sections), UNet(TINY), diffusion, replace(SETTINGS, steps=3), tmp_path / "part",
                 progress=False)
    with open(tmp_path / "part" / "log.tsv", "a") as f:  # a row logged after the checkpoint, before a kill
        f.write("4\t9\t9\t9\t9\t9\t9\n")
    torch.manual_seed(123)  # a fresh process: weights come from the checkpoint, not the seed
    resumed_ema, rest = run_training(_sampler(sections), UNet(TINY), diffusion, SETTINGS, tmp_path / "part",
                                     resume=True, progress=False)
    assert [h["step"] for h in rest] == [4, 5, 6]
    assert [h["loss"] for h in rest] == [h["loss"] for h in full[3:]]
    for a, b in zip(full_ema.shadow.parameters(), resumed_ema.shadow.parameters()):
        assert torch.equal(a, b)
    log = (tmp_path / "part" / "log.tsv").read_text().splitlines()
    assert log[0].startswith("step\tloss") and [int(r.split("\t")[0]) for r in log[1:]] == [1, 2, 3, 4, 5, 6]


def test_train_package_writes_a_loadable_model_with_provenance(sections: Path, tmp_path: Path) -> None:
    card = train_package(str(sections), tmp_path / "model", pixel_size_um=1.0, arch=TINY, settings=SETTINGS,
                         diffusion=DiffusionConfig(steps=20), command="cytopaint train --test", progress=False)
    loaded = modelpkg.load(tmp_path / "model")
    assert loaded.card == card
    assert card["training"]["command"] == "cytopaint train --test"
    assert card["training"]["seed"] == 0 and len(card["training"]["data"]) == 2
    assert card["pixel_size_um"] == 1.0 and card["tile_size"] == 16
    again = train_package(str(sections), tmp_path / "model", pixel_size_um=1.0, arch=TINY, settings=SETTINGS,
                          diffusion=DiffusionConfig(steps=20), command="cytopaint train --resume", resume=True,
                          progress=False)  # nothing left to train: packaged again, the command recorded
    assert again["training"]["resumed_by"] == ["cytopaint train --resume"]
    assert again["weights"]["sha256"] == card["weights"]["sha256"]
    with pytest.raises(ValueError, match=f"at step {SETTINGS.steps}, beyond --steps 2"):
        train_package(str(sections), tmp_path / "model", pixel_size_um=1.0, arch=TINY,
                      settings=replace(SETTINGS, steps=2), diffusion=DiffusionConfig(steps=20), resume=True,
                      progress=False)


def test_init_starts_from_a_packaged_models_weights(sections: Path, tmp_path: Path) -> None:
    """With lr 0 the weights cannot move, so a model trained from --init is its source, bit for bit."""
    kw = dict(pixel_size_um=1.0, arch=TINY, diffusion=DiffusionConfig(steps=20), progress=False)
    src = train_package(str(sections), tmp_path / "src", settings=SETTINGS, **kw)
    frozen = replace(SETTINGS, steps=2, lr=0.0)
    card = train_package(str(sections), tmp_path / "tuned", settings=frozen, init=str(tmp_path / "src"), **kw)
    assert card["training"]["initialised_from"]["sha256"] == src["weights"]["sha256"]
    assert card["training"]["initialised_from"]["steps"] == SETTINGS.steps
    a, b = modelpkg.load(tmp_path / "src").network, modelpkg.load(tmp_path / "tuned").network
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    fresh = train_package(str(sections), tmp_path / "fresh", settings=frozen, **kw)
    assert "initialised_from" not in fresh["training"] and fresh["weights"]["sha256"] != src["weights"]["sha256"]
    with pytest.raises(modelpkg.ModelPackageError, match="architecture"):
        train_package(str(sections), tmp_path / "other", settings=frozen, init=str(tmp_path / "src"),
                      **{**kw, "arch": replace(TINY, model_channels=64)})
    with pytest.raises(modelpkg.ModelPackageError, match="diffusion steps"):
        train_package(str(sections), tmp_path / "other", settings=frozen, init=str(tmp_path / "src"),
                      **{**kw, "diffusion": DiffusionConfig(steps=30)})


def test_pictures_at_checkpoints_leave_the_training_unchanged(sections: Path, tmp_path: Path) -> None:
    diffusion = DiffusionConfig(steps=20).build()
    sheets: list[tuple[int, np.ndarray]] = []

    def pictures(step: int, ema) -> None:
        images = draw_samples(ema.shadow, diffusion, 16, SheetSettings(count=3, steps=5), torch.device("cpu"))
        sheets.append((step, images))

    torch.manual_seed(0)
    _, plain = run_training(_sampler(sections), UNet(TINY), diffusion, SETTINGS, tmp_path / "plain", progress=False)
    torch.manual_seed(0)
    _, watched = run_training(_sampler(sections), UNet(TINY), diffusion, SETTINGS, tmp_path / "watched",
                              progress=False, on_checkpoint=pictures)
    assert [h["loss"] for h in watched] == [h["loss"] for h in plain]
    assert [s for s, _ in sheets] == [3, 6]
    assert sheets[0][1].shape == (3, 16, 16) and np.abs(sheets[0][1]).max() <= 1.0
    assert not np.array_equal(sheets[0][1], sheets[1][1])  # the EMA moved between checkpoints


def test_train_package_writes_loss_curve_and_sample_sheet(sections: Path, tmp_path: Path) -> None:
    kw = dict(pixel_size_um=1.0, arch=TINY, settings=SETTINGS, diffusion=DiffusionConfig(steps=20), progress=False)
    train_package(str(sections), tmp_path / "m", **kw)
    for name in ("loss.png", "samples.png"):
        assert (tmp_path / "m.run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train_package(str(sections), tmp_path / "quiet", sheet=SheetSettings(count=0), **kw)
    assert (tmp_path / "quiet.run" / "loss.png").exists() and not (tmp_path / "quiet.run" / "samples.png").exists()


def test_log_reading_and_smoothing(tmp_path: Path) -> None:
    (tmp_path / "log.tsv").write_text("step\tloss\n10\t1\n20\t2\n30\t3\n40\t4\n")
    log = read_log(tmp_path / "log.tsv")
    assert log["step"].tolist() == [10, 20, 30, 40]
    assert smoothed(log["loss"], 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    (tmp_path / "empty.tsv").write_text("step\tloss\n")
    assert read_log(tmp_path / "empty.tsv")["loss"].size == 0


def test_two_process_gloo_ddp_training_step(sections: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes: gradients are averaged, so both ranks end with identical weights."""
    (tmp_path / "arch.json").write_text(json.dumps(TINY.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "cytopaint.cli", "train", "--sections", str(sections), "--out", str(tmp_path / "ddp"),
           "--pixel-size", "1", "--arch", str(tmp_path / "arch.json"), "--diffusion-steps", "20", "--steps", "3",
           "--batch-size", "2", "--precision", "fp32", "--checkpoint-every", "3", "--quiet"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    card = modelpkg.read_card(tmp_path / "ddp")
    assert card["training"]["world_size"] == 2
    meta = json.loads((tmp_path / "ddp.run" / "checkpoint" / "state.json").read_text())
    assert meta["world_size"] == 2 and "numpy_rng.1" in meta


def test_learning_rate_warms_up_then_holds_or_anneals() -> None:
    const = TrainSettings(steps=110, lr=1e-3, warmup=10)
    assert [learning_rate(s, const) for s in (1, 5, 10, 11, 110)] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3, 1e-3])
    cos = replace(const, lr_schedule="cosine", lr_min=1e-5)
    assert learning_rate(5, cos) == pytest.approx(5e-4)  # the same warm-up
    assert learning_rate(10, cos) == pytest.approx(1e-3)
    assert learning_rate(60, cos) == pytest.approx((1e-3 + 1e-5) / 2)  # half way down the cosine
    assert learning_rate(110, cos) == pytest.approx(1e-5)
    lrs = [learning_rate(s, cos) for s in range(10, 111)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError, match="unknown lr schedule 'step'"):
        replace(const, lr_schedule="step")  # refused when the settings are made, before any training


def test_cosine_schedule_reaches_the_log_and_the_card(sections: Path, tmp_path: Path) -> None:
    settings = replace(SETTINGS, lr_schedule="cosine", lr_min=1e-4, warmup=2)
    card = train_package(str(sections), tmp_path / "model", pixel_size_um=1.0, arch=TINY, settings=settings,
                         diffusion=DiffusionConfig(steps=20), progress=False)
    log = np.loadtxt(tmp_path / "model.run" / "log.tsv", skiprows=1, ndmin=2)
    assert log[:, 5] == pytest.approx([learning_rate(s, settings) for s in range(1, 7)], rel=1e-5)
    assert log[-1, 5] == pytest.approx(1e-4, rel=1e-5) and log[1, 5] == pytest.approx(1e-3, rel=1e-5)
    assert card["training"]["lr_schedule"] == "cosine" and card["training"]["lr_min"] == 1e-4
