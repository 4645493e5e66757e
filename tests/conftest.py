"""Shared fixtures: tiny networks and processes that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet, UNetConfig

TINY = UNetConfig(image_size=16, in_channels=1, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(8,), num_head_channels=32)


@pytest.fixture
def tiny_config() -> UNetConfig:
    return TINY


@pytest.fixture
def tiny_net() -> UNet:
    """A tiny U-Net with small random weights everywhere (so its output is not the zero of a fresh init)."""
    torch.manual_seed(0)
    net = UNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net.eval()


@pytest.fixture
def tiny_diffusion_config() -> DiffusionConfig:
    return DiffusionConfig(steps=40)
