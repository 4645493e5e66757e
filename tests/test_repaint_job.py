"""Planning a section and running its repaint batches with a tiny packaged model."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import make_section

from cytopaint.models import package as modelpkg

from cytopaint.plan.ownership import dilated_window

from cytopaint.io import volume, writer
from cytopaint.io.batchfile import read_batch
from cytopaint.diffusion.execution import Execution
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.plan.ownership import batch_dependencies
from cytopaint.repaint.memory import CPU_TILES_PER_CALL
from cytopaint.repaint.stage import RepaintConfig, run_batch
from cytopaint.plan.section import Section

FAST = RepaintConfig(jump_length=2, jump_n_sample=2, steps=6)
TRAINING = {"command": "test", "data": [], "seed": 0, "code_version": "test"}


@pytest.fixture
def model(tmp_path: Path, tiny_net) -> str:
    modelpkg.save(tmp_path / "model", tiny_net, name="tiny", diffusion=DiffusionConfig(steps=20), pixel_size_um=1.0,
                  training=TRAINING)
    return str(tmp_path / "model")


@pytest.fixture
def section(tmp_path: Path) -> Path:
    return make_section(tmp_path / "s.ome.zarr", (64, 64), holes=[(20, 20, 14, 18), (50, 4, 3, 3)])


def _run_all(section: Path, model: str, plan_dir: Path, out_dir: Path, config: RepaintConfig = FAST,
             execution: Execution = Execution()) -> dict[int, Path]:
    plan, summary = read_plan_dir(plan_dir)
    deps = batch_dependencies(plan)
    files = {}
    for b in summary["batches"]:
        files[b] = out_dir / f"batch_{b}.npz"
        run_batch(Section.from_plan(summary), plan, b, [files[d] for d in deps[b]], model, config, files[b],
                  progress=False, execution=execution)
    return files


def _compose(section: Path, files: dict[int, Path]) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(volume.open_level(str(section)))
    out, owned = image.copy(), np.zeros(image.shape, dtype=bool)
    for f in files.values():
        for t in read_batch(f)[0]:
            h, w = t.owned.shape
            region = out[t.y0:t.y0 + h, t.x0:t.x0 + w]
            region[t.owned] = t.pixels[t.owned]
            assert not (owned[t.y0:t.y0 + h, t.x0:t.x0 + w] & t.owned).any()
            owned[t.y0:t.y0 + h, t.x0:t.x0 + w] |= t.owned
    return out, owned


@pytest.mark.parametrize(("config", "nfe"), [(FAST, 6 + 1 * 2 * 2),
                                             (replace(FAST, method="ddnm", resample_start=0.5), 6 + 1 * 2 * 1),
                                             (replace(FAST, method="diffpir", zeta=0.5), 6 + 1 * 2 * 2)])
def test_plan_and_batches_repair_exactly_the_dilated_mask(section: Path, model: str, tmp_path: Path,
                                                          config: RepaintConfig, nfe: int) -> None:
    cfg = TilingConfig(margin_um=2, max_batch=2)
    summary = plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model, cfg, None, tmp_path / "plan")
    assert summary["tile_size"] == 16 and summary["margin_px"] == 2 and summary["batches"]
    files = _run_all(section, model, tmp_path / "plan", tmp_path / "b", config)
    out, owned = _compose(section, files)
    image = np.asarray(volume.open_level(str(section)))
    mask = np.asarray(volume.open_level(f"{section}#labels/artifacts")) > 0
    dilated = dilated_window(mask, 1, mask.shape, 2, 0, 0, *mask.shape)
    assert np.array_equal(owned, dilated)  # every dilated-mask pixel generated, nothing else
    assert np.array_equal(out[~owned], image[~owned])
    assert (out[owned] != image[owned]).mean() > 0.5
    meta = read_batch(files[summary["batches"][0]])[1]
    assert meta["nfe_per_tile"] == nfe and meta["model"]["sha256"]
    assert meta["sampler"]["method"] == config.method and meta["sampler"]["resample_start"] == config.resample_start


def test_tile_results_do_not_depend_on_batching_and_reruns_are_identical(section: Path, model: str,
                                                                        tmp_path: Path) -> None:
    runs = (("a", 8, FAST), ("b", 1, FAST), ("c", 1, FAST), ("d", 8, replace(FAST, gpu_batch=1)),
            ("e", 8, replace(FAST, gpu_batch="auto")))
    for name, max_batch, _ in runs:
        plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model,
                     TilingConfig(margin_um=2, max_batch=max_batch), None, tmp_path / name / "plan")
    files = [_run_all(section, model, tmp_path / n / "plan", tmp_path / n / "b", cfg) for n, _, cfg in runs]
    outs = [_compose(section, f)[0] for f in files]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])  # also when a job samples its tiles one by one
    for f, most in ((files[0], 8), (files[3], 1), (files[4], CPU_TILES_PER_CALL)):  # auto on the CPU: a fixed size
        for path in f.values():
            tiles, meta = read_batch(path)
            assert meta["gpu_batch"]["tiles_per_call"] == min(most, len(tiles))
    assert read_batch(next(iter(files[4].values())))[1]["gpu_batch"]["setting"] == "auto"


@pytest.mark.parametrize("spec", ["channels-last", pytest.param("channels-last+compile", marks=pytest.mark.skipif(
    shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler"))])
def test_a_network_run_channels_last_or_compiled_repairs_the_same_pixels(section: Path, model: str, tmp_path: Path,
                                                                        spec: str) -> None:
    plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model,
                 TilingConfig(margin_um=2, max_batch=2), None, tmp_path / "plan")
    eager = _run_all(section, model, tmp_path / "plan", tmp_path / "eager")
    files = _run_all(section, model, tmp_path / "plan", tmp_path / "run", execution=Execution.parse(spec))
    (out, owned), (ref, ref_owned) = _compose(section, files), _compose(section, eager)
    assert np.array_equal(owned, ref_owned)
    # the same maths; float sums in another order may move a generated pixel by a grey level
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1 and (out != ref).mean() < 0.01
    meta = read_batch(next(iter(files.values())))[1]
    assert Execution(**meta["execution"]) == Execution.parse(spec)
    assert read_batch(next(iter(eager.values())))[1]["execution"] == {"channels_last": False, "compile": "off"}


def _assert_mask_repaired_alone_as_batched(src: Path, outs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The batched run (first) repaired exactly the artifact mask, left the rest as it was, and equals
    the run of one tile per job (second)."""
    (out, owned), (alone, _) = outs
    image = np.asarray(volume.open_level(str(src)))
    mask = np.asarray(volume.open_level(f"{src}#labels/artifacts")) > 0
    assert np.array_equal(owned, mask)
    assert np.array_equal(out[~owned], image[~owned]) and (out[owned] != image[owned]).mean() > 0.5
    assert np.array_equal(out, alone)


