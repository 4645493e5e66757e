"""ADM-style U-Net (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", section 3), built from a plain dict.

Residual blocks with scale-shift GroupNorm conditioning on the timestep, self-attention at chosen
feature resolutions (PyTorch fused ``scaled_dot_product_attention``), skip connections between
the encoder and decoder, and a zero-initialised output layer. An optional pixel-unshuffle stem
(``stem_unshuffle: 2``) feeds a 2x2 block of pixels as channels, which quarters the cost of the
full-resolution levels; the output is pixel-shuffled back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the network; ``attention_resolutions`` are feature-map sizes in pixels."""

    image_size: int = 64
    in_channels: int = 1
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (8,)
    num_head_channels: int = 32
    dropout: float = 0.0
    learn_sigma: bool = True
    stem_unshuffle: int = 1

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown U-Net config keys: {sorted(unknown)}")
        d = dict(d)
        for key in ("channel_mult", "attention_resolutions"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        d["attention_resolutions"] = list(self.attention_resolutions)
        return d

    @property
    def divisor(self) -> int:
        """Every side the network takes is a multiple of this: stem_unshuffle x 2^(levels-1)."""
        return self.stem_unshuffle * 2 ** (len(self.channel_mult) - 1)

    def sides(self) -> tuple[int, ...]:
        """Tile sides the network samples at, largest first: ``image_size`` and its halvings that
        stay multiples of `divisor`, for the height and the width alike (a tile may be oblong).
        Convolutions and attention (no positional embedding) take any of them; the network was
        trained on square tiles of ``image_size`` only."""
        out = [self.image_size]
        while out[-1] % 2 == 0 and (out[-1] // 2) % self.divisor == 0:
            out.append(out[-1] // 2)
        return tuple(out)

    def validate(self) -> None:
        if self.image_size % self.divisor:
            raise ValueError(f"image_size {self.image_size} is not divisible by stem_unshuffle x 2^(levels-1) = "
                             f"{self.divisor}")
        for mult in self.channel_mult:
            if (self.model_channels * mult) % self.num_head_channels:
                raise ValueError("every level's channel count must be a multiple of num_head_channels")


#: The paper's network for 1024x1024 px at 1 µm: 7 downsamplings (1024 -> 8 px), one residual block per
#: level on each side, self-attention at feature resolutions 32, 16 and 8 (Kropp et al., section 2.3).
PAPER_1024 = UNetConfig(image_size=1024, in_channels=1, model_channels=64, channel_mult=(1, 1, 2, 2, 4, 4, 8, 8),
                        num_res_blocks=1, attention_resolutions=(32, 16, 8), num_head_channels=64)

#: A small network for CPU tests and the demo model: 64x64 px tiles through a 2x2 pixel-unshuffle stem.
TINY_64 = UNetConfig(image_size=64, in_channels=1, model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=1,
                     attention_resolutions=(8,), num_head_channels=32, stem_unshuffle=2)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps (Vaswani et al. 2017, as in [Ho] appendix B)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, conditioned by scale-shift norm: h = norm(h) (1 + s) + b (ADM section 3)."""

    def __init__(self, channels: int, emb_dim: int, out_channels: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.out_norm = _norm(out_channels)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout),
                                        _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb(emb)[..., None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions, with ``num_head_channels`` channels per head."""

    def __init__(self, channels: int, num_head_channels: int):
        super().__init__()
        self.heads = channels // num_head_channels
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))  # (b, 3c, n)
        q, k, v = qkv.reshape(b, 3, self.heads, c // self.heads, -1).permute(1, 0, 2, 4, 3)  # each (b, h, n, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, h, n, d)
        out = out.permute(0, 1, 3, 2).reshape(b, c, -1)
        return x + self.proj(out).reshape(b, c, hgt, wid)


class _Level(nn.Module):
    """A residual block with optional attention."""

    def __init__(self, res: ResBlock, attn: AttentionBlock | None):
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet(nn.Module):
    """Predicts eps (and the variance interpolation v when ``learn_sigma``) from x_t and t."""

    def __init__(self, config: UNetConfig | dict[str, Any]):
        super().__init__()
        cfg = config if isinstance(config, UNetConfig) else UNetConfig.from_dict(config)
        cfg.validate()
        self.config = cfg
        ch = cfg.model_channels
        emb_dim = 4 * ch
        u = cfg.stem_unshuffle
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(cfg.in_channels * u * u, ch, 3, padding=1)

        def level(c_in: int, c_out: int, res: int) -> _Level:
            attn = AttentionBlock(c_out, cfg.num_head_channels) if res in cfg.attention_resolutions else None
            return _Level(ResBlock(c_in, emb_dim, c_out, cfg.dropout), attn)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_channels = [ch]
        res = cfg.image_size // u
        c = ch
        for i, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(level(c, ch * mult, res))
                c = ch * mult
                skip_channels.append(c)
            if i < len(cfg.channel_mult) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skip_channels.append(c)
                res //= 2
        self.mid = nn.ModuleList([_Level(ResBlock(c, emb_dim, c, cfg.dropout), AttentionBlock(c, cfg.num_head_channels)),
                                  _Level(ResBlock(c, emb_dim, c, cfg.dropout), None)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(level(c + skip_channels.pop(), ch * mult, res))
                c = ch * mult
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
                res *= 2
        self.out = nn.Sequential(_norm(c), nn.SiLU(), _zero(nn.Conv2d(c, cfg.out_channels * u * u, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.shape[-1] not in cfg.sides() or x.shape[-2] not in cfg.sides():
            raise ValueError(f"the network takes tiles whose height and width are each one of "
                             f"{', '.join(map(str, cfg.sides()))} px, got {tuple(x.shape[-2:])}")
        emb = self.time_embed(timestep_embedding(t, cfg.model_channels).to(x.dtype))
        if cfg.stem_unshuffle > 1:
            x = F.pixel_unshuffle(x, cfg.stem_unshuffle)
        h = self.stem(x)
        skips = [h]
        blocks = iter(self.down)
        for i in range(len(cfg.channel_mult)):
            for _ in range(cfg.num_res_blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if i < len(cfg.channel_mult) - 1:
                h = self.downsample[i](h)
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        blocks = iter(self.up)
        ups = iter(self.upsample)
        for i in reversed(range(len(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if i > 0:
                h = next(ups)(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.out(h)
        if cfg.stem_unshuffle > 1:
            h = F.pixel_shuffle(h, cfg.stem_unshuffle)
        return h
