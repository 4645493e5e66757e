"""Known-region samplers for inpainting with an unconditional DDPM, behind one interface (`sample`).

All three walk the same schedule of states (x_T noise .. x_0 data, numbered as in
`cytopaint.diffusion.gaussian`, whose methods hold all the maths) and differ in how one reverse
step n -> n-1 respects the known pixels:

- ``repaint``: RePaint (Lugmayr et al. 2022, Algorithm 1). The known part of x_n is replaced by
  the original forward-noised to state n (eq. 8), then one learned-variance reverse step.
- ``ddnm``: DDNM (Wang et al. 2022, "Zero-Shot Image Restoration Using Denoising Diffusion
  Null-Space Model", Algorithm 1). The network's x0 estimate gets the known pixels (the
  range-null-space correction A^+ y + (I - A^+ A) x0|t, which for a mask A is a paste), and x_{n-1}
  is drawn from the posterior q(x_{n-1} | x_n, corrected x0) with the model's variance.
- ``diffpir``: DiffPIR (Zhu et al. 2023, Algorithm 1) for noise-free measurements: the data
  step's closed form (sigma_n = 0) is the same paste, then the DDIM-like step that ends its
  Algorithm 1, with stochasticity ``zeta``.

Resampling is shared: every ``jump_length`` states the walk jumps back up by re-noising
(RePaint's resampling, section 4.2; DDNM's "time-travel") and walks down again,
``jump_n_sample - 1`` times, only in the last ``resample_start`` fraction of the trajectory (a
late start of resampling). After the last step the known pixels are pasted back exactly.
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
METHODS = ("repaint", "ddnm", "diffpir")


@dataclass(frozen=True)
class SamplerSettings:
    """Sampler settings; ``steps`` respaces the trained process (None: all trained steps).

    ``resample_start``: resampling only in stretches of states at or below this fraction of the
    trajectory (1: everywhere). ``zeta``: DiffPIR's noise share (the other methods ignore it).
    """

    jump_length: int = 10
    jump_n_sample: int = 10
    steps: int | None = None
    method: str = "repaint"
    resample_start: float = 1.0
    zeta: float = 1.0

    def __post_init__(self) -> None:
        if self.jump_length < 1 or self.jump_n_sample < 1:
            raise ValueError("jump_length and jump_n_sample must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 or None, got {self.steps}")
        if self.method not in METHODS:
            raise ValueError(f"unknown sampler method {self.method!r} (one of {list(METHODS)})")
        if not 0.0 < self.resample_start <= 1.0:
            raise ValueError(f"resample_start must be in (0, 1], got {self.resample_start}")
        if not 0.0 <= self.zeta <= 1.0:
            raise ValueError(f"zeta must be in [0, 1], got {self.zeta}")

    @classmethod
    def parse(cls, spec: str) -> SamplerSettings:
        """Settings from ``STEPS:J:R[,KEY=VALUE...]`` (STEPS ``all`` for every trained step), e.g.
        ``256:1:5`` (the paper's) or ``25:5:2,method=ddnm,resample_start=0.5``."""
        head, *extras = spec.split(",")
        parts = head.split(":")
        if len(parts) != 3:
            raise ValueError(f"sampler setting {spec!r}: expected STEPS:J:R[,KEY=VALUE...], e.g. 25:5:2,method=ddnm")
        steps, j, r = parts
        options: dict[str, str | float] = {}
        for extra in extras:
            key, sep, value = extra.partition("=")
            if not sep or key not in ("method", "resample_start", "zeta"):
                raise ValueError(f"sampler setting {spec!r}: {extra!r} is not method=, resample_start= or zeta=")
            options[key] = value if key == "method" else float(value)
        try:
            return cls(int(j), int(r), None if steps == "all" else int(steps), **options)  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(f"sampler setting {spec!r}: {err}") from None

    def nfe(self, trained_steps: int) -> int:
        """Network evaluations per tile on a process of ``trained_steps`` steps."""
        states = self.steps or trained_steps
        return expected_nfe(states, self.jump_length, self.jump_n_sample, self.resample_start)


def _resample_limit(num_states: int, resample_start: float) -> int:
    """The highest state a resampled stretch may reach (never the pure-noise state x_T)."""
    return min(num_states - 1, int(math.floor(resample_start * num_states + 1e-9)))


def jump_schedule(num_states: int, jump_length: int, jump_n_sample: int,
                  resample_start: float = 1.0) -> list[tuple[int, int]]:
    """The sequence of state transitions (from, to) of a sampler with resampling.

    States run from ``num_states`` (pure noise, x_T) to 0 (data). A transition (n, n-1) is one
    reverse step (one network evaluation); (n, n+j) is a jump forward by re-noising. After arriving
    at a state n that is a multiple of ``jump_length`` with n + jump_length at most the resampling
    limit L = min(T - 1, floor(resample_start T)), the sampler jumps up by ``jump_length`` and
    walks back down, ``jump_n_sample - 1`` times. The number of reverse steps is therefore
    T + (r - 1) j floor(L / j) (`expected_nfe`).
    """
    if num_states < 1:
        raise ValueError("need at least one state")
    limit = _resample_limit(num_states, resample_start)
    schedule: list[tuple[int, int]] = []
    n = num_states
    while n > 0:
        schedule.append((n, n - 1))
        n -= 1
        if n % jump_length == 0 and n + jump_length <= limit:
            for _ in range(jump_n_sample - 1):
                schedule.append((n, n + jump_length))
                schedule.extend((m, m - 1) for m in range(n + jump_length, n, -1))
    return schedule


def expected_nfe(num_states: int, jump_length: int, jump_n_sample: int, resample_start: float = 1.0) -> int:
    """Network evaluations of ``jump_schedule``: T + (r - 1) j floor(L / j)."""
    limit = _resample_limit(num_states, resample_start)
    return num_states + (jump_n_sample - 1) * jump_length * (limit // jump_length)


def autocast_for(device: torch.device) -> torch.autocast | nullcontext:
    """bf16 autocast on GPUs that support it, fp16 on older GPUs, fp32 (no autocast) on CPU."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def forward_once(model: Model, x: torch.Tensor) -> torch.Tensor:
    """One network evaluation of ``x`` at the last step, as the sampler makes it: no gradients, the device's
    autocast."""
    t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with torch.no_grad(), autocast_for(x.device):
        return model(x, t)


def make_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per tile, seeded from the tile's seed."""
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed) & (2**63 - 1))
        gens.append(g)
    return gens


