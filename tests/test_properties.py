"""Properties over random masks, tile sizes and core fractions (hypothesis).

Masks include ones touching the border, single pixels and masks larger than a tile.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import make_section
from test_blend import fabricate_batches
from test_tiling import check_plan

from cytopaint.blend.stage import blend_section
from cytopaint.io import volume
from cytopaint.morphology import AnyPooled
from cytopaint.plan.tiling import plan_tiles

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    """A boolean mask: a few rectangles (any size up to the plane, border-touching allowed), pixels and diagonals."""
    ny, nx = draw(st.integers(8, 70)), draw(st.integers(8, 70))
    mask = np.zeros((ny, nx), dtype=bool)
    for _ in range(draw(st.integers(0, 4))):
        y0, x0 = draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1))
        mask[y0:y0 + draw(st.integers(1, ny)), x0:x0 + draw(st.integers(1, nx))] = True
    for _ in range(draw(st.integers(0, 6))):
        mask[draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1))] = True
    for _ in range(draw(st.integers(0, 2))):  # diagonal tears, which split tiles into cells
        y0, x0, n = draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1)), draw(st.integers(2, max(ny, nx)))
        ys, xs = y0 + np.arange(n), x0 + np.arange(n) * draw(st.sampled_from([1, -1]))
        inside = (ys < ny) & (xs >= 0) & (xs < nx)
        mask[ys[inside], xs[inside]] = True
    return mask


@FAST
@given(mask=masks(), tile=st.integers(4, 24), core_fraction=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
       margin=st.integers(0, 3), min_known=st.sampled_from([0.0, 0.2, 0.5]), max_batch=st.integers(1, 5),
       small=st.booleans())
def test_every_dilated_pixel_has_exactly_one_owner(mask, tile, core_fraction, margin, min_known, max_batch,
                                                   small) -> None:
    core = max(1, int(round(tile * core_fraction)))
    sides = tuple(range(2, tile)) if small else ()  # every smaller window side, to stress the shrinking
    plan = plan_tiles(mask, factor=1, shape=mask.shape, tile_size=tile, core_size=core, margin_px=margin,
                      min_known=min_known, section="S", seed=3, max_batch=max_batch, window_sides=sides)
    check_plan(plan, mask, 1, mask.shape, margin, min_known)


@FAST
@given(mask=masks(), chunks=st.tuples(st.integers(1, 30), st.integers(1, 30)), pool=st.integers(1, 3))
def test_the_plan_does_not_depend_on_the_chunking_of_the_mask(mask, chunks, pool) -> None:
    kwargs = dict(factor=pool, shape=mask.shape, tile_size=16, margin_px=1, min_known=0.25, section="S", seed=0)
    pooled = AnyPooled(mask, (pool, pool))
    reference = plan_tiles(pooled[:, :], **kwargs)
    pd.testing.assert_frame_equal(plan_tiles(AnyPooled(da.from_array(mask, chunks=chunks), (pool, pool)), **kwargs),
                                  reference)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), density=st.floats(0.1, 0.9), window=st.sampled_from([32, 64, 4096]))
def test_blending_changes_only_owned_pixels_and_the_same_batches_give_the_same_bytes(seed, density, window) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_section(tmp / "in.ome.zarr", (80, 72), n_levels=2)
        image = np.asarray(volume.open_level(src, 0))
        files, expected, union = fabricate_batches(tmp, image, seed=seed, density=density)
        outs, out = [], tmp / "out.ome.zarr"
        for _ in range(2):
            shutil.rmtree(out, ignore_errors=True)
            receipt = blend_section(str(src), None, files, out, window_px=window)
            after = np.asarray(volume.open_level(out, 0))
            assert np.array_equal(after[~union], image[~union]) and np.array_equal(after, expected)
            outs.append((receipt["sha256_level0"], {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                                                    if p.is_file()}))
        assert outs[0] == outs[1]


@FAST
@given(mask=masks(), ky=st.integers(1, 4), kx=st.integers(1, 4), band_px=st.integers(1, 200),
       y0=st.integers(0, 5), x0=st.integers(0, 5))
def test_any_pooling_in_bands_equals_pooling_at_once(mask, ky, kx, band_px, y0, x0) -> None:
    from cytopaint import morphology

    ny, nx = -(-mask.shape[0] // ky), -(-mask.shape[1] // kx)
    padded = np.zeros((ny * ky, nx * kx), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    expected = padded.reshape(ny, ky, nx, kx).any(axis=(1, 3))[y0:, x0:]
    saved = morphology._BAND_PX
    morphology._BAND_PX = band_px  # a few output rows per read, as a full-resolution mask of 10^10 px gets
    try:
        got = AnyPooled(da.from_array(mask, chunks=7), (ky, kx))[y0:, x0:]
    finally:
        morphology._BAND_PX = saved
    assert np.array_equal(got, expected)
