"""Evaluation metrics (cell statistics, Fréchet distance, top-k agreement, binning, summaries) and perturbations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import sqrtm

from cytopaint.evaluation.baselines import mean_fill
from cytopaint.evaluation.metrics import (CellComparison, bin_of, compare_cells, coverage, frechet_distance,
                                          pooled_bias, summarise, topk_agreement)
from cytopaint.evaluation.perturb import PERTURBATIONS, gaussian_blur, gaussian_noise, salt_and_pepper

from conftest import blob_image

PS = 1.0


@pytest.fixture(scope="module")
def cells_and_region() -> tuple[np.ndarray, np.ndarray]:
    img = blob_image((96, 96), seed=0)
    region = np.zeros(img.shape, bool)
    region[24:72, 24:72] = True
    return img, region


def test_identical_images_compare_exactly(cells_and_region: tuple[np.ndarray, np.ndarray]) -> None:
    img, region = cells_and_region
    c = compare_cells(img, img.copy(), region, PS)
    assert isinstance(c, CellComparison) and c.n_original == c.n_repaired >= 5
    assert c.density_rel_error == 0.0 and c.size_rel_error == 0.0
    assert c.density_original == c.density_repaired == pytest.approx(c.n_original / (48 * 48 * 1e-6))
    assert c.size_original == c.size_repaired > 12.0 and c.region_area_mm2 == pytest.approx(48 * 48 * 1e-6)


def test_bad_repairs_score_worse_than_good_ones(cells_and_region: tuple[np.ndarray, np.ndarray]) -> None:
    img, region = cells_and_region
    shifted = compare_cells(img, np.roll(img, 1, axis=1), region, PS)
    flat = compare_cells(img, mean_fill(img, region), region, PS)
    noisy = img.copy()
    noisy[region] = gaussian_noise(img, 40, 0)[region]
    noise = compare_cells(img, noisy, region, PS)
    assert flat.n_repaired == 0 and flat.density_rel_error == -1.0 and np.isnan(flat.size_rel_error)
    good = max(abs(shifted.density_rel_error), abs(shifted.size_rel_error))
    assert good < 0.05
    assert max(abs(noise.density_rel_error), abs(noise.size_rel_error)) > good + 0.05


def test_background_is_the_originals(cells_and_region: tuple[np.ndarray, np.ndarray]) -> None:
    """A darker repair of most of the image keeps the original OD threshold: its cells grow."""
    img, _ = cells_and_region
    region = np.zeros(img.shape, bool)
    region[:, :72] = True
    darker = img.copy()
    darker[region] = np.rint(img[region] * 0.85).astype(np.uint8)
    c = compare_cells(img, darker, region, PS)
    assert c.size_rel_error > 0.1


def test_tissue_restricts_region_and_detection(cells_and_region: tuple[np.ndarray, np.ndarray]) -> None:
    img, region = cells_and_region
    tissue = np.zeros(img.shape, bool)
    tissue[:, :48] = True
    c = compare_cells(img, img, region, PS, tissue=tissue)
    assert c.region_area_mm2 == pytest.approx(48 * 24 * 1e-6) and c.density_rel_error == 0.0
    with pytest.raises(ValueError, match="shape"):
        compare_cells(img, img[:, 1:], region, PS)
    with pytest.raises(ValueError, match="tissue"):
        compare_cells(img, img, region, PS, tissue=tissue[1:])


def test_no_original_cells_gives_nan_errors() -> None:
    flat = np.full((40, 40), 200, np.uint8)
    c = compare_cells(flat, blob_image((40, 40), seed=1), np.ones((40, 40), bool), PS)
    assert c.n_original == 0 and c.n_repaired > 0
    assert np.isnan(c.density_rel_error) and np.isnan(c.size_rel_error) and np.isnan(c.size_original)


def _features(n: int = 400, d: int = 8, seed: int = 0) -> np.ndarray:
    """n samples of one correlated Gaussian in d dimensions (the mixing matrix is fixed; seed draws samples)."""
    return np.random.default_rng(seed).normal(size=(n, d)) @ np.random.default_rng(100 + d).normal(size=(d, d))


def test_frechet_identical_sets_is_zero() -> None:
    a = _features()
    assert frechet_distance(a, a.copy()) < 1e-6 * np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, a[::-1]) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_frechet_closed_form_and_sqrtm_formula() -> None:
    """Whitened samples (cov exactly I) against 2x + m (cov 4I): d² = |m|² + D (1 + 4 - 2 x 2)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)
    m = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    assert frechet_distance(x, 2 * x + m) == pytest.approx(m @ m + 5, rel=1e-9)
    a, b = _features(seed=2), _features(seed=3) + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    fid = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a + s_b - 2 * sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(fid, rel=1e-9)


