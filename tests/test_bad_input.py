"""Bad input is refused before any GPU work, with a message that names the problem."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_section
from test_workflow import REPO, snakemake, write_stack

from cytopaint.blend.stage import blend_section
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.io import volume, writer
from cytopaint.models import package as modelpkg
from cytopaint.plan.ownership import batch_dependencies
from cytopaint.plan.section import Section
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.repaint.stage import RepaintConfig, run_batch

FAST = RepaintConfig(jump_length=1, jump_n_sample=1, steps=2)


@pytest.fixture
def model(tmp_path: Path, tiny_net) -> str:
    modelpkg.save(tmp_path / "model", tiny_net, name="tiny", diffusion=DiffusionConfig(steps=10), pixel_size_um=1.0,
                  training={"command": "test", "data": [], "seed": 0, "code_version": "test"})
    return str(tmp_path / "model")


def _float_section(path: Path, image: np.ndarray, hole=(20, 20, 10, 12)) -> Section:
    mask = np.zeros(image.shape, dtype=np.uint8)
    y, x, h, w = hole
    mask[y:y + h, x:x + w] = 1
    writer.write_section(path, image, pixel_size_um=1.0, n_levels=2, labels={"artifacts": mask}, chunks=(32, 32))
    return Section("f", str(path), f"{path}#labels/artifacts")


def _repair(section: Section, model: str, plan_dir: Path, norm: dict | None) -> tuple[np.ndarray, np.ndarray]:
    plan_section(section, model, TilingConfig(margin_um=1, min_known=0.2), norm, plan_dir)
    plan, summary = read_plan_dir(plan_dir)
    deps, files = batch_dependencies(plan), {}
    for b in summary["batches"]:
        files[b] = plan_dir.parent / f"batch_{b}.npz"
        run_batch(Section.from_plan(summary), plan, b, [files[d] for d in deps[b]], model,
                  RepaintConfig(jump_length=1, jump_n_sample=1, steps=2, normalization=norm), files[b], progress=False)
    out = plan_dir.parent / "out.ome.zarr"
    blend_section(section.image, None, list(files.values()), out)
    return np.asarray(volume.open_level(out, 0)), np.asarray(volume.open_level(f"{out}#labels/repaired", 0)) > 0


def test_a_float_image_is_repaired_in_its_own_range(tmp_path: Path, model: str) -> None:
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    section = _float_section(tmp_path / "f.ome.zarr", image)
    after, repaired = _repair(section, model, tmp_path / "plan", {"input_range": [0, 1]})
    assert after.dtype == np.float32 and repaired.sum() > 0
    assert np.array_equal(after[~repaired], image[~repaired])
    assert np.isfinite(after).all() and after[repaired].min() >= 0 and after[repaired].max() <= 1


def test_nan_in_the_context_of_a_tile_is_refused_at_planning(tmp_path: Path, model: str) -> None:
    image = np.full((64, 64), 0.5, dtype=np.float32)
    image[18, 40] = np.nan  # inside a window around the hole
    with pytest.raises(ValueError, match=r"NaN or infinite values .* y=18, x=40"):
        plan_section(_float_section(tmp_path / "f.ome.zarr", image), model, TilingConfig(margin_um=1), {"input_range": [0, 1]},
                     tmp_path / "plan")
    far = np.full((96, 96), 0.5, dtype=np.float32)
    far[90, 90] = np.inf  # read by no tile: copied as it is
    plan_section(_float_section(tmp_path / "g.ome.zarr", far, hole=(4, 4, 6, 6)), model, TilingConfig(margin_um=1),
                 {"input_range": [0, 1]}, tmp_path / "plan2")


def _truncate_chunk(store: Path, key: str) -> None:
    chunk = store / "0" / key
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])


def test_a_truncated_chunk_is_named_with_its_store(tmp_path: Path, model: str) -> None:
    under = make_section(tmp_path / "u.ome.zarr", (64, 64), holes=[(20, 20, 8, 8)])
    _truncate_chunk(under, "c/0/0")  # a chunk the tiles read as context
    with pytest.raises(ValueError, match=r"u\.ome\.zarr: chunk 'c/0/0' of array '0' cannot be read"):
        plan_section(Section("u", str(under), f"{under}#labels/artifacts"), model, TilingConfig(margin_um=1), None,
                     tmp_path / "p")
    elsewhere = make_section(tmp_path / "e.ome.zarr", (96, 96), holes=[(4, 4, 6, 6)])
    _truncate_chunk(elsewhere, "c/2/2")  # far from the artifact: found when blending
    section = Section("e", str(elsewhere), f"{elsewhere}#labels/artifacts")
    plan_section(section, model, TilingConfig(margin_um=1), None, tmp_path / "q")
    plan, summary = read_plan_dir(tmp_path / "q")
    files = []
    for b in summary["batches"]:
        files.append(tmp_path / f"b{b}.npz")
        run_batch(Section.from_plan(summary), plan, b, files[:-1], model, FAST, files[-1], progress=False)
    with pytest.raises(ValueError, match=r"e\.ome\.zarr.*chunk 'c/2/2' of array '0' cannot be read"):
        blend_section(str(elsewhere), None, files, tmp_path / "out.ome.zarr")
    assert not (tmp_path / "out.ome.zarr").exists()


def test_a_plane_beyond_the_stack_is_refused_at_planning(tmp_path: Path, model: str) -> None:
    stack = tmp_path / "stack.ome.zarr"
    writer.create_image(stack, (2, 64, 64), pixel_size_um=(20.0, 1.0, 1.0), n_levels=1, chunks=(32, 32))
    writer.create_label(stack, "artifacts")
    with pytest.raises(ValueError, match=r"z=7 out of range \(0\.\.1\)"):
        plan_section(Section("s", str(stack), f"{stack}#labels/artifacts", z=7), model, TilingConfig(), None,
                     tmp_path / "p")


def _run(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_a_tampered_model_stops_the_run_before_any_section_is_planned(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    weights = tmp_path / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    out = _run(tmp_path)
    assert out.returncode != 0
    assert "sha256" in (tmp_path / "results" / "logs" / "verify_model.log").read_text()
    assert "sha256" in out.stderr  # the failed job's log is shown (show-failed-logs)
    assert not (tmp_path / "results" / "sections").exists()


def test_a_second_run_on_the_same_results_folder_is_refused(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    (tmp_path / "results").mkdir()
    fd = os.open(tmp_path / "results" / ".cytopaint.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the first run's snakemake process holds it
    os.write(fd, b"pid 1 on elsewhere, working directory /other\n")
    try:
        out = _run(tmp_path)
        assert out.returncode != 0 and "is in use by another snakemake run (pid 1 on elsewhere" in out.stderr
        assert not (tmp_path / "results" / "sections").exists()
    finally:
        os.close(fd)
    snakemake(tmp_path)  # the lock went with its holder
    assert (tmp_path / "results" / "sections" / "s0" / "manifest.json").is_file()


def test_a_mask_over_the_whole_image_is_said_on_the_console(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["tiling"]["min_known"] = 0.5
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    store = tmp_path / "data" / "s0.ome.zarr"
    writer.write_region(store, np.ones((96, 96), dtype=np.uint8), 0, 0, label="artifacts")
    out = snakemake(tmp_path)
    assert "tiles lack context and their artifact pixels are NOT repaired" in out.stderr and "s0:" in out.stderr


def test_a_batch_that_runs_out_of_gpu_memory_is_sampled_in_halves(tmp_path: Path, model: str, monkeypatch) -> None:
    import torch

    from cytopaint.repaint import tiles as tiles_module

    section = make_section(tmp_path / "s.ome.zarr", (64, 64), holes=[(4, 4, 56, 56)])
    plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model,
                 TilingConfig(margin_um=0, min_known=0.0, max_batch=16), None, tmp_path / "plan")
    plan, summary = read_plan_dir(tmp_path / "plan")
    batch = summary["batches"][0]
    assert (plan["batch"] == batch).sum() >= 4
    run_batch(Section.from_plan(summary), plan, batch, [], model, FAST, tmp_path / "whole.npz", progress=False)
    real, calls = tiles_module.sample, []

    def small_gpu(network, diffusion, known, *args, **kwargs):
        calls.append(known.shape[0])
        if known.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(network, diffusion, known, *args, **kwargs)

    monkeypatch.setattr(tiles_module, "sample", small_gpu)
    run_batch(Section.from_plan(summary), plan, batch, [], model, FAST, tmp_path / "halves.npz", progress=False)
    assert max(calls) > 2 and calls[-1] <= 2
    from cytopaint.io.batchfile import read_batch

    whole, halves = read_batch(tmp_path / "whole.npz")[0], read_batch(tmp_path / "halves.npz")[0]
    assert [t.tile for t in whole] == [t.tile for t in halves]
    for a, b in zip(whole, halves, strict=True):
        assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.owned, b.owned)


def test_a_full_disk_fails_cleanly_and_a_rerun_succeeds(tmp_path: Path, model: str, monkeypatch) -> None:
    import errno

    from cytopaint.io import batchfile, pyramid
    from cytopaint.io.digest import level0_digest

    section = make_section(tmp_path / "s.ome.zarr", (64, 64), holes=[(20, 20, 10, 10)])
    input_digest = level0_digest(section)
    plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model, TilingConfig(margin_um=1), None,
                 tmp_path / "plan")
    plan, summary = read_plan_dir(tmp_path / "plan")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    batches = tmp_path / "batches"
    with monkeypatch.context() as m:
        m.setattr(batchfile.np, "savez_compressed", no_space)
        with pytest.raises(OSError, match="No space left"):
            run_batch(Section.from_plan(summary), plan, summary["batches"][0], [], model, FAST, batches / "batch_0.npz",
                      progress=False)
    assert list(batches.iterdir()) == []  # no partial batch file
    files = []
    for b in summary["batches"]:
        files.append(batches / f"batch_{b}.npz")
        run_batch(Section.from_plan(summary), plan, b, files[:-1], model, FAST, files[-1], progress=False)
    out = tmp_path / "repaired.ome.zarr"
    with monkeypatch.context() as m:
        m.setattr(pyramid, "downsample_mean", no_space)
        with pytest.raises(OSError, match="No space left"):
            blend_section(str(section), None, files, out)
    assert not out.exists() and not (tmp_path / "repaired.ome.zarr.partial").exists()
    receipt = blend_section(str(section), None, files, out)
    assert level0_digest(section) == input_digest  # the input was never written
    assert receipt["sha256_level0"] == level0_digest(out)


def test_gpu_jobs_sized_by_run_time_get_the_samplers_nfe_and_a_half_setting_is_refused(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["tiling"].update(job_minutes=30, seconds_per_nfe=0.03)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = _run(tmp_path, "-n", "-p")
    nfe = RepaintConfig(**config["repaint"]).nfe(20)  # the test model's 20 diffusion steps
    assert out.returncode == 0 and f"--nfe {nfe} --record-failure" in out.stdout, out.stderr[-3000:]

    del config["tiling"]["seconds_per_nfe"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = _run(tmp_path, "-n")
    assert out.returncode != 0 and "config: tiling.job_minutes and tiling.seconds_per_nfe go together" in out.stdout


def test_gpu_batch_auto_is_a_valid_setting_and_another_word_is_refused(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    for value, ok in (("auto", True), ("many", False)):
        config["repaint"]["gpu_batch"] = value
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        out = _run(tmp_path, "-n")
        assert (out.returncode == 0) == ok and (ok or "gpu_batch" in out.stdout + out.stderr), out.stderr[-3000:]
