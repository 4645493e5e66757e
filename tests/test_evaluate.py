"""The evaluation harness: patches, masks, the DDPM through the workflow's code, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage
import pandas as pd
import pytest
import torch

from cytopaint.morphology import dilate

from cytopaint.models import package as modelpkg
from cytopaint.io.batchfile import read_batch
from cytopaint.blend.stage import blend_section
from cytopaint.models.classifier import AreaClassifier, ClassifierConfig, save_classifier
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet
from cytopaint.evaluation.ddpm import repair_patches
from cytopaint.evaluation.harness import EvaluationSettings, evaluate, run_from_files
from cytopaint.evaluation.sampling import bin_masks, sample_patches
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.plan.ownership import batch_dependencies
from cytopaint.repaint.stage import RepaintConfig, run_batch
from cytopaint.io.sections import read_sections
from cytopaint.synth.stack import write_synthetic_stack
from cytopaint.io import volume, writer
from cytopaint.plan.section import Section

from conftest import TINY, blob_image

TRAINING = {"command": "test", "data": [], "seed": 0, "code_version": "test"}
FAST = RepaintConfig(jump_length=2, jump_n_sample=1, steps=6, device="cpu")
TILING = TilingConfig(margin_um=4.0, core_fraction=0.75, max_batch=4)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heldout")
    return write_synthetic_stack(out, ["e0", "e1"], shape=(256, 384), pixel_size_um=2.0, seed=5,
                                 damaged_fraction=0.02, chunks=128, progress=False)


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = UNet(TINY).eval()
    modelpkg.save(out / "ddpm", net, name="tiny", diffusion=DiffusionConfig(steps=20), pixel_size_um=2.0,
                  training=TRAINING)
    clf = AreaClassifier(ClassifierConfig(input_px=16, widths=(4, 8), feature_dim=6, n_classes=4)).eval()
    save_classifier(out / "clf", clf, name="tiny-clf", classes=["frontal", "motor", "v1", "temporal"],
                    pixel_size_um=4.0, training={"command": "test", "data": [], "seed": 0, "steps": 0,
                                                 "code_version": "test"},
                    evaluation={"accuracy": 0.25, "n_patches": 1, "confusion": [[1, 0, 0, 0]] + [[0] * 4] * 3})
    return {"ddpm": str(out / "ddpm"), "classifier": str(out / "clf")}


def test_bin_masks_land_in_their_bins_and_are_reproducible() -> None:
    bins = [(0.05, 0.1), (0.2, 0.3), (0.4, 0.5)]
    drawn = bin_masks(3, bins, (96, 96), seed=4)
    assert [b for b, _ in drawn] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for b, m in drawn:
        assert bins[b][0] <= m.mean() < bins[b][1]
    again = bin_masks(3, bins[:1], (96, 96), seed=4)  # fewer bins: the first masks are unchanged
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(drawn[:3], again, strict=True))


def test_crystal_masks_are_clusters_of_small_polygons_in_their_bins() -> None:
    bins = [(0.01, 0.03), (0.03, 0.08)]
    drawn = bin_masks(4, bins, (256, 256), seed=2, kind="crystals", pixel_size_um=2.0)
    for b, m in drawn:
        assert bins[b][0] <= m.mean() < bins[b][1]
        labels, n = ndimage.label(m)
        sizes = np.bincount(labels.ravel())[1:]
        assert n >= 2 and sizes.max() * 4.0 <= 4 * np.pi * 50**2  # no piece beyond a few 50 µm crystals
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(drawn, bin_masks(4, bins, (256, 256), seed=2,
                                                                           kind="crystals", pixel_size_um=2.0),
                                                          strict=True))
    assert not np.array_equal(drawn[0][1], bin_masks(1, bins[:1], (256, 256), seed=2)[0][1])  # not free-form
    with pytest.raises(ValueError, match="mask kind 'blobs'"):
        bin_masks(1, bins, (64, 64), seed=0, kind="blobs")
    with pytest.raises(ValueError, match="no pixel count"):
        bin_masks(1, [(0.51, 0.52)], (4, 4), seed=0, kind="crystals")


def test_patches_are_intact_disjoint_and_reproducible(stack: Path) -> None:
    table = read_sections(stack, base=stack.parent)
    a = sample_patches(table, 6, 64, 2.0, np.random.default_rng(1))
    b = sample_patches(table, 6, 64, 2.0, np.random.default_rng(1))
    assert [(p.section, p.y0, p.x0) for p in a] == [(p.section, p.y0, p.x0) for p in b]
    assert {p.section for p in a} == {"e0", "e1"}
    for p in a:
        art = np.asarray(volume.open_level(f"{stack.parent / p.section}.ome.zarr#labels/artifacts", 0))
        assert not art[p.y0:p.y0 + 64, p.x0:p.x0 + 64].any()
        img = np.asarray(volume.open_level(stack.parent / f"{p.section}.ome.zarr", 0))
        assert np.array_equal(p.image, img[p.y0:p.y0 + 64, p.x0:p.x0 + 64])
        for q in a:
            if q is not p and q.section == p.section:
                assert abs(q.y0 - p.y0) >= 64 or abs(q.x0 - p.x0) >= 64
    with pytest.raises(ValueError, match="disjoint intact patches"):
        sample_patches(table, 500, 64, 2.0, np.random.default_rng(1))


def test_ddpm_repair_equals_the_workflow_jobs(tmp_path: Path, packages: dict[str, str]) -> None:
    """Pooling the tiles of many patches per sampler call gives the pixels of the workflow's own jobs."""
    images = [blob_image((48, 48), seed=s) for s in (1, 2)]
    holes = [m for _, m in bin_masks(1, [(0.1, 0.2), (0.3, 0.4)], (48, 48), seed=0)]
    pooled, timing = repair_patches(images, holes, 2.0, packages["ddpm"], TILING, FAST, tmp_path / "pooled",
                                    batch_size=64, progress=False)
    assert timing["tiles"] == sum(r.tiles for r in pooled) > 0
    for i, (image, hole, r) in enumerate(zip(images, holes, pooled, strict=True)):
        region = dilate(hole, 2.0)
        assert r.unrepaired_px == 0 and np.array_equal(r.region, region)
        assert np.array_equal(r.image[~region], image[~region])  # outside the region: bit-identical
        assert (r.image[region] != image[region]).mean() > 0.5
        # the same patch through the workflow's per-batch jobs and blend
        store = tmp_path / f"w{i}.ome.zarr"
        writer.write_section(store, image, pixel_size_um=2.0, n_levels=1, labels={"artifacts": hole.astype(np.uint8)},
                             chunks=(48, 48))
        mask_ref = f"{store}#labels/artifacts"
        plan_section(Section(f"p{i:04d}", str(store), mask_ref), packages["ddpm"], TILING, None, tmp_path / f"plan{i}")
        plan, summary = read_plan_dir(tmp_path / f"plan{i}")
        deps, files = batch_dependencies(plan), {}
        for b in summary["batches"]:
            files[b] = tmp_path / f"b{i}_{b}.npz"
            run_batch(Section(f"p{i:04d}", str(store), mask_ref).planned(summary), plan, b, [files[d] for d in deps[b]],
                      packages["ddpm"], FAST, files[b], progress=False)
        blend_section(str(store), None, list(files.values()), tmp_path / f"out{i}.ome.zarr")
        assert np.array_equal(np.asarray(volume.open_level(tmp_path / f"out{i}.ome.zarr", 0)), r.image)
        assert read_batch(files[summary["batches"][0]])[0][0].meta["seed"] == int(plan["seed"].iat[0])