def test_small_windows_repair_exactly_the_dilated_mask_alone_or_batched_with_whole_tiles(model: str,
                                                                                     tmp_path: Path) -> None:
    # a hole larger than a tile and two specks: a speck fits the central half of an 8 px window; two
    # more at opposite corners of the core [40, 48)^2 split its tile into two parts
    src = make_section(tmp_path / "s.ome.zarr", (64, 64), holes=[(20, 20, 14, 18), (50, 4, 1, 1), (6, 50, 2, 2),
                                                                 (40, 40, 1, 1), (47, 47, 1, 1)])
    outs, plans = [], []
    for name, max_batch in (("mixed", 8), ("alone", 1)):
        plan_section(Section("s", str(src), f"{src}#labels/artifacts"), model,
                     TilingConfig(margin_um=0, max_batch=max_batch, min_window=8), None, tmp_path / name / "plan")
        plan, summary = read_plan_dir(tmp_path / name / "plan")
        assert sorted(set(plan["height"])) == [8, 16]
        shapes = plan.groupby(["height", "width"]).size()
        assert summary["windows"] == {f"{h}x{w}": int(n) for (h, w), n in shapes.sort_index(ascending=False).items()}
        assert plan.loc[plan["part"] > 0, "tile"].tolist() == ["r00005c00005p1", "r00005c00005p2"]
        plans.append(plan)
        outs.append(_compose(src, _run_all(src, model, tmp_path / name / "plan", tmp_path / name / "b")))
    assert (plans[0].groupby("batch")["height"].nunique() == 2).any()  # 8 and 16 px tiles in one job
    _assert_mask_repaired_alone_as_batched(src, outs)