def test_frechet_rises_with_shift_and_noise() -> None:
    a, b = _features(seed=4), _features(seed=5)
    shifts = [frechet_distance(a, b + s) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    noise = [frechet_distance(a, b + np.random.default_rng(6).normal(0, s, b.shape)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert np.all(np.diff(shifts) > 0) and np.all(np.diff(noise) > 0)


def test_frechet_rank_deficient_and_bad_input() -> None:
    a, b = _features(n=10, d=32, seed=7), _features(n=12, d=32, seed=8)  # N < D: singular covariances
    same = frechet_distance(a, a)
    assert 0 <= same < 1e-6 * np.trace(np.cov(a, rowvar=False))
    assert np.isfinite(frechet_distance(a, b)) and frechet_distance(a, b) > 0
    assert frechet_distance(np.arange(5.0)[:, None], np.arange(5.0)[:, None] + 2) == pytest.approx(4.0)  # D = 1
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :-1])
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_topk_agreement() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=50)
    assert topk_agreement(p, p, 1).all() and topk_agreement(p, p[::-1], 5).all()
    po = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.4, 0.4, 0.2], [0.5, 0.2, 0.3]])
    pr = np.array([[0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]])
    # rows: original class second; third; tie (class 0 first both times); tie for second in repaired
    np.testing.assert_array_equal(topk_agreement(po, pr, 1), [False, False, True, False])
    np.testing.assert_array_equal(topk_agreement(po, pr, 2), [True, False, True, True])
    np.testing.assert_array_equal(topk_agreement(np.array([[0.2, 0.5, 0.3]]), pr[[3]], 2), [False])  # tie lost
    with pytest.raises(ValueError):
        topk_agreement(po, pr, 4)
    with pytest.raises(ValueError):
        topk_agreement(po, pr[:, :2], 1)


def test_coverage_and_bins() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:3, :5] = True
    assert coverage(mask) == 0.15
    bins = [(0.05, 0.1), (0.1, 0.2), (0.2, 0.5)]
    assert [bin_of(c, bins) for c in (0.0, 0.05, 0.0999, 0.1, 0.15, 0.2, 0.4999, 0.5, 0.7)] == \
        [-1, 0, 0, 1, 1, 2, 2, -1, -1]


def test_summarise_known_frame() -> None:
    df = pd.DataFrame({"method": ["a", "a", "a", "b", "b"], "bin": [0, 0, 0, 0, 1],
                       "err": [0.1, 0.3, np.nan, -0.2, 0.5], "other": [1.0, 2.0, 3.0, 4.0, 5.0]})
    out = summarise(df, ["method", "bin"], ["err", "other"])
    assert list(out.columns) == ["method", "bin", "err_median", "err_mean", "err_sd", "err_n",
                                 "other_median", "other_mean", "other_sd", "other_n"]
    a = out.iloc[0]
    assert (a["method"], a["bin"], a["err_n"], a["other_n"]) == ("a", 0, 2, 3)
    assert a["err_median"] == pytest.approx(0.2) and a["err_mean"] == pytest.approx(0.2)
    assert a["err_sd"] == pytest.approx(np.std([0.1, 0.3], ddof=1)) and a["other_sd"] == pytest.approx(1.0)
    assert len(out) == 3 and np.isnan(out.iloc[1]["err_sd"]) and out.iloc[2]["err_median"] == 0.5


def test_pooled_bias_known_frame() -> None:
    df = pd.DataFrame({"bin": [0, 0, 0, 1], "n_original": [10, 30, 0, 5], "n_repaired": [12, 30, 2, 0],
                       "size_original": [50.0, 70.0, np.nan, 40.0], "size_repaired": [60.0, 70.0, 80.0, np.nan],
                       "region_area_mm2": [0.01, 0.02, 0.01, 0.01]})
    out = pooled_bias(df, ["bin"]).set_index("bin")
    b0 = out.loc[0]
    assert b0["n_patches"] == 3 and b0["n_original"] == 40 and b0["n_repaired"] == 44
    assert b0["density_original"] == pytest.approx(1000.0) and b0["density_repaired"] == pytest.approx(1100.0)
    assert b0["density_bias"] == pytest.approx(0.1)
    assert b0["size_original"] == pytest.approx((10 * 50 + 30 * 70) / 40)  # 65
    assert b0["size_repaired"] == pytest.approx((12 * 60 + 30 * 70 + 2 * 80) / 44)  # 67.7
    assert b0["size_bias"] == pytest.approx(((12 * 60 + 30 * 70 + 2 * 80) / 44) / 65 - 1)
    assert out.loc[1, "density_bias"] == -1.0 and np.isnan(out.loc[1, "size_bias"])
    with pytest.raises(ValueError, match="region_area_mm2"):
        pooled_bias(df.drop(columns="region_area_mm2"), ["bin"])


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbations_identity_deterministic_monotonic(name: str) -> None:
    f, levels = PERTURBATIONS[name]
    img = blob_image((48, 48), seed=2)
    before = img.copy()
    assert levels[0] == 0 and list(levels) == sorted(levels)
    out0 = f(img, 0, 0)
    np.testing.assert_array_equal(out0, img)
    assert out0 is not img
    outs = [f(img, level, np.random.default_rng(3)) for level in levels]
    np.testing.assert_array_equal(img, before)
    for level, out in zip(levels, outs, strict=True):
        assert out.dtype == np.uint8 and out.shape == img.shape
        np.testing.assert_array_equal(out, f(img, level, 3))  # same seed, same result
    diff = [np.abs(out.astype(int) - img).mean() for out in outs]
    assert np.all(np.diff(diff) > 0)


def test_perturbation_details() -> None:
    img = np.full((100, 100), 100, np.uint8)
    sp = salt_and_pepper(img, 0.05, 0)
    assert (sp != 100).sum() == 500 and set(np.unique(sp)) == {0, 100, 255}
    assert not np.array_equal(gaussian_noise(img, 10, 1), gaussian_noise(img, 10, 2))
    np.testing.assert_array_equal(gaussian_blur(img, 2.0), img)  # a constant image stays constant
    assert abs(float(gaussian_noise(img, 20, 0).std()) - 20) < 1
    with pytest.raises(ValueError):
        gaussian_noise(img, -1, 0)
    with pytest.raises(ValueError):
        salt_and_pepper(img, 1.5, 0)
    with pytest.raises(ValueError):
        gaussian_blur(img.astype(np.float32), 1.0)