def test_evaluate_writes_the_protocol_outputs(tmp_path: Path, stack: Path, packages: dict[str, str]) -> None:
    settings = EvaluationSettings(sections=str(stack), model=packages["ddpm"], classifier=packages["classifier"],
                                  tiling=TILING, repaint=FAST, patch_um=96.0, patches_per_bin=2,
                                  bins=((0.05, 0.2), (0.3, 0.5)), methods=("ddpm", "mean-fill", "telea"),
                                  workers=1, batch_size=32)
    run = evaluate(settings, tmp_path / "eval", progress=False)
    out = tmp_path / "eval"
    per_patch = pd.read_csv(out / "patches.tsv", sep="\t")
    assert len(per_patch) == 4 * 3 and set(per_patch["method"]) == {"ddpm", "mean-fill", "telea"}
    assert ((per_patch["hole_coverage"] >= per_patch["bin_lo"]) & (per_patch["hole_coverage"] < per_patch["bin_hi"])).all()
    assert (per_patch["region_coverage"] > per_patch["hole_coverage"]).all()
    ddpm = per_patch[per_patch["method"] == "ddpm"]
    assert (ddpm["unrepaired_px"] == 0).all() and (ddpm["tiles"] > 0).all() and (ddpm["seconds"] > 0).all()
    # every method is scored on the same patches and regions, so the originals' cells agree
    counts = per_patch.pivot(index="patch", columns="method", values="n_original")
    assert (counts.nunique(axis=1) == 1).all()
    mean_fill = per_patch[per_patch["method"] == "mean-fill"]
    assert (mean_fill.loc[mean_fill["n_original"] > 0, "density_rel_error"] < -0.5).all()  # a flat fill has no cells
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert len(summary) == 2 * 3 and {"density_abs_error_median", "size_bias", "top2_agreement",
                                      "cells_per_hole"} <= set(summary.columns)
    fcd = pd.read_csv(out / "fcd.tsv", sep="\t")
    assert set(fcd["kind"]) == {"reference", "method", "perturbation"}
    noise = fcd[(fcd["kind"] == "perturbation") & (fcd["name"] == "gaussian-noise")]
    assert noise["fcd"].iat[0] == pytest.approx(0, abs=1e-6)  # level 0: the originals themselves
    assert noise["fcd"].iat[-1] > 0
    for name in ("cells.png", "agreement.png", "fcd.png", "examples.png", "summary.md", "evaluation.json"):
        assert (out / name).stat().st_size > 0
    text = (out / "summary.md").read_text()
    assert all(m in text for m in ("ddpm", "mean-fill", "telea")) and "tiny-clf" in text
    assert json.loads((out / "evaluation.json").read_text())["patches"] == run["patches"] == 4
    assert not (out / "work").exists()
    evaluate(settings, out, progress=False)  # again into the same folder: the same results
    again = pd.read_csv(out / "patches.tsv", sep="\t")
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), per_patch.drop(columns="seconds"))