def test_a_diagonal_tear_cut_into_cells_is_repaired_exactly_in_sub_waves(model: str, tmp_path: Path) -> None:
    # a diagonal across the core [16, 24)^2 of tile (2, 2): its box is the whole core, a 16 px window;
    # cut into two 4 px cells with 8 px windows, each reading the other's pixels: two waves
    src = make_section(tmp_path / "s.ome.zarr", (64, 64), holes=[(16 + i, 16 + i, 1, 1) for i in range(8)])
    outs = []
    for name, max_batch in (("mixed", 8), ("alone", 1)):
        plan_section(Section("s", str(src), f"{src}#labels/artifacts"), model,
                     TilingConfig(margin_um=0, max_batch=max_batch, min_window=8), None, tmp_path / name / "plan")
        plan, _ = read_plan_dir(tmp_path / name / "plan")
        cells = plan[plan["tile"].str.startswith("r00002c00002")]
        assert cells["tile"].tolist() == ["r00002c00002p1", "r00002c00002p2"] and cells["wave"].tolist() == [0, 1]
        assert (cells[["height", "width"]] == 8).all(axis=None)
        outs.append(_compose(src, _run_all(src, model, tmp_path / name / "plan", tmp_path / name / "b")))
    _assert_mask_repaired_alone_as_batched(src, outs)


def test_gpu_jobs_are_sized_by_expected_run_time(section: Path, model: str, tmp_path: Path) -> None:
    # 10 NFE per tile at 0.5 s each: 5 s a tile, so a 15 s job takes 3 tiles
    cfg = TilingConfig(margin_um=2, max_batch=1, job_minutes=0.25, seconds_per_nfe=0.5)
    assert cfg.tiles_per_batch(10) == 3 and cfg.tiles_per_batch(1000) == 1
    summary = plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model, cfg, None,
                           tmp_path / "plan", nfe_per_tile=10)
    plan, _ = read_plan_dir(tmp_path / "plan")
    sizes = plan[plan["batch"] >= 0].groupby("batch").size()
    assert sizes.max() == 3 and len(plan) > 3  # max_batch=1 is overridden
    assert summary["batching"] == {"tiles_per_batch": 3, "nfe_per_tile": 10, "expected_minutes_per_batch": 0.25}
    with pytest.raises(ValueError, match="needs the sampler's network evaluations"):
        cfg.tiles_per_batch(None)
    with pytest.raises(ValueError, match="go together"):
        TilingConfig(job_minutes=40)
    for wrong in (0, "many", True, 2.0):
        with pytest.raises(ValueError, match="gpu_batch must be >= 1 or 'auto'"):
            replace(FAST, gpu_batch=wrong)


def test_another_global_seed_changes_the_result(section: Path, model: str, tmp_path: Path) -> None:
    outs = []
    for seed in (0, 1):
        plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model, TilingConfig(margin_um=2, seed=seed),
                     None, tmp_path / str(seed))
        outs.append(_compose(section, _run_all(section, model, tmp_path / str(seed), tmp_path / f"b{seed}"))[0])
    assert not np.array_equal(*outs)


def test_large_hole_is_peeled_in_waves_using_earlier_results(tmp_path: Path, model: str) -> None:
    section = make_section(tmp_path / "big.ome.zarr", (64, 64), holes=[(12, 12, 40, 40)])
    summary = plan_section(Section("big", str(section), f"{section}#labels/artifacts"), model,
                           TilingConfig(margin_um=0, min_known=0.2), None, tmp_path / "plan")
    assert summary["waves"] >= 2
    plan, _ = read_plan_dir(tmp_path / "plan")
    deps = batch_dependencies(plan)
    assert any(deps.values())
    files = _run_all(section, model, tmp_path / "plan", tmp_path / "b")
    _, owned = _compose(section, files)
    assert owned.sum() == 40 * 40
    # a later batch without its dependencies is refused
    late = next(b for b, d in deps.items() if d)
    with pytest.raises(ValueError, match="missing"):
        run_batch(Section("big", str(section), f"{section}#labels/artifacts", margin_px=0), plan, late, [], model, FAST,
                  tmp_path / "x.npz", progress=False)


