"""Pictures of a training run as it goes: the loss curve from ``log.tsv`` and a sheet of EMA samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.sampling import SamplerSettings, make_generators, sample
from ..io.atomic import atomic_path


@dataclass(frozen=True)
class SheetSettings:
    """Samples drawn at each checkpoint: ``count`` tiles (0: none), seeds ``seed`` + i, ``steps`` respaced steps."""

    count: int = 16
    steps: int = 32
    seed: int = 0


def read_log(log_tsv: Path) -> dict[str, np.ndarray]:
    """The columns of a training ``log.tsv`` as arrays (empty arrays when it has no rows yet)."""
    lines = log_tsv.read_text().splitlines()
    names = lines[0].split("\t")
    rows = np.array([[float(v) for v in line.split("\t")] for line in lines[1:] if line], dtype=float)
    rows = rows.reshape(-1, len(names))
    return {n: rows[:, i] for i, n in enumerate(names)}


def smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean over ``window`` points (shorter at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    n = np.minimum(np.arange(1, len(values) + 1), window)
    return (c[1:] - c[np.arange(1, len(values) + 1) - n]) / n


def loss_curve(log_tsv: Path, png: Path, title: str = "") -> None:
    """Plot loss, its MSE and variational-bound terms against the step (log scale), raw and smoothed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_log(log_tsv)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, colour in (("loss", "k"), ("mse", "tab:blue"), ("vb", "tab:orange")):
        if len(log.get(name, ())):
            ax.plot(log["step"], log[name], color=colour, alpha=0.25, lw=0.8)
            ax.plot(log["step"], smoothed(log[name], 20), color=colour, lw=1.6, label=f"{name} (mean of 20 logs)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title or "training loss", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


@torch.no_grad()
def draw_samples(network: nn.Module, diffusion: GaussianDiffusion, tile: int, sheet: SheetSettings,
                 device: torch.device) -> np.ndarray:
    """``sheet.count`` unconditional samples of ``network`` in [-1, 1], (N, H, W), seeds ``sheet.seed`` + i.

    ``sheet.steps`` respaced steps, at most the process's own.
    """
    steps = min(sheet.steps, diffusion.num_timesteps)
    known = torch.zeros(sheet.count, 1, tile, tile, device=device)
    unknown = torch.ones_like(known, dtype=torch.bool)
    generators = make_generators(range(sheet.seed, sheet.seed + sheet.count))
    res = sample(network.eval(), diffusion, known, unknown, generators,
                 SamplerSettings(jump_length=1, jump_n_sample=1, steps=steps), batch_invariant=False)
    return res.images[:, 0].float().cpu().numpy()


def sample_sheet(images: np.ndarray, png: Path, title: str = "", per_row: int = 8) -> None:
    """A grid of samples (values in [-1, 1]) shown as grey levels, one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, h, w = images.shape
    rows = -(-n // per_row)
    grid = np.ones((rows * (h + 2), per_row * (w + 2)))
    for i, img in enumerate(images):
        r, c = divmod(i, per_row)
        grid[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = img
    fig, ax = plt.subplots(figsize=(per_row * 1.1, rows * 1.1 + 0.4))
    ax.imshow(grid, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
