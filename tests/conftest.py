"""Shared fixtures: tiny networks and processes that run in milliseconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet, UNetConfig
from cytopaint.io.writer import write_section

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one thread per xdist worker: oversubscribed cores slow tiny networks 100x

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


def blob_image(shape: tuple[int, int], seed: int = 0, n_cells: int | None = None) -> np.ndarray:
    """A cheap stand-in for cortex in unit tests: dark round cells on a light, slightly noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, 200.0) + rng.normal(0, 6, shape)
    for _ in range(n_cells or shape[0] * shape[1] // 150):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(1.5, 4)
        img -= 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_section(path: Path, shape: tuple[int, int] = (128, 128), *, pixel_size_um: float = 1.0, seed: int = 0,
                 holes: list[tuple[int, int, int, int]] = (), n_levels: int = 3, chunks=(32, 32),
                 ngff: str = "0.5") -> Path:
    """An OME-Zarr section with ``labels/artifacts`` marking the rectangles ``holes`` (y0, x0, h, w)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for y0, x0, h, w in holes:
        mask[y0:y0 + h, x0:x0 + w] = 1
    write_section(path, blob_image(shape, seed), pixel_size_um=pixel_size_um, n_levels=n_levels,
                  labels={"artifacts": mask}, chunks=chunks, ngff=ngff)
    return path


def write_sections_table(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("section\timage\tmask\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path