def test_a_bin_run_on_its_own_repairs_its_patches_as_the_whole_draw_does(tmp_path: Path, stack: Path,
                                                                           packages: dict[str, str]) -> None:
    """``run_bins`` keeps a bin's patches, holes and tile seeds: its rows equal the whole run's, pixel for pixel."""
    base = dict(sections=str(stack), model=packages["ddpm"], classifier=None, tiling=TILING, repaint=FAST,
                patch_um=48.0, patches_per_bin=2, bins=((0.05, 0.2), (0.3, 0.5)), methods=("ddpm",), workers=1)
    whole = EvaluationSettings(**base)
    second = EvaluationSettings(**base, run_bins=(1,))
    evaluate(whole, tmp_path / "whole", progress=False)
    run = evaluate(second, tmp_path / "second", progress=False)
    all_rows = pd.read_csv(tmp_path / "whole" / "patches.tsv", sep="\t").drop(columns="seconds")
    one = pd.read_csv(tmp_path / "second" / "patches.tsv", sep="\t").drop(columns="seconds")
    assert run["patches"] == 2 and set(one["bin"]) == {1}
    pd.testing.assert_frame_equal(one, all_rows[all_rows["bin"] == 1].reset_index(drop=True))
    # the repaired pixels too, not only their statistics: the tiles drew the noise of the whole draw's seeds
    from cytopaint.evaluation.harness import draw
    d_all, d_one = draw(whole), draw(second)
    assert d_one.names == [d_all.names[i] for i, (b, _) in enumerate(d_all.holes) if b == 1] != ["p0000", "p0001"]
    images = [p.image for p in d_one.patches]
    holes = [h for _, h in d_one.holes]
    named, _ = repair_patches(images, holes, 2.0, packages["ddpm"], TILING, FAST, tmp_path / "named",
                              progress=False, names=d_one.names)
    everything, _ = repair_patches([p.image for p in d_all.patches], [h for _, h in d_all.holes], 2.0,
                                   packages["ddpm"], TILING, FAST, tmp_path / "all", progress=False, names=d_all.names)
    repaired_in_whole_run = [r.image for r, (b, _) in zip(everything, d_all.holes, strict=True) if b == 1]
    by_position, _ = repair_patches(images, holes, 2.0, packages["ddpm"], TILING, FAST, tmp_path / "by_position",
                                    progress=False)  # named p0000, p0001: other seeds, other pixels
    assert all(np.array_equal(a.region, b.region) for a, b in zip(named, by_position, strict=True))
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(named, by_position, strict=True))
    assert all(np.array_equal(r.image, o) for r, o in zip(named, repaired_in_whole_run, strict=True))
    assert "only bins 1 of the draw" in (tmp_path / "second" / "summary.md").read_text()
    from cytopaint.evaluation.pareto import run_pareto
    table = run_pareto(second, {"fast": FAST.sampler}, tmp_path / "pareto", progress=False)
    assert table["patches"].tolist() == [2] and "(only bins 1 of the draw)" in (tmp_path / "pareto" / "pareto.md").read_text()
    with pytest.raises(ValueError, match="run_bins must name bins 0..1"):
        EvaluationSettings(**base, run_bins=(2,))


