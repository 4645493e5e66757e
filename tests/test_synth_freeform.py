"""Free-form irregular masks land in their hole-ratio bins."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cytopaint.synth.freeform import LIU_BINS, freeform_mask


@pytest.mark.parametrize("shape", [(64, 64), (128, 96), (256, 256)])
@pytest.mark.parametrize("coverage_bin", [*LIU_BINS, (0.05, 0.15), (0.3, 0.31)])
def test_masks_land_in_their_bin(shape: tuple[int, int], coverage_bin: tuple[float, float]) -> None:
    rng = np.random.default_rng(7)
    for _ in range(4):
        mask = freeform_mask(shape, coverage_bin, rng)
        assert mask.shape == shape and mask.dtype == bool
        assert coverage_bin[0] <= mask.mean() < coverage_bin[1]
        assert mask.any()


def test_masks_are_irregular_strokes() -> None:
    ratios = []
    for seed in range(5):
        mask = freeform_mask((256, 256), (0.2, 0.3), seed)
        filled = ndi.binary_fill_holes(mask)
        ys, xs = np.nonzero(mask)
        bbox = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
        ratios.append(mask.sum() / bbox)
        assert filled.sum() >= mask.sum()
    assert np.mean(ratios) < 0.6  # thin strokes, not a filled box


def test_deterministic_and_width_scales_with_patch() -> None:
    a = freeform_mask((128, 128), (0.1, 0.2), 3)
    assert np.array_equal(a, freeform_mask((128, 128), (0.1, 0.2), 3))
    assert not np.array_equal(a, freeform_mask((128, 128), (0.1, 0.2), 4))
    small = freeform_mask((64, 64), (0.2, 0.3), 1)
    large = freeform_mask((512, 512), (0.2, 0.3), 1)
    # typical stroke half-width, from the distance transform inside the strokes
    assert ndi.distance_transform_edt(large).max() > 3 * ndi.distance_transform_edt(small).max()


def test_invalid_bins() -> None:
    with pytest.raises(ValueError):
        freeform_mask((32, 32), (0.3, 0.2))
    with pytest.raises(ValueError):
        freeform_mask((4, 4), (0.51, 0.55))  # no count of 16 pixels falls in [8.16, 8.8)
