"""Hybrid-loss training of a tiny model and the EMA of its weights."""

from __future__ import annotations

import math

import pytest
import torch

from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet
from cytopaint.models.training import EMA, train_step


def _pattern(batch: int = 16) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    return (torch.sin(xx / 2) * torch.cos(yy / 3))[None, None].repeat(batch, 1, 1, 1)


def test_loss_is_finite_and_decreases_on_a_fixed_pattern(tiny_config) -> None:
    torch.manual_seed(0)
    net = UNet(tiny_config)
    d = DiffusionConfig(steps=64).build()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    ema = EMA(net, decay=0.9)
    g = torch.Generator().manual_seed(0)
    x0 = _pattern()
    losses = [train_step(net, d, x0, opt, ema, generator=g).loss for _ in range(40)]
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_bf16_autocast_step_runs_on_cpu(tiny_config) -> None:
    net = UNet(tiny_config)
    d = DiffusionConfig(steps=16).build()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    res = train_step(net, d, _pattern(4), opt, precision="bf16", generator=torch.Generator().manual_seed(1))
    assert math.isfinite(res.loss) and res.vb >= 0


def test_ema_is_the_exponential_moving_average(tiny_config) -> None:
    net = UNet(tiny_config)
    ema = EMA(net, decay=0.75, warmup=False)
    before = [p.detach().clone() for p in ema.shadow.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for b, e, p in zip(before, ema.shadow.parameters(), net.parameters()):
        torch.testing.assert_close(e, 0.75 * b + 0.25 * p)
    assert not any(p.requires_grad for p in ema.shadow.parameters())
    with pytest.raises(ValueError):
        EMA(net, decay=1.0)


def test_ema_warmup_forgets_the_initial_weights(tiny_config) -> None:
    net = UNet(tiny_config)
    ema = EMA(net, decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    for _ in range(1000):
        ema.update(net)
    # without warm-up 0.999^1000 = 37% of the initial weights would remain
    assert all(torch.allclose(p, torch.ones_like(p), atol=0.02) for p in ema.shadow.parameters())


def test_auto_precision_uses_bf16_only_where_the_cpu_computes_it(monkeypatch) -> None:
    from cytopaint.models.training import resolve_precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_precision("auto", cpu) == "fp32"  # emulated bf16 is many times slower
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("fp16", cpu) == "fp16"