def batch_invariant_model(model: Model) -> Model:
    """Evaluate ``model`` one sample at a time, so a sample's output is bit-identical whatever its batch.

    Batched CPU convolutions pick kernels by batch size and differ in the last float bits; on the
    CPU this costs ~1.4x in throughput for the tiny network.
    """
    def per_sample(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(x.shape[0])])

    return per_sample


@dataclass
class SampleResult:
    images: torch.Tensor
    nfe: int


def _repaint_step(model: Model, diffusion: GaussianDiffusion, x: torch.Tensor, n: int, known: torch.Tensor,
                  unknown: torch.Tensor, generators: Sequence[torch.Generator], settings: SamplerSettings) -> torch.Tensor:
    """RePaint: known part of x_n from the forward process (eq. 8, top), then a reverse step on all of it."""
    t = torch.full((x.shape[0],), diffusion.step_index(n), device=x.device, dtype=torch.long)
    known_n = diffusion.q_sample_state(known, n, gaussian_noise_like(known, generators))
    x = torch.where(unknown, x, known_n)
    out = diffusion.model_forward(model, x, t)
    return diffusion.p_sample_step(out, x, t, gaussian_noise_like(x, generators))


def _corrected_x0(model: Model, diffusion: GaussianDiffusion, x: torch.Tensor, n: int, known: torch.Tensor,
                  unknown: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The network's x0 estimate at state n with the known pixels pasted in (DDNM's range-null-space correction for a mask)."""
    t = torch.full((x.shape[0],), diffusion.step_index(n), device=x.device, dtype=torch.long)
    p = diffusion.p_mean_variance(diffusion.model_forward(model, x, t), x, t)
    return torch.where(unknown, p["pred_x0"], known), t, p


def _ddnm_step(model: Model, diffusion: GaussianDiffusion, x: torch.Tensor, n: int, known: torch.Tensor,
               unknown: torch.Tensor, generators: Sequence[torch.Generator], settings: SamplerSettings) -> torch.Tensor:
    """DDNM: x_{n-1} ~ q(x_{n-1} | x_n, corrected x0) with the model's variance."""
    x0, t, p = _corrected_x0(model, diffusion, x, n, known, unknown)
    return diffusion.posterior_sample(x0, x, t, p["log_variance"], gaussian_noise_like(x, generators))


