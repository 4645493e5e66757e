"""``cytopaint bench``: what one tile costs per sampler setting, side by side on one device.

GPU-seconds per repaired mm² = (sampled tile windows per repaired mm²) x NFE x (seconds per NFE
per tile). This measures the last two factors: for a network (a named U-Net config with random
weights, or a packaged model) and a batch of tiles with a hole, each sampler setting runs the real
sampler loop (`cytopaint.diffusion.sampling`), every tile with its own seed, and the bench reports
its network evaluations per tile (counted by the sampler), milliseconds per evaluation per tile,
seconds per tile, tiles per second, the achieved TFLOP/s (forward FLOPs counted once by
``torch.utils.flop_counter``), peak GPU and CPU memory, and its speed-up over the reference
setting (the first one). Each execution of the network (`cytopaint.diffusion.execution`: eager,
channels-last, compiled) runs every setting, after one warm-up evaluation (compilation, kernel
selection) that is reported apart; channels-last on a copy of the network. ``timed_nfe`` stops
each run after that many evaluations and extrapolates its seconds per tile from them (said so in
the ``timing`` column): the paper's setting on a 1024 px network takes minutes per batch. The
batch is evaluated at once, as on a GPU; the workflow's CPU jobs evaluate tiles one at a time
(for bit-identical tiles), about 1.4x slower.
"""

from __future__ import annotations

import copy
import json
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from cytopaint.diffusion.execution import Execution
from cytopaint.diffusion.gaussian import DiffusionConfig, GaussianDiffusion
from cytopaint.diffusion.sampling import Model, SamplerSettings, forward_once, make_generators, sample
from cytopaint.diffusion.unet import UNet, UNetConfig
from cytopaint.io.atomic import atomic_path, write_text
from cytopaint.models import package as modelpkg
from cytopaint.models.training import architecture
from cytopaint.runtime import code_version, device_record

#: The paper's sampler (Kropp et al.: 256 steps, each repeated 5 times, 1,276 NFE) and the demo config's.
DEFAULT_SETTINGS = {"reference 256/j1/r5": SamplerSettings(1, 5, None), "default 50/j5/r2": SamplerSettings(5, 2, 50)}


@dataclass(frozen=True)
class BenchRow:
    """One sampler setting's figures."""

    setting: str
    execution: str  # the network's memory format and compilation (`Execution.label`)
    height: int  # the tiles' shape (the planner's small and oblong windows are sampled at their own)
    width: int
    method: str
    steps: int
    jump_length: int
    jump_n_sample: int
    nfe_per_tile: int
    batch: int
    timing: str
    warmup_s: float  # the execution's first evaluation of the batch (compilation, kernel choice), not timed
    ms_per_nfe_per_tile: float
    s_per_tile: float
    tiles_per_s: float
    tflops: float
    peak_gpu_mib: float | None
    peak_cpu_mib: float
    speedup_vs_reference: float


class _Enough(Exception):
    """Raised by the timed network once it has been called often enough."""


class _TimedNetwork:
    """The network, counting and timing its evaluations (synchronised on a GPU)."""

    def __init__(self, network: Model, device: torch.device, limit: int | None) -> None:
        self.network, self.device, self.limit = network, device, limit
        self.calls, self.seconds = 0, 0.0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.limit is not None and self.calls >= self.limit:
            raise _Enough
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = self.network(x, t)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def network_for(name_or_path: str, device: torch.device) -> tuple[torch.nn.Module, UNetConfig, GaussianDiffusion]:
    """A packaged model (``demo`` or a folder), or a named/JSON U-Net config with random weights."""
    if name_or_path == "demo" or Path(name_or_path, modelpkg.CARD_NAME).is_file():
        model = modelpkg.load(name_or_path, device=device)
        return model.network, model.network.config, model.diffusion()
    cfg = architecture(name_or_path)
    torch.manual_seed(0)
    return UNet(cfg).to(device).eval(), cfg, DiffusionConfig().build()