def test_settings_from_a_workflow_config(tmp_path: Path, stack: Path) -> None:
    cfg = {"model": "demo", "tiling": {"margin_um": 6.0}, "repaint": {"jump_length": 5, "steps": 50},
           "evaluate": {"patches_per_bin": 3, "bins": [[0.1, 0.2]], "repaint": {"steps": 25},
                        "synthetic": {"sections": 4}}}
    s = EvaluationSettings.from_config(cfg, sections=str(stack))
    assert s.repaint.steps == 25 and s.repaint.jump_length == 5 and s.tiling.margin_um == 6.0
    assert s.bins == ((0.1, 0.2),) and s.patches_per_bin == 3 and s.run_bins is None
    assert EvaluationSettings.from_config({"evaluate": {"run_bins": [0]}}, sections=str(stack)).run_bins == (0,)
    with pytest.raises(ValueError, match="unknown setting"):
        EvaluationSettings.from_config({"evaluate": {"sections": "x", "patchs_per_bin": 3}})
    with pytest.raises(ValueError, match="held-out sections"):
        EvaluationSettings.from_config({"evaluate": {}})
    with pytest.raises(ValueError, match="unknown evaluation method"):
        EvaluationSettings(sections="x", methods=("ddpm", "photoshop"))
    with pytest.raises(ValueError, match="coverage bins"):
        EvaluationSettings(sections="x", bins=((0.5, 0.2),))
    config = tmp_path / "c.yaml"
    config.write_text("evaluate:\n  patches_per_bin: 1\n")
    with pytest.raises(ValueError, match="patches_per_bin >= 2"):
        run_from_files([str(config)], tmp_path / "o", sections=str(stack))