def _diffpir_step(model: Model, diffusion: GaussianDiffusion, x: torch.Tensor, n: int, known: torch.Tensor,
                  unknown: torch.Tensor, generators: Sequence[torch.Generator], settings: SamplerSettings) -> torch.Tensor:
    """DiffPIR: the DDIM-like step (its Algorithm 1, last line) from the corrected x0."""
    x0, _, _ = _corrected_x0(model, diffusion, x, n, known, unknown)
    return diffusion.ddim_state_step(x0, x, n, n - 1, settings.zeta, gaussian_noise_like(x, generators))


_STEPS = {"repaint": _repaint_step, "ddnm": _ddnm_step, "diffpir": _diffpir_step}


@torch.no_grad()
def sample(model: Model, diffusion: GaussianDiffusion, known: torch.Tensor, mask: torch.Tensor,
           generators: Sequence[torch.Generator], settings: SamplerSettings = SamplerSettings(),
           progress: bool = False, description: str = "sample", batch_invariant: bool | None = None) -> SampleResult:
    """Inpaint a batch of tiles with ``settings.method``.

    ``known``: (B, C, H, W) tiles normalised to [-1, 1]; ``mask``: (B, 1 or C, H, W) bool, True where
    pixels are *unknown* (to be generated). Sample i draws all its noise from ``generators[i]``, so
    its result does not depend on the other tiles of the batch; ``batch_invariant`` (default: on
    the CPU only) also makes the network evaluation bit-identical across batch sizes. Returns the
    tiles with known pixels equal to ``known`` exactly, and the network evaluations per tile,
    counted as they are made.
    """
    if known.ndim != 4 or mask.ndim != 4 or mask.shape[0] != known.shape[0] or mask.shape[-2:] != known.shape[-2:]:
        raise ValueError(f"known {tuple(known.shape)} and mask {tuple(mask.shape)} must be (B, C, H, W) alike")
    if settings.steps is not None:
        diffusion = diffusion.respaced_to(settings.steps)
    device = known.device
    if batch_invariant if batch_invariant is not None else device.type == "cpu":
        model = batch_invariant_model(model)
    counted = 0

    def network(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal counted
        counted += 1
        return model(x, t)

    unknown = mask.to(device=device, dtype=torch.bool).expand_as(known)
    schedule = jump_schedule(diffusion.num_timesteps, settings.jump_length, settings.jump_n_sample,
                             settings.resample_start)
    step = _STEPS[settings.method]
    x = gaussian_noise_like(known, generators)
    with autocast_for(device):
        for n_from, n_to in tqdm(schedule, desc=description, disable=not progress, unit="step", leave=False):
            if n_to > n_from:  # jump forward: x_{n_to} ~ q(x_{n_to} | x_{n_from})
                x = diffusion.q_renoise(x, n_from, n_to, gaussian_noise_like(x, generators))
            else:
                x = step(network, diffusion, x, n_from, known, unknown, generators, settings).float()
    x = torch.where(unknown, x.clamp(-1.0, 1.0), known)
    return SampleResult(images=x, nfe=counted)
