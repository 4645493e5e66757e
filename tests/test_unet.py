"""The ADM-style U-Net: shapes, configuration, attention placement, conditioning."""

from __future__ import annotations

import pytest
import torch

from cytopaint.diffusion.unet import PAPER_1024, TINY_64, AttentionBlock, UNet, UNetConfig
from cytopaint.models.package import count_parameters


def test_tiny_output_shape_and_learned_sigma_channels(tiny_config: UNetConfig) -> None:
    net = UNet(tiny_config)
    out = net(torch.randn(3, 1, 16, 16), torch.tensor([0, 5, 39]))
    assert out.shape == (3, 2, 16, 16)
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer (ADM)


def test_pixel_unshuffle_stem_shapes() -> None:
    net = UNet(TINY_64)
    assert net(torch.randn(2, 1, 64, 64), torch.tensor([1, 200])).shape == (2, 2, 64, 64)


def test_timestep_conditions_the_output(tiny_net: UNet) -> None:
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(tiny_net(x, torch.tensor([1])), tiny_net(x, torch.tensor([30])))


@pytest.mark.parametrize("cfg", [TINY_64, PAPER_1024])
def test_attention_at_configured_resolutions(cfg: UNetConfig) -> None:
    net = UNet(cfg)
    n_attn = sum(isinstance(m, AttentionBlock) for m in net.modules())
    levels_with_attn = sum((cfg.image_size // cfg.stem_unshuffle) // 2**i in cfg.attention_resolutions
                           for i in range(len(cfg.channel_mult)))
    per_level = cfg.num_res_blocks + (cfg.num_res_blocks + 1)
    assert n_attn == levels_with_attn * per_level + 1  # + the middle block


def test_paper_configuration() -> None:
    cfg = PAPER_1024
    assert cfg.image_size == 1024 and len(cfg.channel_mult) - 1 == 7  # 7 levels down, 7 up: 1024 -> 8 px
    assert cfg.image_size // 2 ** (len(cfg.channel_mult) - 1) == 8
    assert set(cfg.attention_resolutions) == {32, 16, 8}
    assert 50e6 < count_parameters(UNet(cfg)) < 150e6


def test_config_round_trip_and_validation() -> None:
    assert UNetConfig.from_dict(TINY_64.to_dict()) == TINY_64
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({"image_size": 64, "layers": 3})
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig.from_dict({"image_size": 62, "channel_mult": [1, 2, 2]})


def test_the_network_samples_at_its_tile_and_its_halvings_only(tiny_net: UNet) -> None:
    assert tiny_net.config.sides() == (16, 8, 4, 2) and PAPER_1024.sides() == (1024, 512, 256, 128)
    for side in tiny_net.config.sides():
        assert tiny_net(torch.randn(2, 1, side, side), torch.tensor([0, 5])).shape == (2, 2, side, side)
    assert tiny_net(torch.randn(1, 1, 16, 4), torch.tensor([3])).shape == (1, 2, 16, 4)  # oblong windows too
    for shape in ((32, 32), (12, 12), (16, 12)):
        with pytest.raises(ValueError, match="height and width are each one of 16, 8, 4, 2 px"):
            tiny_net(torch.randn(1, 1, *shape), torch.tensor([0]))
