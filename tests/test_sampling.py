"""Samplers (RePaint, DDNM, DiffPIR): jump schedule, NFE, known-pixel exactness, determinism, batch independence."""

from __future__ import annotations

import pytest
import torch

from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.sampling import (
    METHODS,
    SamplerSettings,
    expected_nfe,
    jump_schedule,
    make_generators,
    sample,
)


@pytest.mark.parametrize(("steps", "j", "r", "nfe"), [(256, 10, 10, 2506), (256, 10, 5, 1256), (256, 5, 1, 256), (256, 1, 5, 1276), (50, 5, 2, 95)])
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


@pytest.mark.parametrize(("steps", "j", "r", "start"), [(40, 5, 3, 0.5), (256, 1, 5, 0.3), (7, 2, 2, 0.9)])
def test_late_schedule_is_a_valid_walk(steps: int, j: int, r: int, start: float) -> None:
    sched = jump_schedule(steps, j, r, start)
    assert sched[0][0] == steps and sched[-1][1] == 0
    assert all(b == c for (_, b), (c, _) in zip(sched, sched[1:]))
    assert all(b == a - 1 or (b == a + j and b <= start * steps) for a, b in sched)
    assert sum(b < a for a, b in sched) == expected_nfe(steps, j, r, start)


def _counting(model):
    calls = []

    def counted(x, t):
        calls.append(int(t[0]))
        return model(x, t)

    return counted, calls


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("steps", "j", "r", "start"), [(20, 5, 3, 1.0), (20, 4, 2, 1.0), (16, 10, 2, 1.0),
                                                        (20, 2, 3, 0.5), (20, 1, 5, 0.25)])
def test_sampler_evaluates_the_network_nfe_times(tiny_net, method: str, steps: int, j: int, r: int,
                                                 start: float) -> None:
    d = DiffusionConfig(steps=steps).build()
    model, calls = _counting(tiny_net)
    known = torch.zeros(2, 1, 16, 16)
    mask = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    settings = SamplerSettings(j, r, method=method, resample_start=start)
    res = sample(model, d, known, mask, make_generators([1, 2]), settings, batch_invariant=False)
    limit = min(steps - 1, int(start * steps))
    assert res.nfe == len(calls) == steps + (r - 1) * j * (limit // j) == settings.nfe(steps)


def test_late_resampling_only_jumps_below_its_start() -> None:
    sched = jump_schedule(50, 5, 3, resample_start=0.4)
    jumps = [(a, b) for a, b in sched if b > a]
    assert jumps and max(b for _, b in jumps) <= 20 and len(jumps) == 2 * 4
    assert expected_nfe(50, 5, 3, 0.4) == 50 + 2 * 5 * 4
    assert jump_schedule(50, 5, 3, 1.0) == jump_schedule(50, 5, 3)


def _inputs(batch: int = 4):
    g = torch.Generator().manual_seed(7)
    known = torch.rand(batch, 1, 16, 16, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, 16, 16, dtype=torch.bool)
    for i in range(batch):  # a different hole per tile
        mask[i, :, 2 + i: 10 + i, 3: 12 - i] = True
    return known, mask


def _settings(method: str) -> SamplerSettings:
    return SamplerSettings(jump_length=4, jump_n_sample=2, steps=12, method=method, resample_start=0.75, zeta=0.5)


@pytest.mark.parametrize("method", METHODS)
def test_known_pixels_are_exact_and_unknown_ones_generated(tiny_net, method: str) -> None:
    d = DiffusionConfig(steps=40).build()
    known, mask = _inputs()
    out = sample(tiny_net, d, known, mask, make_generators([1, 2, 3, 4]), _settings(method)).images
    assert torch.equal(out[~mask.expand_as(out)], known[~mask.expand_as(known)])
    assert not torch.allclose(out[mask], known[mask])
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_is_bit_identical_and_other_seed_differs(tiny_net, method: str) -> None:
    d = DiffusionConfig(steps=40).build()
    known, mask = _inputs()
    settings = _settings(method)
    a = sample(tiny_net, d, known, mask, make_generators([1, 2, 3, 4]), settings).images
    b = sample(tiny_net, d, known, mask, make_generators([1, 2, 3, 4]), settings).images
    c = sample(tiny_net, d, known, mask, make_generators([9, 2, 3, 4]), settings).images
    assert torch.equal(a, b)
    assert not torch.equal(a[0], c[0]) and torch.equal(a[1:], c[1:])


@pytest.mark.parametrize("method", METHODS)
def test_tile_alone_equals_tile_in_a_batch_of_four(tiny_net, method: str) -> None:
    d = DiffusionConfig(steps=40).build()
    known, mask = _inputs()
    seeds = [11, 12, 13, 14]
    settings = _settings(method)
    batch = sample(tiny_net, d, known, mask, make_generators(seeds), settings).images
    for i in range(4):
        alone = sample(tiny_net, d, known[i:i + 1], mask[i:i + 1], make_generators([seeds[i]]), settings).images
        assert torch.equal(alone[0], batch[i])
    # the same tile at another position of a reordered batch
    order = [2, 0, 3, 1]
    shuffled = sample(tiny_net, d, known[order], mask[order], make_generators([seeds[k] for k in order]),
                      settings).images
    assert torch.equal(shuffled[0], batch[2])


@pytest.mark.parametrize("method", METHODS)
def test_full_mask_without_known_pixels_samples_freely(tiny_net, method: str) -> None:
    d = DiffusionConfig(steps=10).build()
    out = sample(tiny_net, d, torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool),
                 make_generators([3]), SamplerSettings(5, 1, method=method)).images
    assert out.std() > 0.05


def test_bad_shapes_and_settings_are_refused(tiny_net) -> None:
    d = DiffusionConfig(steps=10).build()
    with pytest.raises(ValueError, match="mask"):
        sample(tiny_net, d, torch.zeros(2, 1, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool),
               make_generators([1, 2]))
    with pytest.raises(ValueError, match="generators"):
        sample(tiny_net, d, torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16, dtype=torch.bool),
               make_generators([1]))
    with pytest.raises(ValueError):
        SamplerSettings(jump_length=0)
    for bad in ({"method": "dps"}, {"resample_start": 0.0}, {"resample_start": 1.5}, {"zeta": -0.1}, {"steps": 0}):
        with pytest.raises(ValueError):
            SamplerSettings(**bad)


def test_settings_parse_from_the_command_line_syntax() -> None:
    assert SamplerSettings.parse("256:1:5") == SamplerSettings(1, 5, 256)
    assert SamplerSettings.parse("all:10:10") == SamplerSettings(10, 10, None)
    assert SamplerSettings.parse("25:5:2,method=ddnm,resample_start=0.5") == \
        SamplerSettings(5, 2, 25, method="ddnm", resample_start=0.5)
    assert SamplerSettings.parse("20:1:1,method=diffpir,zeta=0.3").zeta == 0.3
    for bad, match in (("25:5", "STEPS:J:R"), ("25:5:2,eta=1", "eta=1"), ("25:5:2,method=dps", "dps")):
        with pytest.raises(ValueError, match=match):
            SamplerSettings.parse(bad)


def test_progress_bar_reports_steps(tiny_net, capsys) -> None:
    d = DiffusionConfig(steps=6).build()
    sample(tiny_net, d, torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16, dtype=torch.bool),
           make_generators([1]), SamplerSettings(3, 1), progress=True, description="tile 0")
    assert "tile 0" in capsys.readouterr().err