def test_section_without_artifacts_has_an_empty_plan(tmp_path: Path, model: str) -> None:
    section = make_section(tmp_path / "clean.ome.zarr", (64, 64))
    summary = plan_section(Section("clean", str(section), f"{section}#labels/artifacts"), model, TilingConfig(), None,
                           tmp_path / "plan")
    assert summary["tiles"] == 0 and summary["batches"] == []


def test_bad_inputs_fail_before_any_sampling(tmp_path: Path, model: str, tiny_net) -> None:
    section = make_section(tmp_path / "s.ome.zarr", (64, 64), holes=[(1, 1, 4, 4)])
    mask = f"{section}#labels/artifacts"
    cfg = TilingConfig()
    with pytest.raises(ValueError, match="section id"):
        plan_section(Section("bad id!", str(section), mask), model, cfg, None, tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plan_section(Section("s", str(tmp_path / "missing.ome.zarr"), mask), model, cfg, None, tmp_path / "p")
    other = make_section(tmp_path / "o.ome.zarr", (64, 96), holes=[(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="extent"):
        plan_section(Section("s", str(section), f"{other}#labels/artifacts"), model, cfg, None, tmp_path / "p")
    coarse = make_section(tmp_path / "c.ome.zarr", (64, 64), pixel_size_um=2.0)
    with pytest.raises(ValueError, match="pixel size"):
        plan_section(Section("c", str(coarse), f"{coarse}#labels/artifacts"), model, cfg, None, tmp_path / "p")
    writer.write_section(tmp_path / "u16.ome.zarr", np.full((64, 64), 1000, np.uint16), pixel_size_um=1.0, n_levels=2,
                         labels={"artifacts": np.ones((64, 64), np.uint8)}, chunks=(32, 32))
    with pytest.raises(ValueError, match="uint16"):
        plan_section(Section("u", str(tmp_path / "u16.ome.zarr"), f"{tmp_path / 'u16.ome.zarr'}#labels/artifacts"), model, cfg, None, tmp_path / "p")
    # with a normalisation setting the uint16 image is accepted
    plan_section(Section("u", str(tmp_path / "u16.ome.zarr"), f"{tmp_path / 'u16.ome.zarr'}#labels/artifacts"), model,
                 cfg, {"input_range": [0, 4095]}, tmp_path / "p16")


def test_known_pixels_of_the_batch_file_equal_the_context(section: Path, model: str, tmp_path: Path) -> None:
    plan_section(Section("s", str(section), f"{section}#labels/artifacts"), model, TilingConfig(margin_um=2), None,
                 tmp_path / "plan")
    files = _run_all(section, model, tmp_path / "plan", tmp_path / "b", replace(FAST, steps=4))
    image = np.asarray(volume.open_level(str(section)))
    for f in files.values():
        for t in read_batch(f)[0]:
            h, w = t.owned.shape
            assert np.array_equal(t.pixels[~t.owned], image[t.y0:t.y0 + h, t.x0:t.x0 + w][~t.owned]) or t.meta["wave"]


def test_a_later_job_reads_only_the_earlier_tiles_that_meet_its_windows(tmp_path: Path, model: str) -> None:
    from cytopaint.geometry import Box
    from cytopaint.io.batchfile import read_tiles_meeting

    section = make_section(tmp_path / "big.ome.zarr", (64, 64), holes=[(12, 12, 40, 40)])
    plan_section(Section("big", str(section), f"{section}#labels/artifacts"), model,
                 TilingConfig(margin_um=0, min_known=0.2, max_batch=64), None, tmp_path / "plan")
    files = _run_all(section, model, tmp_path / "plan", tmp_path / "b")
    tiles = read_batch(files[0])[0]
    assert len(tiles) > 1
    probe = Box.of_size(tiles[0].y0, tiles[0].x0, 1, 1)  # one pixel of the first tile's window
    near = read_tiles_meeting(files[0], [probe])
    assert {t.tile for t in near} == {t.tile for t in tiles if t.box.meets(probe)}
    assert 0 < len(near) < len(tiles)
    whole = {t.tile: t for t in tiles}
    for t in near:
        assert np.array_equal(t.pixels, whole[t.tile].pixels) and np.array_equal(t.owned, whole[t.tile].owned)
        assert (t.y0, t.x0, t.meta) == (whole[t.tile].y0, whole[t.tile].x0, whole[t.tile].meta)
    assert read_tiles_meeting(files[0], [Box.of_size(200, 200, 4, 4)]) == []
