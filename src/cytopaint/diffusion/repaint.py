"""RePaint sampling (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models").

Algorithm 1 of the paper, on batches of tiles with per-sample masks and one random generator
per tile: before each reverse step from state x_n the known pixels are replaced by the original
forward-noised to state n (eq. 8: x_{n-1} = m * x_{n-1}^known + (1 - m) * x_{n-1}^unknown),
the unknown part takes one learned-variance reverse step, and every ``jump_length`` states the
sampler jumps back up by re-noising (``jump_n_sample`` passes over each stretch, section 4.2).
After the last step the known pixels are pasted back exactly. All maths is
`cytopaint.diffusion.gaussian`'s; states are numbered as there (x_T noise .. x_0 data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .gaussian import GaussianDiffusion, gaussian_noise_like

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RePaintSettings:
    """Sampler settings; ``steps`` respaces the trained process (None: all trained steps)."""

    jump_length: int = 10
    jump_n_sample: int = 10
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.jump_length < 1 or self.jump_n_sample < 1:
            raise ValueError("jump_length and jump_n_sample must be >= 1")


def jump_schedule(num_states: int, jump_length: int, jump_n_sample: int) -> list[tuple[int, int]]:
    """The sequence of state transitions (from, to) of RePaint with resampling.

    States run from ``num_states`` (pure noise, x_T) to 0 (data). A transition (n, n-1) is one
    reverse step (one network evaluation); (n, n+j) is a jump forward by re-noising. After arriving
    at a state n that is a multiple of ``jump_length`` with n + jump_length < num_states, the
    sampler jumps up by ``jump_length`` and walks back down, ``jump_n_sample - 1`` times. The
    number of reverse steps is therefore t_T + (r - 1) j ceil((t_T - j) / j).
    """
    if num_states < 1:
        raise ValueError("need at least one state")
    schedule: list[tuple[int, int]] = []
    n = num_states
    while n > 0:
        schedule.append((n, n - 1))
        n -= 1
        if n % jump_length == 0 and n + jump_length < num_states:
            for _ in range(jump_n_sample - 1):
                schedule.append((n, n + jump_length))
                schedule.extend((m, m - 1) for m in range(n + jump_length, n, -1))
    return schedule


def expected_nfe(num_states: int, jump_length: int, jump_n_sample: int) -> int:
    """Network evaluations of ``jump_schedule``: t_T + (r - 1) j ceil((t_T - j) / j)."""
    jumps = max(0, math.ceil((num_states - jump_length) / jump_length))
    return num_states + (jump_n_sample - 1) * jump_length * jumps


def autocast_for(device: torch.device) -> torch.autocast | nullcontext:
    """bf16 autocast on GPUs that support it, fp16 on older GPUs, fp32 (no autocast) on CPU."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def make_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per tile, seeded from the tile's seed."""
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed) & (2**63 - 1))
        gens.append(g)
    return gens


@dataclass
class RePaintResult:
    images: torch.Tensor
    nfe: int


def batch_invariant_model(model: Model) -> Model:
    """Evaluate ``model`` one sample at a time, so a sample's output is bit-identical whatever its batch.

    Batched CPU convolutions pick kernels by batch size and differ in the last float bits; on the
    CPU this costs ~1.4x in throughput for the tiny network.
    """
    def per_sample(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(x.shape[0])])

    return per_sample


@torch.no_grad()
def repaint(model: Model, diffusion: GaussianDiffusion, known: torch.Tensor, mask: torch.Tensor,
            generators: Sequence[torch.Generator], settings: RePaintSettings = RePaintSettings(),
            progress: bool = False, description: str = "repaint",
            batch_invariant: bool | None = None) -> RePaintResult:
    """Inpaint a batch of tiles.

    ``known``: (B, C, H, W) tiles normalised to [-1, 1]; ``mask``: (B, 1 or C, H, W) bool, True where
    pixels are *unknown* (to be generated). Sample i draws all its noise from ``generators[i]``, so
    its result does not depend on the other tiles of the batch; ``batch_invariant`` (default: on
    the CPU only) also makes the network evaluation bit-identical across batch sizes. Returns the tiles with known
    pixels equal to ``known`` exactly, and the number of network evaluations per tile.
    """
    if known.ndim != 4 or mask.ndim != 4 or mask.shape[0] != known.shape[0] or mask.shape[-2:] != known.shape[-2:]:
        raise ValueError(f"known {tuple(known.shape)} and mask {tuple(mask.shape)} must be (B, C, H, W) alike")
    if settings.steps is not None:
        diffusion = diffusion.respaced_to(settings.steps)
    device = known.device
    if batch_invariant if batch_invariant is not None else device.type == "cpu":
        model = batch_invariant_model(model)
    unknown = mask.to(device=device, dtype=torch.bool).expand_as(known)
    schedule = jump_schedule(diffusion.num_timesteps, settings.jump_length, settings.jump_n_sample)
    batch = known.shape[0]
    x = gaussian_noise_like(known, generators)
    nfe = 0
    with autocast_for(device):
        for n_from, n_to in tqdm(schedule, desc=description, disable=not progress, unit="step", leave=False):
            if n_to > n_from:  # jump forward: x_{n_to} ~ q(x_{n_to} | x_{n_from})
                x = diffusion.q_renoise(x, n_from, n_to, gaussian_noise_like(x, generators))
                continue
            t = torch.full((batch,), diffusion.step_index(n_from), device=device, dtype=torch.long)
            # Known part at state n_from: the original passed through the forward process (eq. 8, top).
            known_t = diffusion.q_sample_state(known, n_from, gaussian_noise_like(known, generators))
            x = torch.where(unknown, x, known_t)
            out = diffusion.model_forward(model, x, t)
            nfe += 1
            x = diffusion.p_sample_step(out, x, t, gaussian_noise_like(x, generators)).float()
    x = torch.where(unknown, x.clamp(-1.0, 1.0), known)
    return RePaintResult(images=x, nfe=nfe)
