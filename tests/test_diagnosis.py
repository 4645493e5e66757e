"""The fidelity diagnosis: the evaluation's patches under conditions that each remove one cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cytopaint.diffusion.sampling import SamplerSettings
from cytopaint.evaluation.diagnosis import (UNCONDITIONAL, WINDOW, WORKFLOW, context_condition, diagnose,
                                            inpaint_windows, window_seeds, without_far_context)
from cytopaint.evaluation.harness import EvaluationSettings, evaluate
from cytopaint.models import package as modelpkg

from test_evaluate import FAST, TILING, packages, stack  # noqa: F401 (fixtures)

SETTINGS = {"classifier": None, "tiling": TILING, "repaint": FAST, "patch_um": 32.0, "patches_per_bin": 2,
            "bins": ((0.2, 0.4),), "methods": ("ddpm",), "workers": 1, "batch_size": 4}
REFERENCE = SamplerSettings(steps=3, jump_length=1, jump_n_sample=1)


def test_one_window_inpainting_keeps_known_pixels_and_is_seeded(packages: dict[str, str]) -> None:  # noqa: F811
    model = modelpkg.load(packages["ddpm"], device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    unknown = np.zeros(images.shape, bool)
    unknown[:, 4:10, 3:12] = True
    seeds = window_seeds(0, 3)
    a = inpaint_windows(model, images, unknown, FAST.sampler, seeds, torch.device("cpu"), batch_size=2)
    b = inpaint_windows(model, images, unknown, FAST.sampler, seeds, torch.device("cpu"), batch_size=3)
    assert np.array_equal(a[~unknown], images[~unknown])
    assert np.array_equal(a, b)  # per-patch seeds: the batch does not matter
    assert not np.array_equal(a[unknown], images[unknown])
    other = inpaint_windows(model, images, unknown, FAST.sampler, window_seeds(1, 3), torch.device("cpu"), 3)
    assert not np.array_equal(other, a)
    with pytest.raises(ValueError, match="model's 16 px tiles"):
        inpaint_windows(model, np.zeros((1, 32, 32), np.uint8), np.ones((1, 32, 32), bool), FAST.sampler, [0],
                        torch.device("cpu"), 1)


def test_the_diagnosis_scores_every_condition_on_the_evaluation_patches(stack: Path, packages: dict[str, str],  # noqa: F811
                                                                         tmp_path: Path) -> None:
    settings = EvaluationSettings(sections=str(stack), model=packages["ddpm"], **SETTINGS)
    result = diagnose(settings, {"ref": REFERENCE}, tmp_path / "diag", progress=False, context_um=(4.0,))
    conditions = [WORKFLOW, WINDOW, f"{WINDOW}, ref", context_condition(4.0), UNCONDITIONAL]
    assert result["summary"]["condition"].tolist() == conditions
    per_patch = pd.read_csv(tmp_path / "diag" / "patches.tsv", sep="\t")
    # the workflow condition is the evaluation's own DDPM repair: the same patches, regions and cells
    evaluate(settings, tmp_path / "eval", progress=False)
    ddpm = pd.read_csv(tmp_path / "eval" / "patches.tsv", sep="\t")
    workflow = per_patch[per_patch["condition"] == WORKFLOW].reset_index(drop=True)
    for col in ("patch", "section", "n_original", "n_repaired", "region_area_mm2", "density_rel_error"):
        assert workflow[col].tolist() == ddpm[col].tolist(), col
    assert (per_patch.groupby("condition")["n_original"].sum() == ddpm["n_original"].sum()).all()
    shares = pd.read_csv(tmp_path / "diag" / "shares.tsv", sep="\t").set_index("cause")["density_bias"]
    bias = result["summary"].set_index("condition")["density_bias"]
    assert shares.iloc[:3].sum() == pytest.approx(shares.loc["total: the workflow"]) == pytest.approx(bias[WORKFLOW])
    assert shares.iloc[4] == pytest.approx(bias[WINDOW] - bias[f"{WINDOW}, ref"])
    page = (tmp_path / "diag" / "diagnosis.md").read_text()
    assert all(f"| {c} |" in page for c in conditions)
    assert (tmp_path / "diag" / "examples.png").stat().st_size > 0
    assert not (tmp_path / "diag" / "work").exists()
    # the context condition differs from the full window only in what it knows
    window = per_patch[per_patch["condition"] == WINDOW].reset_index(drop=True)
    ring = per_patch[per_patch["condition"] == context_condition(4.0)].reset_index(drop=True)
    assert ring["n_original"].tolist() == window["n_original"].tolist()
    with pytest.raises(ValueError, match="context radii"):
        diagnose(settings, {}, tmp_path / "bad", progress=False, context_um=(0.0,))
    with pytest.raises(ValueError, match="model's 16 px tiles"):  # refused before any repair
        diagnose(EvaluationSettings(sections=str(stack), model=packages["ddpm"], **{**SETTINGS, "patch_um": 64.0}),
                 {}, tmp_path / "wrong", progress=False)
    assert not (tmp_path / "wrong" / "work").exists()


def test_a_context_ring_keeps_only_the_pixels_near_the_region() -> None:
    regions = np.zeros((1, 16, 16), bool)
    regions[0, 6:9, 6:9] = True
    unknown = without_far_context(regions, 2.0)
    known = ~unknown[0]
    assert not (known & regions[0]).any()
    ys, xs = np.nonzero(known)
    assert ys.min() == 4 and ys.max() == 10 and xs.min() == 4 and xs.max() == 10  # within 2 px of the region
    assert unknown[0, 0, 0] and unknown[0, 15, 15]
