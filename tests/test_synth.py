"""Synthetic cortex: determinism, seamless windows, laminar densities and soma sizes, artifacts."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from cytopaint.synth import (AREA_TYPES, SectionSpec, areal_density, artifact_layout, cells_in_window, geometry,
                             iter_windows, render_section, render_window)
from cytopaint.synth.render import label_window

KEYS = ("image", "intact", "mask", "artifact", "layer", "area")


@pytest.fixture(scope="module")
def small() -> tuple[SectionSpec, dict]:
    spec = SectionSpec(seed=3, shape=(400, 400), pixel_size_um=2.0, anchor="sulcus", damaged_fraction=0.15)
    return spec, render_section(spec)


def test_output_contract(small: tuple[SectionSpec, dict]) -> None:
    spec, out = small
    for key, dtype in [("image", np.uint8), ("intact", np.uint8), ("mask", bool), ("artifact", np.uint8),
                       ("layer", np.uint8), ("area", np.uint8)]:
        assert out[key].shape == spec.shape and out[key].dtype == dtype, key
    cells = out["cells"]
    assert isinstance(cells, pd.DataFrame) and len(cells) > 500
    assert {"y", "x", "y_um", "x_um", "area_um2", "kind", "layer", "area"} <= set(cells.columns)
    assert cells["y"].between(-0.5, spec.shape[0] - 0.5).all() and cells["x"].between(-0.5, spec.shape[1] - 0.5).all()
    outside = out["layer"] == 0
    assert outside.mean() > 0.03  # the pia crosses the view near its top
    assert 228 <= np.median(out["intact"][outside]) <= 247
    tissue = out["intact"][~outside]
    assert np.median(tissue) < np.median(out["intact"][outside]) - 15
    assert np.percentile(tissue, 1) < 120  # dark somata
    assert set(np.unique(out["artifact"])) <= {0, 1, 2, 3, 4}
    assert np.array_equal(out["mask"], out["artifact"] > 0)
    assert out["mask"][outside].mean() < 0.05  # only partly covered pixels at the tissue edge


def test_deterministic_from_seed() -> None:
    spec = SectionSpec(seed=11, shape=(160, 200), pixel_size_um=2.0)
    a, b = render_section(spec), render_section(spec)
    for key in KEYS:
        assert np.array_equal(a[key], b[key])
    pd.testing.assert_frame_equal(a["cells"], b["cells"])
    other = render_section(SectionSpec(seed=12, shape=(160, 200), pixel_size_um=2.0))
    assert not np.array_equal(a["intact"], other["intact"])


@pytest.mark.parametrize("seed,ps,n", [(0, 1.0, 360), (3, 2.0, 400), (7, 4.0, 400)])
def test_windows_tile_seamlessly(seed: int, ps: float, n: int) -> None:
    spec = SectionSpec(seed=seed, shape=(n, n), pixel_size_um=ps, anchor="sulcus", damaged_fraction=0.2)
    full = render_section(spec)
    assert full["mask"].any()
    h, w = n // 2 + 7, n // 2 - 13  # not aligned with blocks, noise tiles or lattices
    parts = {(y0, x0): render_window(spec, y0, x0, hh, ww)
             for y0, hh in [(0, h), (h, n - h)] for x0, ww in [(0, w), (w, n - w)]}
    for key in KEYS:
        stitched = np.block([[parts[(0, 0)][key], parts[(0, w)][key]], [parts[(h, 0)][key], parts[(h, w)][key]]])
        assert np.array_equal(stitched, full[key]), key
    cells = pd.concat([p["cells"] for p in parts.values()]).sort_values(["y_um", "x_um"]).reset_index(drop=True)
    expected = full["cells"].sort_values(["y_um", "x_um"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(cells[["y_um", "x_um", "area_um2"]], expected[["y_um", "x_um", "area_um2"]])


def test_iter_windows_cover_the_section(small: tuple[SectionSpec, dict]) -> None:
    spec, full = small
    image = np.zeros(spec.shape, np.uint8)
    for y0, x0, out in iter_windows(spec, size=150):
        image[y0:y0 + out["image"].shape[0], x0:x0 + out["image"].shape[1]] = out["image"]
    assert np.array_equal(image, full["image"])


def test_same_tissue_at_any_pixel_size() -> None:
    spec1 = SectionSpec(seed=5, shape=(400, 400), pixel_size_um=1.0)
    spec2 = spec1.at_pixel_size(2.0)
    assert spec2.shape == (200, 200) and spec2.extent_um == spec1.extent_um
    c1, c2 = cells_in_window(spec1, 0, 0, 400, 400), cells_in_window(spec2, 0, 0, 200, 200)
    np.testing.assert_allclose(c1[["y_um", "x_um", "area_um2"]], c2[["y_um", "x_um", "area_um2"]])
    lay1, _ = label_window(spec1, 0, 0, 400, 400)
    lay2, _ = label_window(spec2, 0, 0, 200, 200)
    assert (lay1[::2, ::2] == lay2).mean() > 0.97


def test_small_window_renders_fast() -> None:
    spec = SectionSpec(seed=21, shape=(300, 300), pixel_size_um=1.0)
    t = time.perf_counter()
    render_section(spec)  # includes building the section geometry
    assert time.perf_counter() - t < 3.0  # typically ~0.4 s; loose for shared CI machines


def test_layers_and_area_types() -> None:
    spec = SectionSpec(seed=2, shape=(500, 500), pixel_size_um=16.0, area_width_mm=2.0, anchor="sulcus")
    layer, area = label_window(spec, 0, 0, *spec.shape)
    assert set(np.unique(layer)) == set(range(8))
    assert set(np.unique(area)) == {0} | {a.code for a in AREA_TYPES.values()}
    assert np.array_equal(layer == 0, area == 0)
    # layers are ordered from the pia: along each column, the first tissue pixel is layer I
    col = layer[:, 250]
    first = col[np.argmax(col > 0)]
    assert first == 1


def _single_area(name: str, seed: int) -> tuple[SectionSpec, object]:
    """A 4.6 x 2.4 mm view at 4 µm/px, pia near the top, showing one instance of one area type."""
    spec = SectionSpec(seed=seed, shape=(1150, 600), pixel_size_um=4.0, areas=(name,), area_width_mm=80.0,
                       damaged_fraction=0.0, surface_frac=0.05)
    geom = geometry(spec)
    g = geom.grid((np.arange(0, 1150, 5) + 0.5) * 4.0, (np.arange(0, 600, 5) + 0.5) * 4.0)
    aid = g["aid"][g["depth"] > 0]
    ids, counts = np.unique(aid, return_counts=True)
    assert counts.max() / counts.sum() > 0.97, "test view should hold one area instance"
    return spec, geom.areas[ids[np.argmax(counts)]]


def _uncut(cells: pd.DataFrame, spec: SectionSpec) -> pd.DataFrame:
    return cells[cells["z_um"].abs() <= spec.section_um / 2]


@pytest.mark.parametrize("name,seed", [("frontal", 1), ("v1", 2), ("motor", 3), ("temporal", 4)])
def test_laminar_neuron_densities(name: str, seed: int) -> None:
    spec, inst = _single_area(name, seed)
    nominal = AREA_TYPES[name]
    assert 0.8 * nominal.thickness_mm * 1e3 <= inst.thickness_um <= 1.2 * nominal.thickness_mm * 1e3
    cells = cells_in_window(spec, 0, 0, *spec.shape)
    layer_map, _ = label_window(spec, 0, 0, *spec.shape)
    neurons = cells[cells["kind"].isin(["pyramidal", "granule", "interneuron", "fusiform"])]
    shares = np.diff(inst.bounds)
    tested = 0
    for lay in range(1, 7):
        nominal_mean = sum(s * d for s, d in nominal.density[lay - 1])
        want = sum(s * d for s, d in inst.density[lay - 1])  # realised, neurons per mm^3
        assert 0.7 * nominal_mean - 1e-6 <= want <= 1.3 * nominal_mean + 1e-6
        area_mm2 = (layer_map == lay).sum() * spec.pixel_size_um ** 2 * 1e-6
        sel = neurons[neurons["layer"] == lay]
        if want == 0 or shares[lay - 1] == 0:
            assert len(sel) == 0 and area_mm2 == 0  # e.g. no layer IV in motor cortex
            continue
        if area_mm2 < 0.1:  # layer cut off by the view
            continue
        tested += 1
        uncut = _uncut(sel, spec)
        diameter = float(((uncut["length_um"] + uncut["width_um"]) / 2).mean())
        measured = len(sel) / area_mm2
        expected = areal_density(want, diameter, spec.section_um)
        assert measured == pytest.approx(expected, rel=0.25), (lay, measured, expected)
    assert tested >= 5


def test_glia_per_neuron_and_white_matter() -> None:
    spec, inst = _single_area("frontal", 1)
    cells = cells_in_window(spec, 0, 0, *spec.shape)
    layer_map, _ = label_window(spec, 0, 0, *spec.shape)
    grey = cells[(cells["layer"] >= 1) & (cells["layer"] <= 6)]

    def per_mm3(sel: pd.DataFrame) -> float:
        u = _uncut(sel, spec)
        return len(sel) / areal_density(1.0, float(((u["length_um"] + u["width_um"]) / 2).mean()), spec.section_um)

    glia = per_mm3(grey[grey["kind"] == "glia"])
    neurons = per_mm3(grey[grey["kind"].isin(["pyramidal", "granule", "interneuron", "fusiform"])])
    assert 0.9 <= glia / neurons <= 2.2
    wm_area = (layer_map == 7).sum() * spec.pixel_size_um ** 2 * 1e-6
    assert wm_area > 0.5
    wm_glia = cells[(cells["layer"] == 7) & (cells["kind"] == "glia")]
    assert 500 <= len(wm_glia) / wm_area <= 4000
    assert (cells[cells["layer"] == 7]["kind"] == "glia").mean() > 0.8


def test_soma_sizes_within_ranges() -> None:
    spec, _ = _single_area("motor", 3)
    cells = _uncut(cells_in_window(spec, 0, 0, *spec.shape), spec)
    length, width = cells["length_um"], cells["width_um"]

    def check(sel: pd.Series, lo_l: float, hi_l: float, lo_w: float, hi_w: float) -> None:
        assert sel.sum() > 5
        assert length[sel].between(lo_l, hi_l).all() and width[sel].between(lo_w, hi_w).all()

    kind, layer = cells["kind"], cells["layer"]
    check(kind == "granule", 4, 15, 4, 12)
    check((kind == "pyramidal") & (layer == 3), 8, 60, 4, 22)
    check((kind == "pyramidal") & (layer == 5), 15, 40, 15, 25)
    check(kind == "betz", 60, 120, 30, 60)
    check(kind == "glia", 5, 10, 5, 10)
    pyr3 = cells[(kind == "pyramidal") & (layer == 3)]
    mid = np.median(pyr3["y_um"])  # the pia is at the top of the view: deeper IIIc pyramids are larger
    assert pyr3[pyr3["y_um"] > mid]["length_um"].mean() > 1.2 * pyr3[pyr3["y_um"] <= mid]["length_um"].mean()
    v1_spec, _ = _single_area("v1", 2)
    v1 = _uncut(cells_in_window(v1_spec, 0, 0, *v1_spec.shape), v1_spec)
    assert v1[(v1["kind"] == "granule") & (v1["layer"] == 4)]["width_um"].mean() < 8  # tiny IVc granules


@pytest.mark.parametrize("fraction", [0.05, 0.15])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_artifacts_cover_requested_fraction(seed: int, fraction: float) -> None:
    spec = SectionSpec(seed=seed, shape=(500, 500), pixel_size_um=12.0, damaged_fraction=fraction,
                       anchor=("crown", "sulcus")[seed % 2])
    out = render_section(spec, with_cells=False)
    measured = out["mask"].sum() / (out["layer"] > 0).sum()
    assert measured == pytest.approx(fraction, rel=0.25)
    assert {1, 2, 3} <= set(np.unique(out["artifact"]))


def test_no_artifacts_when_fraction_is_zero() -> None:
    spec = SectionSpec(seed=4, shape=(200, 200), pixel_size_um=8.0, damaged_fraction=0.0)
    out = render_section(spec, with_cells=False)
    assert artifact_layout(spec) == () and not out["mask"].any()
    assert np.array_equal(out["image"], out["intact"])


def test_artifact_appearance(small: tuple[SectionSpec, dict]) -> None:
    _, out = small
    img, intact, art = out["image"].astype(float), out["intact"].astype(float), out["artifact"]
    for cls in (1, 2):  # tears and missing tissue show the bright slide
        sel = art == cls
        assert sel.sum() > 50 and np.median(img[sel]) > 225
    fold = art == 3
    assert fold.sum() > 50 and img[fold].mean() < intact[fold].mean() - 10


def test_image_equals_intact_outside_mask_without_tears() -> None:
    spec = SectionSpec(seed=3, shape=(300, 300), pixel_size_um=2.0, anchor="sulcus", damaged_fraction=0.2,
                       artifact_kinds=("missing", "fold", "crystal"))
    out = render_section(spec)
    assert out["mask"].mean() > 0.05
    assert np.array_equal(out["image"][~out["mask"]], out["intact"][~out["mask"]])


def test_crystals_are_small_and_dark() -> None:
    spec = SectionSpec(seed=0, shape=(300, 300), pixel_size_um=4.0, damaged_fraction=0.05,
                       artifact_kinds=("crystal",))
    out = render_section(spec, with_cells=False)
    sel = out["artifact"] == 4
    assert sel.any()
    assert np.median(out["image"][sel]) < np.median(out["intact"][sel]) - 40
    from scipy import ndimage as ndi

    lab, n = ndi.label(sel)
    sizes = np.bincount(lab.ravel())[1:] * spec.pixel_size_um ** 2
    assert n > 0 and sizes.max() < np.pi * 60 ** 2 * 2  # clusters of spots of <= 100 µm


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        SectionSpec(areas=("nope",))
    with pytest.raises(ValueError):
        SectionSpec(artifact_kinds=("smudge",))
    with pytest.raises(ValueError):
        SectionSpec(shape=(0, 10))
    with pytest.raises(ValueError):
        SectionSpec(damaged_fraction=1.0)