def forward_flops(network: torch.nn.Module, cfg: UNetConfig, device: torch.device, shape: tuple[int, int]) -> int:
    """FLOPs of one forward pass for one tile of ``shape``."""
    x = torch.zeros(1, cfg.in_channels, *shape, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(x, torch.zeros(1, dtype=torch.long, device=device))
    return int(counter.get_total_flops())


def tiles_with_hole(cfg: UNetConfig, batch: int, device: torch.device,
                    shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Known tiles (noise-like texture in [-1, 1]) and masks with a central hole of a quarter of the tile."""
    rng = np.random.default_rng(0)
    h, w = shape
    known = torch.from_numpy(rng.uniform(-1, 1, (batch, cfg.in_channels, h, w)).astype(np.float32))
    mask = torch.zeros(batch, 1, h, w, dtype=torch.bool)
    mask[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    return known.to(device), mask.to(device)


def parse_shape(text: str) -> tuple[int, int]:
    """``HxW`` (or a single side for a square) as (height, width)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ValueError(f"tile shape {text!r}: expected HxW, e.g. 256x1024, or one side")
    return (int(parts[0]), int(parts[-1]))


def bench(name_or_path: str, settings: dict[str, SamplerSettings], *, batch: int, device: torch.device,
          timed_nfe: int | None = None, shapes: list[tuple[int, int]] | None = None,
          executions: list[Execution] | None = None) -> tuple[list[BenchRow], dict[str, Any]]:
    """Run every sampler setting on one batch per tile shape (default: the network's tile) and per
    execution (default: eager); returns the rows (speed-ups against the first execution and setting at
    the same shape) and the run's context (device, versions)."""
    network, cfg, diffusion = network_for(name_or_path, device)
    shapes = shapes or [(cfg.image_size, cfg.image_size)]
    bad = [s for s in shapes if s[0] not in cfg.sides() or s[1] not in cfg.sides()]
    if bad:
        raise ValueError(f"tile shapes {bad}: height and width must each be one of {cfg.sides()}")
    # channels-last converts a network's weights in place: that execution gets a copy of its own
    runners = [(e, e.prepare(copy.deepcopy(network) if e.channels_last else network))
               for e in executions or [Execution()]]
    rows: list[BenchRow] = []
    flops: dict[tuple[int, int], int] = {}
    for shape in shapes:
        flops[shape] = forward_flops(network, cfg, device, shape)
        known, mask = tiles_with_hole(cfg, batch, device, shape)
        at_shape: list[BenchRow] = []
        for execution, runner in runners:
            at_shape += _bench_execution(runner, execution.label, diffusion, settings, known, mask, flops[shape],
                                         device, timed_nfe, at_shape[0].s_per_tile if at_shape else None)
        rows += at_shape
    context = {"network": name_or_path, "unet": cfg.to_dict(),
               "forward_gflops_per_tile": flops[shapes[0]] / 1e9,
               "forward_gflops_per_shape": {f"{h}x{w}": f / 1e9 for (h, w), f in flops.items()},
               **device_record(device), "code": code_version()}
    return rows, context


def _warm_up(runner: Model, known: torch.Tensor, device: torch.device) -> float:
    """Seconds of one evaluation of the batch, as the sampler makes it (compiles a compiled network)."""
    start = time.perf_counter()
    forward_once(runner, known)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _bench_execution(runner: Model, execution: str, diffusion: GaussianDiffusion,
                     settings: dict[str, SamplerSettings], known: torch.Tensor, mask: torch.Tensor, flops: int,
                     device: torch.device, timed_nfe: int | None, reference_s: float | None) -> list[BenchRow]:
    """The rows of every setting on one batch of tiles, the network run as ``execution``; speed-ups against
    ``reference_s`` seconds per tile (None: the first setting's)."""
    batch, (height, width) = known.shape[0], known.shape[-2:]
    warmup_s = _warm_up(runner, known, device)
    rows: list[BenchRow] = []
    for name, setting in settings.items():
        process = diffusion.respaced_to(setting.steps) if setting.steps else diffusion
        nfe = setting.nfe(diffusion.num_timesteps)
        timed = _TimedNetwork(runner, device, timed_nfe)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            result = sample(timed, diffusion, known, mask, make_generators(range(batch), device), setting,
                             batch_invariant=False)
            if result.nfe != nfe or timed.calls != nfe:
                raise RuntimeError(f"{name}: the sampler made {result.nfe} evaluations, {nfe} expected")
            timing = "full run"
        except _Enough:
            timing = f"first {timed.calls} of {nfe} NFE, extrapolated"
        per_nfe_tile = timed.seconds / timed.calls / batch
        s_per_tile = per_nfe_tile * nfe
        reference_s = reference_s or s_per_tile
        rows.append(BenchRow(
            setting=name, execution=execution, height=height, width=width, method=setting.method,
            steps=process.num_timesteps, jump_length=setting.jump_length, jump_n_sample=setting.jump_n_sample,
            nfe_per_tile=nfe, batch=batch, timing=timing, warmup_s=warmup_s, ms_per_nfe_per_tile=1e3 * per_nfe_tile,
            s_per_tile=s_per_tile, tiles_per_s=1.0 / s_per_tile, tflops=flops / per_nfe_tile / 1e12,
            peak_gpu_mib=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            peak_cpu_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            speedup_vs_reference=reference_s / s_per_tile))
    return rows


def write_bench(rows: list[BenchRow], context: dict[str, Any], out_dir: Path) -> None:
    """``bench.json`` (context and rows) and ``bench.tsv`` (rows) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "bench.json", json.dumps({**context, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    with atomic_path(out_dir / "bench.tsv") as tmp:
        pd.DataFrame([asdict(r) for r in rows]).to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def format_table(rows: list[BenchRow], context: dict[str, Any]) -> str:
    """The rows as an aligned text table, with the device in the heading."""
    head = (f"{context['network']} on {context['device']} ({context['gpu'] or 'CPU'}), torch {context['torch']}, "
            f"{context['forward_gflops_per_tile']:.1f} GFLOP per forward per {context['unet']['image_size']} px "
            "tile")
    cols = ("setting", "execution", "shape", "method", "nfe", "batch", "warm-up s", "ms/nfe/tile", "s/tile", "tiles/s",
            "TFLOP/s", "peak GPU MiB", "peak CPU MiB", "speed-up", "timing")
    lines = [head, "  ".join(f"{c:>12}" for c in cols)]
    for r in rows:
        gpu = "-" if r.peak_gpu_mib is None else f"{r.peak_gpu_mib:.0f}"
        vals = (r.setting, r.execution, f"{r.height}x{r.width}", r.method, r.nfe_per_tile, r.batch, f"{r.warmup_s:.3g}",
                f"{r.ms_per_nfe_per_tile:.3f}",
                f"{r.s_per_tile:.3g}", f"{r.tiles_per_s:.3g}", f"{r.tflops:.3g}", gpu, f"{r.peak_cpu_mib:.0f}",
                f"{r.speedup_vs_reference:.1f}x", r.timing)
        lines.append("  ".join(f"{v!s:>12}" for v in vals))
    return "\n".join(lines)


def parse_setting(text: str) -> tuple[str, SamplerSettings]:
    """``NAME=STEPS:J:R[,KEY=VALUE...]`` (`SamplerSettings.parse`)."""
    name, sep, spec = text.partition("=")
    if not sep or not name:
        raise ValueError(f"sampler setting {text!r}: expected NAME=STEPS:J:R[,KEY=VALUE...], e.g. fast=25:5:1")
    return name, SamplerSettings.parse(spec)
