"""QC tile metrics on arrays: tissue, ring, seam, cell and intensity statistics, flags with reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cytopaint.qc.metrics import (QCSettings, Thresholds, flag_tile, null_placements, ring_mask, seam_score, severity,
                                  tile_metrics, tissue_mask)
from cytopaint.synth import SectionSpec, render_section

PS = 2.0


@pytest.fixture(scope="module")
def cortex() -> dict:
    """Intact synthetic cortex, 192 x 128 px at 2 µm (layers I-III), with background above the pia."""
    return render_section(SectionSpec(seed=1, shape=(192, 128), pixel_size_um=PS, damaged_fraction=0.0,
                                      surface_frac=0.1))


def _square(shape: tuple[int, int], y0: int, x0: int, size: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def _metrics(cortex: dict, after: np.ndarray, owned: np.ndarray, **kw) -> dict:
    img = cortex["intact"]
    artifact = kw.pop("artifact", np.zeros(img.shape, dtype=bool))
    return tile_metrics(img, after, owned, kw.pop("repaired", owned), artifact, PS, kw.pop("settings", None))


def test_tissue_mask_separates_glass_from_tissue(cortex: dict) -> None:
    tissue = tissue_mask(cortex["intact"], PS)
    truth = cortex["layer"] > 0
    assert (tissue == truth).mean() > 0.95
    assert not tissue_mask(np.full((32, 32), 240, np.uint8), PS).any()  # glass and bright tears
    assert tissue_mask(np.full((32, 32), 200, np.uint8), PS).all()  # pale neuropil is tissue


def test_ring_lies_in_the_distance_band_and_only_on_intact_pixels() -> None:
    owned = _square((64, 64), 24, 24, 16)
    intact = np.ones((64, 64), dtype=bool)
    intact[:, :10] = False
    ring = ring_mask(owned, intact, gap_px=1, width_px=5)
    yy, xx = np.nonzero(ring)
    dy = np.maximum(np.maximum(24 - yy, yy - 39), 0)
    dx = np.maximum(np.maximum(24 - xx, xx - 39), 0)
    d = np.hypot(dy, dx)
    assert ring.any() and (d > 1).all() and (d <= 6).all() and not (ring & ~intact).any() and not (ring & owned).any()
    assert not ring_mask(np.zeros((8, 8), bool), np.ones((8, 8), bool), 0, 3).any()


def test_seam_score_is_near_one_for_a_seamless_region_and_high_for_a_step(cortex: dict) -> None:
    img = cortex["intact"]
    owned = _square(img.shape, 110, 44, 40)
    intact = ~owned
    ring = ring_mask(owned, intact, 1, 15)
    assert seam_score(img, owned, intact, ring) < 1.3
    brighter = img.copy()
    brighter[owned] = np.clip(brighter[owned].astype(int) + 40, 0, 255)
    assert seam_score(brighter, owned, intact, ring) > 2.0
    assert math.isnan(seam_score(img, np.zeros_like(owned), intact, ring))


def test_an_untouched_region_gives_no_flags(cortex: dict) -> None:
    owned = _square(cortex["intact"].shape, 110, 44, 40)
    m = _metrics(cortex, cortex["intact"], owned)
    assert m["repaired_px"] == 1600 and m["repaired_um2"] == 1600 * PS * PS
    assert m["cells_repaired"] > 5 and m["cells_ring"] > 5 and m["ring_width_um"] == 30
    assert abs(m["density_rel"]) < 0.5 and abs(m["intensity_z"]) < 0.5 and m["seam"] < 1.3
    assert flag_tile(m, Thresholds()) == []
    assert severity(m, Thresholds()) < 1


def test_an_empty_fill_is_flagged_with_reasons(cortex: dict) -> None:
    img = cortex["intact"]
    owned = _square(img.shape, 110, 44, 40)
    flat = img.copy()
    flat[owned] = int(np.median(img[owned]))  # neuropil grey, no cells
    m = _metrics(cortex, flat, owned)
    assert m["cells_repaired"] == 0 and m["density_rel"] == -1.0 and m["density_z"] < -3
    flags = {f.code: f.reason for f in flag_tile(m, Thresholds())}
    assert {"density", "intensity_sd", "seam"} <= set(flags)
    assert "cell density -100% vs the ring" in flags["density"] and "limit ±50%" in flags["density"]
    assert severity(m, Thresholds()) > 1


def test_a_brighter_fill_is_flagged_on_the_grey_mean(cortex: dict) -> None:
    img = cortex["intact"]
    owned = _square(img.shape, 110, 44, 40)
    bright = img.copy()
    bright[owned] = np.clip(bright[owned].astype(int) + 40, 0, 255)
    flags = {f.code: f.reason for f in flag_tile(_metrics(cortex, bright, owned), Thresholds())}
    assert flags["intensity_mean"].startswith("brighter than the ring by")


def test_few_cells_are_not_flagged_without_significance(cortex: dict) -> None:
    """A tiny region with two cells where the ring predicts one is +100% but not significant."""
    m = {"repaired_px": 40, "ring_um2": 2000.0, "ring_width_um": 30.0, "density_rel": 1.0, "density_z": 0.8,
         "density_repaired": 2000.0, "density_ring": 1000.0, "cell_area_rel": 0.5, "cell_area_z": float("nan"),
         "cell_area_repaired": 60.0, "cell_area_ring": 40.0, "intensity_z": 0.1, "intensity_sd_rel": 0.1, "seam": 1.0}
    assert flag_tile(m, Thresholds()) == []
    assert [f.code for f in flag_tile({**m, "density_z": 3.5}, Thresholds())] == ["density"]


def test_the_ring_widens_inside_a_large_repaired_area(cortex: dict) -> None:
    img = cortex["intact"]
    owned = _square(img.shape, 118, 52, 24)
    others = _square(img.shape, 106, 40, 48) & ~owned  # pixels generated by other tiles all around it
    m = _metrics(cortex, img, owned, repaired=owned | others)
    assert m["ring_width_um"] > 30 and m["ring_um2"] >= m["repaired_um2"]
    everything = np.ones(img.shape, dtype=bool)  # no intact tissue anywhere
    m = _metrics(cortex, img, owned, repaired=everything)
    assert m["ring_um2"] == 0 and math.isnan(m["density_rel"])
    assert [f.code for f in flag_tile(m, Thresholds())] == ["no_reference"]


def test_null_placements_put_the_shape_wholly_into_allowed_tissue() -> None:
    region = np.zeros((40, 40), dtype=bool)
    region[10:16, 10:12] = region[14:16, 12:18] = True  # an L
    allowed = np.ones((40, 40), dtype=bool)
    allowed[20:, :] = False
    allowed[5, 30] = False
    shape, corners = null_placements(region, allowed, 30, seed=3)
    assert np.array_equal(shape, region[10:16, 10:18]) and len(corners) == 30
    assert len({(int(y), int(x)) for y, x in corners}) == 30
    for y, x in corners:
        assert allowed[y:y + 6, x:x + 8][shape].all()
    assert np.array_equal(corners, null_placements(region, allowed, 30, seed=3)[1])
    every = {(int(y), int(x)) for y, x in null_placements(region, allowed, 10_000)[1]}
    assert every == {(y, x) for y in range(20 - 6 + 1) for x in range(40 - 8 + 1)
                     if allowed[y:y + 6, x:x + 8][shape].all()}
    assert len(null_placements(region, np.zeros((40, 40), bool), 5)[1]) == 0
    assert len(null_placements(np.zeros((40, 40), bool), allowed, 5)[1]) == 0


def test_small_regions_of_real_tissue_are_not_flagged_for_their_grey_levels(cortex: dict) -> None:
    """Small regions of intact tissue differ widely from their ring: only the null keeps them unflagged."""
    img = cortex["intact"]
    rng = np.random.default_rng(0)
    by_threshold, flagged = 0, 0
    for _ in range(20):
        y, x = int(rng.integers(60, 170)), int(rng.integers(20, 100))
        m = _metrics(cortex, img, _square(img.shape, y, x, 8))
        assert m["null_regions"] >= 8
        by_threshold += abs(m["intensity_sd_rel"]) > Thresholds().intensity_sd or m["seam"] > Thresholds().seam
        flagged += bool(flag_tile(m, Thresholds()))
    assert by_threshold >= 5 and flagged <= 1  # 7 and 0 when written
    one = _metrics(cortex, img, _square(img.shape, 100, 60, 1))  # one pixel: its spread is 0, as the null's
    assert one["intensity_sd_rel"] == -1 and one["intensity_sd_null_z"] == 0.0
    assert "intensity_sd" not in {f.code for f in flag_tile(one, Thresholds())}


def test_plan_status_flags() -> None:
    assert [f.code for f in flag_tile({}, Thresholds(), status="insufficient_context")] == ["not_repaired"]
    assert flag_tile({"repaired_px": 0}, Thresholds()) == []


def test_settings_from_the_config_block() -> None:
    s = QCSettings.from_config({"ring_width_um": 20, "thresholds": {"seam": 2.0}})
    assert s.ring_width_um == 20 and s.thresholds.seam == 2.0 and s.thresholds.density == Thresholds().density
    assert QCSettings.from_config(None) == QCSettings()
    with pytest.raises(ValueError, match="unknown qc setting"):
        QCSettings.from_config({"ring_width": 20})
    with pytest.raises(ValueError, match="unknown qc setting"):
        QCSettings.from_config({"thresholds": {"seems": 2}})


def test_shapes_must_agree(cortex: dict) -> None:
    with pytest.raises(ValueError, match="one shape"):
        tile_metrics(cortex["intact"], cortex["intact"][:10], np.zeros((10, 10), bool), np.zeros((10, 10), bool),
                     np.zeros((10, 10), bool), PS)


def _clumped_tissue(seed: int = 0, size: int = 256, clumps: int = 40) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Pale tissue whose cells come in clumps of six (not Poisson), with the clumps' centres."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    img, centres = np.full((size, size), 190.0), []
    for _ in range(clumps):
        cy, cx = (int(v) for v in rng.integers(12, size - 12, 2))
        centres.append((cy, cx))
        for _ in range(6):
            img[disk(tuple(np.clip([cy, cx] + rng.normal(0, 4, 2), 4, size - 5)), 2.5, shape=img.shape)] = 70
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8), centres


def test_cell_counts_are_judged_against_regions_of_the_same_tissue() -> None:
    """Clumped cells defeat the Poisson z: a region on a clump is 'significantly' dense, yet like other regions."""
    img, centres = _clumped_tissue()
    by_poisson, flagged = 0, 0
    for cy, cx in centres[:20]:
        m = tile_metrics(img, img, _square(img.shape, cy - 10, cx - 10, 20), _square(img.shape, cy - 10, cx - 10, 20),
                         np.zeros(img.shape, bool), PS)
        assert m["null_regions"] >= 8 and math.isfinite(m["density_null_z"])
        by_poisson += m["density_rel"] > Thresholds().density and m["density_z"] >= Thresholds().significance_z
        flagged += "density" in {f.code for f in flag_tile(m, Thresholds())}
    assert by_poisson >= 4 and flagged <= by_poisson // 2  # 6 and 3 when written


def test_cell_flags_need_the_null_too_where_it_exists() -> None:
    m = {"repaired_px": 400, "ring_um2": 4000.0, "ring_width_um": 30.0, "density_rel": 1.5, "density_z": 4.0,
         "density_repaired": 2500.0, "density_ring": 1000.0, "cell_area_rel": -0.5, "cell_area_z": -4.0,
         "cell_area_repaired": 30.0, "cell_area_ring": 60.0, "intensity_z": 0.1, "intensity_sd_rel": 0.1, "seam": 1.0,
         "density_null_z": 1.2, "cell_area_null_z": -0.8}
    assert flag_tile(m, Thresholds()) == []
    flags = {f.code: f.reason for f in flag_tile({**m, "density_null_z": 3.5, "cell_area_null_z": math.nan},
                                                 Thresholds())}
    assert set(flags) == {"density", "cell_area"} and "z +3.5 vs intact regions of its shape" in flags["density"]


def test_a_blurred_fill_is_flagged_as_smoother(cortex: dict) -> None:
    from scipy import ndimage as ndi

    img = cortex["intact"]
    owned = _square(img.shape, 140, 70, 40)
    blurred = img.copy()  # cells smeared over 6 µm: a blotch
    blurred[owned] = ndi.gaussian_filter(img.astype(np.float32), 6.0 / PS)[owned].round().astype(img.dtype)
    m = _metrics(cortex, blurred, owned)
    flags = {f.code: f.reason for f in flag_tile(m, Thresholds())}
    assert m["texture"] < 0.3 and flags["texture"].startswith("smoother than intact tissue")
    untouched = _metrics(cortex, img, owned)
    assert 0.7 < untouched["texture"] < 1.3 and "texture" not in {f.code for f in flag_tile(untouched, Thresholds())}


def test_small_flat_fills_are_flagged_as_smoother(cortex: dict) -> None:
    """Small regions of real tissue are often far smoother than their ring: on a log scale a flat fill still stands out.

    20 of 20 flat 24 µm squares are flagged for texture; with the null on the ratio itself, none was.
    """
    img = cortex["intact"]
    rng = np.random.default_rng(0)
    flagged = 0
    for _ in range(20):
        owned = _square(img.shape, int(rng.integers(60, 170)), int(rng.integers(20, 100)), 12)
        flat = img.copy()
        flat[owned] = int(np.median(img[owned]))
        m = _metrics(cortex, flat, owned)
        flagged += "texture" in {f.code for f in flag_tile(m, Thresholds())}
    assert flagged >= 16
