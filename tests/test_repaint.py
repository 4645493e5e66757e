"""RePaint: jump schedule, NFE, known-pixel exactness, determinism, batch independence."""

from __future__ import annotations

import pytest
import torch

from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.repaint import (
    RePaintSettings,
    expected_nfe,
    jump_schedule,
    make_generators,
    repaint,
)


@pytest.mark.parametrize(("steps", "j", "r", "nfe"), [(256, 10, 10, 2506), (256, 10, 5, 1256), (256, 5, 1, 256)])
def test_nfe_of_the_papers_settings(steps: int, j: int, r: int, nfe: int) -> None:
    assert expected_nfe(steps, j, r) == nfe
    assert sum(b < a for a, b in jump_schedule(steps, j, r)) == nfe


@pytest.mark.parametrize(("steps", "j", "r"), [(40, 5, 3), (50, 10, 2), (25, 4, 4), (30, 10, 3), (7, 10, 5), (12, 1, 2)])
def test_schedule_is_a_valid_walk(steps: int, j: int, r: int) -> None:
    sched = jump_schedule(steps, j, r)
    assert sched[0][0] == steps and sched[-1][1] == 0
    for (a, b), (c, _) in zip(sched, sched[1:]):
        assert b == c  # consecutive transitions chain
    for a, b in sched:
        assert b == a - 1 or (b == a + j and b < steps)


def _counting(model):
    calls = []

    def counted(x, t):
        calls.append(int(t[0]))
        return model(x, t)

    return counted, calls


@pytest.mark.parametrize(("steps", "j", "r"), [(20, 5, 3), (20, 4, 2), (16, 10, 2)])
def test_sampler_evaluates_the_network_nfe_times(tiny_net, steps: int, j: int, r: int) -> None:
    d = DiffusionConfig(steps=steps).build()
    model, calls = _counting(tiny_net)
    known = torch.zeros(2, 1, 16, 16)
    mask = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    res = repaint(model, d, known, mask, make_generators([1, 2]), RePaintSettings(j, r), batch_invariant=False)
    expected = steps + (r - 1) * j * -(-(steps - j) // j)
    assert res.nfe == len(calls) == expected


def _inputs(batch: int = 4):
    g = torch.Generator().manual_seed(7)
    known = torch.rand(batch, 1, 16, 16, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, 16, 16, dtype=torch.bool)
    for i in range(batch):  # a different hole per tile
        mask[i, :, 2 + i: 10 + i, 3: 12 - i] = True
    return known, mask


SETTINGS = RePaintSettings(jump_length=4, jump_n_sample=2, steps=12)


def test_known_pixels_are_exact_and_unknown_ones_generated(tiny_net) -> None:
    d = DiffusionConfig(steps=40).build()
    known, mask = _inputs()
    out = repaint(tiny_net, d, known, mask, make_generators([1, 2, 3, 4]), SETTINGS).images
    assert torch.equal(out[~mask.expand_as(out)], known[~mask.expand_as(known)])
    assert not torch.allclose(out[mask], known[mask])
    assert out.min() >= -1 and out.max() <= 1


def test_same_seed_is_bit_identical_and_other_seed_differs(tiny_net) -> None:
    d = DiffusionConfig(steps=40).build()
    known, mask = _inputs()
    a = repaint(tiny_net, d, known, mask, make_generators([1, 2, 3, 4]), SETTINGS).images
    b = repaint(tiny_net, d, known, mask, make_generators([1, 2, 3, 4]), SETTINGS).images
    c = repaint(tiny_net, d, known, mask, make_generators([9, 2, 3, 4]), SETTINGS).images
    assert torch.equal(a, b)
    assert not torch.equal(a[0], c[0]) and torch.equal(a[1:], c[1:])


def test_tile_alone_equals_tile_in_a_batch_of_four(tiny_net) -> None:
    d = DiffusionConfig(steps=40).build()
    known, mask = _inputs()
    seeds = [11, 12, 13, 14]
    batch = repaint(tiny_net, d, known, mask, make_generators(seeds), SETTINGS).images
    for i in range(4):
        alone = repaint(tiny_net, d, known[i:i + 1], mask[i:i + 1], make_generators([seeds[i]]), SETTINGS).images
        assert torch.equal(alone[0], batch[i])
    # the same tile at another position of a reordered batch
    order = [2, 0, 3, 1]
    shuffled = repaint(tiny_net, d, known[order], mask[order], make_generators([seeds[k] for k in order]),
                       SETTINGS).images
    assert torch.equal(shuffled[0], batch[2])


def test_full_mask_without_known_pixels_samples_freely(tiny_net) -> None:
    d = DiffusionConfig(steps=10).build()
    out = repaint(tiny_net, d, torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool),
                  make_generators([3]), RePaintSettings(5, 1)).images
    assert out.std() > 0.05


def test_bad_shapes_and_settings_are_refused(tiny_net) -> None:
    d = DiffusionConfig(steps=10).build()
    with pytest.raises(ValueError, match="mask"):
        repaint(tiny_net, d, torch.zeros(2, 1, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool),
                make_generators([1, 2]))
    with pytest.raises(ValueError, match="generators"):
        repaint(tiny_net, d, torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16, dtype=torch.bool),
                make_generators([1]))
    with pytest.raises(ValueError):
        RePaintSettings(jump_length=0)


def test_progress_bar_reports_steps(tiny_net, capsys) -> None:
    d = DiffusionConfig(steps=6).build()
    repaint(tiny_net, d, torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool),
            make_generators([1]), RePaintSettings(3, 1), progress=True, description="tile 0")
    assert "tile 0" in capsys.readouterr().err
