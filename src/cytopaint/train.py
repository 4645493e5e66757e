"""Training primitives: exponential moving average of weights and one optimisation step."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .diffusion.gaussian import GaussianDiffusion


class EMA:
    """Exponential moving average of a model's parameters: theta_ema <- d theta_ema + (1 - d) theta.

    The shadow is a full copy of the module (in eval mode), so it can be sampled from or saved.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = model.module if hasattr(model, "module") else model  # unwrap DistributedDataParallel
        for ema_p, p in zip(self.shadow.parameters(), src.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.shadow.buffers(), src.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow.load_state_dict(state)


@dataclass
class StepResult:
    loss: float
    mse: float
    vb: float
    grad_norm: float


def autocast_context(device: torch.device, precision: str) -> torch.autocast | nullcontext:
    """``fp32``: no autocast; ``bf16``/``fp16``: autocast on the device (bf16 also works on CPUs)."""
    if precision == "fp32":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)


def train_step(model: nn.Module, diffusion: GaussianDiffusion, x0: torch.Tensor, optimizer: torch.optim.Optimizer,
               ema: EMA | None = None, generator: torch.Generator | None = None, grad_clip: float | None = 1.0,
               precision: str = "fp32", scaler: torch.amp.GradScaler | None = None) -> StepResult:
    """One step of the hybrid objective on a batch ``x0`` in [-1, 1]: sample t and eps, backprop, clip, update, EMA."""
    model.train()
    device = x0.device
    t = diffusion.sample_timesteps(x0.shape[0], generator=generator, device=device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    with autocast_context(device, precision):
        terms = diffusion.training_losses(model, x0, t, noise)
    loss = terms["loss"].mean()
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else float("inf"))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if ema is not None:
        ema.update(model)
    vb = terms.get("vb")
    return StepResult(loss=float(loss.detach()), mse=float(terms["mse"].detach().mean()),
                      vb=float(vb.detach().mean()) if vb is not None else 0.0, grad_norm=float(grad_norm))
