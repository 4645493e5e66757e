"""Checks that need a CUDA device (``pytest -m gpu``): the sampler, training and classifier on the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cytopaint.models.classifier import load_classifier
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.sampling import SamplerSettings, make_generators, sample
from cytopaint.models import package as modelpkg
from cytopaint.synth import SectionSpec, render_window
from cytopaint.models.training import train_step

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")


def _tiles(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    known = torch.rand((n, 1, size, size), generator=g) * 2 - 1
    mask = torch.zeros((n, 1, size, size), dtype=torch.bool)
    mask[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = True
    return known.to(CUDA), mask.to(CUDA)


def test_repaint_on_gpu_keeps_known_pixels_and_is_reproducible() -> None:
    model = modelpkg.load("demo", device=CUDA)
    known, mask = _tiles(6, model.tile_size)
    settings = SamplerSettings(jump_length=5, jump_n_sample=2, steps=20)
    seeds = list(range(100, 106))
    a = sample(model.network, model.diffusion(), known, mask, make_generators(seeds, CUDA), settings).images
    b = sample(model.network, model.diffusion(), known, mask, make_generators(seeds, CUDA), settings).images
    assert torch.isfinite(a).all()
    assert torch.equal(a[~mask.expand_as(a)], known[~mask.expand_as(known)])
    assert torch.equal(a, b)  # same seeds, same batch: the same tiles


def test_gpu_tile_depends_little_on_its_batch() -> None:
    """On the GPU a tile's noise still comes from its own seed; batched kernels may differ in the last bits."""
    model = modelpkg.load("demo", device=CUDA)
    known, mask = _tiles(8, model.tile_size)
    settings = SamplerSettings(jump_length=5, jump_n_sample=2, steps=20)
    seeds = list(range(8))
    batch = sample(model.network, model.diffusion(), known, mask, make_generators(seeds, CUDA), settings).images
    alone = sample(model.network, model.diffusion(), known[3:4], mask[3:4], make_generators(seeds[3:4], CUDA),
                    settings).images
    diff = (batch[3:4] - alone).abs()
    print(f"tile alone vs in a batch of 8 on {torch.cuda.get_device_name()}: max |diff| {diff.max():.4g}, "
          f"mean {diff.mean():.4g} (model range [-1, 1])")
    assert diff.mean() < 0.05  # a different seed gives ~0.5


@pytest.mark.parametrize("spec", ["channels-last", "channels-last+compile", "compile=reduce-overhead"])
def test_a_channels_last_or_compiled_network_samples_what_the_eager_one_does_on_gpu(spec: str) -> None:
    from cytopaint.diffusion.execution import Execution

    eager = modelpkg.load("demo", device=CUDA)
    run = modelpkg.load("demo", device=CUDA).run_as(Execution.parse(spec))
    known, mask = _tiles(4, eager.tile_size)
    settings = SamplerSettings(jump_length=5, jump_n_sample=2, steps=20)
    a, b = (sample(m.forward, m.diffusion(), known, mask, make_generators(range(4), CUDA), settings).images
            for m in (eager, run))
    assert torch.equal(b[~mask.expand_as(b)], known[~mask.expand_as(known)])
    diff = (a - b).abs()
    print(f"{spec} vs eager on {torch.cuda.get_device_name()}: max |diff| {diff.max():.4g}, mean {diff.mean():.4g}")
    assert diff.mean() < 0.05  # fused kernels under bf16 move the last bits; another seed gives ~0.5


def test_gpu_batch_auto_predicts_the_peak_of_a_larger_batch() -> None:
    """The line through the peaks of batches 1 and 2 predicts a batch of 32 (what ``gpu_batch: auto`` relies on)."""
    from cytopaint.repaint.memory import _peak_bytes, fit_tiles_per_call

    model = modelpkg.load("demo", device=CUDA)
    shape, channels = (model.tile_size, model.tile_size), model.network.config.in_channels
    fit = fit_tiles_per_call(model.network, shape, channels, CUDA, tiles=10**6)
    p1, p2, p32 = (_peak_bytes(model.network, b, shape, channels, CUDA) for b in (1, 2, 32))
    predicted = p1 + 31 * (p2 - p1)
    print(f"gpu_batch auto on {torch.cuda.get_device_name()}: {fit.per_tile_mib:.1f} MiB per tile, "
          f"{fit.free_mib:.0f} MiB free, {fit.tiles_per_call} tiles per call; batch 32 peak {p32 / 2**20:.0f} MiB, "
          f"predicted {predicted / 2**20:.0f}")
    assert fit.tiles_per_call > 32 and 0.5 < p32 / predicted < 2


def test_training_step_on_gpu_reduces_the_loss() -> None:
    from cytopaint.diffusion.unet import TINY_64, UNet

    torch.manual_seed(0)
    net = UNet(TINY_64).to(CUDA)
    diffusion = DiffusionConfig(steps=256).build()
    spec = SectionSpec(seed=3, shape=(256, 256), pixel_size_um=2.0, damaged_fraction=0.0)
    img = render_window(spec, 0, 0, 256, 256)["intact"]
    x0 = torch.from_numpy(np.stack([img[y:y + 64, x:x + 64] for y in range(64, 192, 32) for x in range(0, 192, 32)]))
    x0 = (x0[:, None].float() / 127.5 - 1).to(CUDA)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-4)
    gen = torch.Generator().manual_seed(0)
    losses = [train_step(net, diffusion, x0, opt, generator=gen, precision="bf16").loss for _ in range(60)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_classifier_on_gpu_matches_cpu() -> None:
    spec = SectionSpec(seed=4, shape=(512, 1024), pixel_size_um=2.0, damaged_fraction=0.0)
    img = render_window(spec, 0, 0, 512, 1024)["intact"]
    patches = np.stack([img[:, :512], img[:, 512:]])
    f_cpu, p_cpu = load_classifier("demo").predict(patches, 2.0)
    f_gpu, p_gpu = load_classifier("demo", device=CUDA).predict(patches, 2.0)
    np.testing.assert_allclose(f_gpu, f_cpu, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(p_gpu, p_cpu, atol=1e-3)