def test_snakemake_evaluate_target(tmp_path: Path, packages: dict[str, str]) -> None:
    """`snakemake evaluate` makes held-out synthetic sections and runs the protocol from the config."""
    import yaml
    from test_workflow import snakemake

    config = {"model": packages["ddpm"], "tiling": {"margin_um": 4.0, "core_fraction": 0.75},
              "repaint": {"jump_length": 2, "jump_n_sample": 1, "steps": 6, "device": "cpu"},
              "evaluate": {"synthetic": {"sections": 2, "shape": [256, 384], "seed": 5},
                           "patch_um": 96, "patches_per_bin": 2, "bins": [[0.05, 0.2], [0.3, 0.5]],
                           "methods": ["ddpm", "mean-fill"], "classifier": packages["classifier"], "workers": 1,
                           "perturbations": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "evaluate", "--set-threads", "evaluate=1")
    out = tmp_path / "results" / "evaluation"
    assert (out / "heldout" / "sections.tsv").is_file()
    per_patch = pd.read_csv(out / "patches.tsv", sep="\t")
    assert len(per_patch) == 4 * 2 and set(per_patch["section"]) <= {"h0", "h1"}
    assert "mean-fill" in (out / "summary.md").read_text()


def test_fcd_of_the_demo_classifier_rises_with_noise() -> None:
    """The paper's Figure 3 check on a test set: synthetic 1 mm² patches, Gaussian noise of rising sigma."""
    from cytopaint.models.classifier import load_classifier
    from cytopaint.evaluation.metrics import frechet_distance
    from cytopaint.evaluation.perturb import gaussian_noise
    from cytopaint.synth import SectionSpec, render_window

    patches = []
    for seed in range(3):
        spec = SectionSpec(seed=900 + seed, shape=(1536, 1024), pixel_size_um=2.0, damaged_fraction=0.0)
        img = render_window(spec, 512, 0, 512, 1024)["intact"]
        patches += [img[:, :512], img[:, 512:]]
    originals = np.stack(patches)
    clf = load_classifier("demo")
    base = clf.predict(originals, 2.0)[0]
    fcd = [frechet_distance(clf.predict(np.stack([gaussian_noise(p, s, np.random.default_rng(k))
                                                  for k, p in enumerate(originals)]), 2.0)[0], base)
           for s in (0, 10, 25, 50)]
    assert fcd[0] == pytest.approx(0, abs=1e-9)
    assert all(b > a for a, b in zip(fcd, fcd[1:])), fcd


def test_evaluate_without_a_classifier_measures_cells_only(tmp_path: Path, stack: Path,
                                                            packages: dict[str, str]) -> None:
    settings = EvaluationSettings(sections=str(stack), model=packages["ddpm"], classifier=None, tiling=TILING,
                                  repaint=FAST, patch_um=48.0, patches_per_bin=2, bins=((0.1, 0.3),),
                                  methods=("ddpm", "mean-fill"), workers=1)
    run = evaluate(settings, tmp_path / "eval", progress=False)
    per_patch = pd.read_csv(tmp_path / "eval" / "patches.tsv", sep="\t")
    assert run["classifier"] is None and per_patch["top1_agree"].isna().all()
    assert per_patch["density_rel_error"].notna().any()
    assert pd.read_csv(tmp_path / "eval" / "fcd.tsv", sep="\t").empty
    assert not (tmp_path / "eval" / "agreement.png").exists()
    assert "agreement and FCD not measured" in (tmp_path / "eval" / "summary.md").read_text()


def test_pareto_compares_sampler_settings_on_the_same_patches(tmp_path: Path, stack: Path,
                                                             packages: dict[str, str]) -> None:
    from cytopaint.diffusion.sampling import SamplerSettings
    from cytopaint.evaluation.pareto import run_pareto

    settings = EvaluationSettings(sections=str(stack), model=packages["ddpm"], classifier=packages["classifier"],
                                  tiling=TILING, repaint=FAST, patch_um=64.0, patches_per_bin=2,
                                  bins=((0.1, 0.3),), workers=1, perturbations=True)
    samplers = {"ref": SamplerSettings(1, 3, 20), "ddnm": SamplerSettings(2, 1, 4, method="ddnm"),
                "diffpir": SamplerSettings(2, 2, 4, method="diffpir", resample_start=0.5, zeta=0.5)}
    table = run_pareto(settings, samplers, tmp_path / "p", progress=False)
    assert list(table["setting"]) == ["ref", "ddnm", "diffpir"]
    assert list(table["nfe"]) == [s.nfe(20) for s in samplers.values()] == [58, 4, 6]
    ref = table.iloc[0]
    assert ref["d_density_abs_error_points"] == 0 and ref["nfe_ratio"] == 1 and not ref["meets_reference"]
    assert table["pareto"].any() and table["pareto"].iat[1]  # the cheapest setting is never dominated
    for name in samplers:  # each setting's own evaluation, on the same patches and regions
        per_patch = pd.read_csv(tmp_path / "p" / name / "patches.tsv", sep="\t")
        assert set(per_patch["method"]) == {"ddpm"}
        assert (per_patch["unrepaired_px"] == 0).all()
    patches = [pd.read_csv(tmp_path / "p" / n / "patches.tsv", sep="\t")[["patch", "y0", "x0", "n_original"]]
               for n in samplers]
    assert all(p.equals(patches[0]) for p in patches)
    for name in ("pareto.tsv", "pareto.json", "pareto.md", "pareto.png"):
        assert (tmp_path / "p" / name).stat().st_size > 0
    text = (tmp_path / "p" / "pareto.md").read_text()
    assert "| ref | repaint |" in text and "too weak" in text  # the tiny classifier's 25% accuracy is said
    assert "only 2 patches per bin" in text and "## Patch by patch against the reference" in text
    assert {"paired_density_abs_points", "paired_size_points_se"} <= set(table.columns)
    assert table["paired_density_abs_points"].iat[0] == 0  # the reference against itself
    with pytest.raises(ValueError, match="folder"):
        run_pareto(settings, {"../x": SamplerSettings(1, 1, 2)}, tmp_path / "q", progress=False)

    # a resumed comparison reuses finished settings and runs a changed one again; a setting added to the
    # evaluation since a run was made (absent from its record) counts as its default, None
    record = tmp_path / "p" / "ref" / "evaluation.json"
    older = json.loads(record.read_text())
    del older["settings"]["run_bins"]
    record.write_text(json.dumps(older))
    stamp = (tmp_path / "p" / "ref" / "evaluation.json").stat().st_mtime_ns
    changed = {**samplers, "ddnm": SamplerSettings(2, 2, 4, method="ddnm")}
    again = run_pareto(settings, changed, tmp_path / "p", progress=False)
    assert (tmp_path / "p" / "ref" / "evaluation.json").stat().st_mtime_ns == stamp
    assert again["nfe"].iat[1] == 6
    measured = [c for c in table.columns if c != "pareto"]  # the front may move with the changed setting
    pd.testing.assert_frame_equal(again.drop(index=1)[measured], table.drop(index=1)[measured])


def test_paired_differences_are_taken_patch_by_patch_over_the_patches_both_measured() -> None:
    from cytopaint.evaluation.pareto import _pm, paired

    def patches(density: list[float], size: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"patch": ["p0", "p1", "p2", "p3"], "method": "ddpm", "density_rel_error": density,
                             "size_rel_error": size})

    ref = patches([-0.2, 0.1, -0.3, 0.0], [0.1, np.nan, 0.2, -0.1])
    other = patches([-0.1, -0.1, -0.2, 0.1], [0.1, 0.3, np.nan, -0.3]).iloc[::-1]  # order does not matter
    t = paired({"ref": ref, "other": other}).set_index("setting")
    assert t.loc["ref", "paired_density_abs_points"] == 0 and t.loc["ref", "paired_density_abs_points_se"] == 0
    # |e| differences -10, 0, -10, +10 points; signed +10, -20, +10, +10
    assert t.loc["other", "paired_density_abs_points"] == pytest.approx(-2.5)
    assert t.loc["other", "paired_density_abs_points_se"] == pytest.approx(np.std([-10, 0, -10, 10], ddof=1) / 2)
    assert t.loc["other", "paired_density_points"] == pytest.approx(2.5)
    # size: only p0 and p3 are measured by both (|e| 0 and +20 points)
    assert t.loc["other", "paired_size_patches"] == 2 and t.loc["other", "paired_size_abs_points"] == pytest.approx(10)
    assert _pm(-2.5, 1.0) == "-2.5 ± 1.0 *" and _pm(-2.5, 1.5) == "-2.5 ± 1.5" and _pm(np.nan, 1.0) == "–"


def test_compare_marks_the_front_and_the_verdict() -> None:
    from cytopaint.evaluation.pareto import compare

    def row(name: str, nfe: int, dens: float, size: float, top1: float) -> dict:
        return {"setting": name, "nfe": nfe, "density_abs_error": dens, "size_abs_error": size,
                "top1": top1, "top2": 1.0}

    t = compare([row("ref", 1276, 0.10, 0.10, 0.80), row("good", 95, 0.105, 0.10, 0.79),
                 row("bad", 95, 0.20, 0.20, 0.50), row("cheap", 20, 0.30, 0.30, 0.40)])
    assert list(t["meets_reference"]) == [False, True, False, False]
    assert list(t["pareto"]) == [True, True, False, True]
    assert t.loc[1, "d_density_abs_error_points"] == pytest.approx(0.5)
