"""Classical inpainting baselines: known pixels untouched, input unmodified, holes filled, bad input rejected."""

from __future__ import annotations

import numpy as np
import pytest

from cytopaint.evaluation.baselines import BASELINES, biharmonic, mean_fill

from conftest import blob_image


def _mask(shape: tuple[int, int] = (48, 48)) -> np.ndarray:
    """An irregular mask: a disk, a stroke and a block touching the border (~25%)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.hypot(yy - 20, xx - 28) < 7
    mask |= np.abs(yy - 0.6 * xx - 10) < 2
    mask[-8:, :12] = True
    return mask


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_known_pixels_bit_identical_and_input_unmodified(name: str) -> None:
    img, mask = blob_image((48, 48), seed=3), _mask()
    img_before, mask_before = img.copy(), mask.copy()
    out = BASELINES[name](img, mask)
    assert out.dtype == np.uint8 and out.shape == img.shape and out is not img
    np.testing.assert_array_equal(out[~mask], img[~mask])
    np.testing.assert_array_equal(img, img_before)
    np.testing.assert_array_equal(mask, mask_before)
    assert not np.array_equal(out[mask], img[mask])  # the cells under the mask are not recovered exactly


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_constant_image_stays_constant(name: str) -> None:
    """OpenCV's Telea is off by a few grey levels even on a constant image (cf. opencv/opencv#25404)."""
    img = np.full((40, 40), 137, np.uint8)
    img_hole = img.copy()
    mask = _mask((40, 40))
    img_hole[mask] = 0  # whatever lies under the mask is ignored
    out = BASELINES[name](img_hole, mask).astype(int)
    assert np.abs(out - 137).max() <= (3 if name == "telea" else 0)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_empty_mask_gives_a_copy(name: str) -> None:
    img = blob_image((32, 32))
    out = BASELINES[name](img, np.zeros(img.shape, bool))
    np.testing.assert_array_equal(out, img)
    assert out is not img


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_rejects_bad_input(name: str) -> None:
    f, img, mask = BASELINES[name], blob_image((32, 32)), _mask((32, 32))
    with pytest.raises(ValueError, match="shape"):
        f(img, mask[:, :-1])
    with pytest.raises(ValueError, match="uint8"):
        f(img.astype(np.float32), mask)
    with pytest.raises(ValueError, match="uint8"):
        f(np.stack([img, img], -1), mask)
    with pytest.raises(ValueError, match="bool"):
        f(img, mask.astype(np.uint8))
    with pytest.raises(ValueError, match="no known pixel"):
        f(img, np.ones(img.shape, bool))


def test_biharmonic_reproduces_a_ramp_and_beats_mean_fill() -> None:
    """A linear ramp is biharmonic, so holes inside the image are filled to rounding; all fills beat the mean."""
    img = np.add.outer(np.arange(48) * 2, np.arange(48) * 3).astype(np.uint8) + 10
    yy, xx = np.mgrid[:48, :48]
    mask = (np.hypot(yy - 20, xx - 28) < 9) | ((np.abs(yy - 0.6 * xx - 10) < 2) & (xx > 4) & (xx < 40))
    assert np.abs(biharmonic(img, mask).astype(int) - img).max() <= 1
    err = {name: np.abs(f(img, mask).astype(int) - img)[mask].mean() for name, f in BASELINES.items()}
    assert max(err["biharmonic"], err["telea"], err["navier-stokes"]) < err["mean-fill"] / 2


@pytest.mark.parametrize(("known", "fill"), [((10, 11, 13), 11), ((10, 11), 10), ((11, 12), 12), ((0, 255, 255), 170)])
def test_mean_fill_value(known: tuple[int, ...], fill: int) -> None:
    """The rounded mean of the known pixels (half to even: 10.5 -> 10, 11.5 -> 12)."""
    img = np.full((3, 3), 250, np.uint8)
    img.flat[: len(known)] = known
    mask = np.ones((3, 3), bool)
    mask.flat[: len(known)] = False
    out = mean_fill(img, mask)
    np.testing.assert_array_equal(out[mask], fill)
    np.testing.assert_array_equal(out[~mask], known)
