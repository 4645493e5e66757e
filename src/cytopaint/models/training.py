"""DDPM training: EMA of weights, the hybrid-loss step, checkpoints, and the (distributed) training loop."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..diffusion.gaussian import DiffusionConfig, GaussianDiffusion
from ..diffusion.unet import PAPER_1024, TINY_64, UNet, UNetConfig
from ..io.sections import plane, read_sections
from ..runtime import code_version_string
from . import package as modelpkg
from .patches import PatchSampler, load_section
from .training_monitor import SheetSettings, draw_samples, loss_curve, sample_sheet


class EMA:
    """Exponential moving average of a model's parameters: theta_ema <- d theta_ema + (1 - d) theta.

    The shadow is a full copy of the module (in eval mode), so it can be sampled from or saved.
    With ``warmup`` the decay of update n is min(d, (1 + n) / (10 + n)), so that short runs are not
    dominated by the random initial weights (0.999^1000 still weighs them by 37%).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = model.module if hasattr(model, "module") else model  # unwrap DistributedDataParallel
        decay = self.current_decay()
        self.updates += 1
        for ema_p, p in zip(self.shadow.parameters(), src.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - decay)
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


# --------------------------------------------------------------------------- the training run


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines a training run besides the data."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    warmup: int = 100
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")


def learning_rate(step: int, settings: TrainSettings) -> float:
    """The learning rate of optimisation step ``step`` (1-based).

    A linear warm-up over ``warmup`` steps, then ``lr`` held ("constant") or annealed on a half
    cosine from ``lr`` at the end of warm-up to ``lr_min`` at the last step ("cosine").
    """
    if settings.lr_schedule == "constant" or step <= settings.warmup:
        return settings.lr * min(1.0, step / max(1, settings.warmup))
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr_min + (settings.lr - settings.lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class Dist:
    """Process-group facts: rank, world size and the device of this process."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the process group set up by ``torchrun`` (RANK/WORLD_SIZE) or ``srun`` (SLURM_PROCID/SLURM_NTASKS).

    NCCL on GPUs, gloo on CPUs. A single process needs nothing.
    """
    env = os.environ
    if int(env.get("WORLD_SIZE", "1")) > 1:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0"))
    elif int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        rank, world, local = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", "0"))
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
        env["RANK"], env["WORLD_SIZE"] = str(rank), str(world)
    else:
        return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = torch.cuda.is_available()
    # a task that sees one GPU (srun --gpus-per-task 1) uses it; one that sees the node's GPUs takes its local rank's
    device = torch.device(f"cuda:{local % torch.cuda.device_count()}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, world=world, device=device)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    return any(bool(getattr(torch.cpu, probe, lambda: False)())
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on GPUs that have it (fp16 on older ones) and on CPUs that compute it natively,
    where it trains 2-3x faster; fp32 on other CPUs, where emulated bf16 was 16x slower than fp32
    (an AVX2 CPU, tiny-64)."""
    if precision != "auto":
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"].setdefault(str(idx), {})[key] = value
    return tensors, scalars


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in scalars["state"].items()}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, rng: np.random.Generator, extra: dict[str, Any]) -> Path:
    """Write ``run_dir/checkpoint`` atomically: tensors as safetensors, the rest as JSON (no pickles)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
    opt_tensors, opt_scalars = _flatten_optimizer(optimizer.state_dict())
    tensors |= opt_tensors
    tensors["rng.torch"] = generator.get_state()
    meta = {"step": step, "ema_updates": ema.updates, "optimizer": opt_scalars, "numpy_rng": rng.bit_generator.state,
            **extra}
    tmp = run_dir / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    final = run_dir / "checkpoint"
    old = run_dir / "checkpoint.old"
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(run_dir: Path, model: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint written by ``save_checkpoint``; returns the step and the JSON metadata."""
    ck = run_dir / "checkpoint"
    tensors = load_file(str(ck / "state.safetensors"))
    meta = json.loads((ck / "state.json").read_text())
    _unwrap(model).load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    generator.set_state(tensors["rng.torch"])
    ema.updates = int(meta.get("ema_updates", meta["step"]))
    return int(meta["step"]), meta


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


LOG_COLUMNS = ("step", "loss", "mse", "vb", "grad_norm", "lr", "images_per_s")


def run_training(sampler: PatchSampler, network: nn.Module, diffusion: GaussianDiffusion, settings: TrainSettings,
                 run_dir: Path, resume: bool = False, dist_info: Dist | None = None,
                 progress: bool = True, command: str = "",
                 on_checkpoint: Callable[[int, EMA], None] | None = None) -> tuple[EMA, list[dict[str, float]]]:
    """Train ``network`` with the hybrid loss; checkpoints and ``log.tsv`` go to ``run_dir`` (rank 0).

    Each rank draws its own patches and noise (seeded by seed and rank); DDP averages gradients.
    Resuming restores weights, EMA, optimizer and random states, so the loss curve continues
    exactly where an uninterrupted run would be. Checkpoints keep the ``command`` of every session.
    ``on_checkpoint(step, ema)`` runs on rank 0 after each checkpoint (pictures of the run so far).
    """
    d = dist_info or Dist()
    run_dir.mkdir(parents=True, exist_ok=True)
    network.to(d.device)
    model: nn.Module = nn.parallel.DistributedDataParallel(network) if d.world > 1 else network
    ema = EMA(network, settings.ema_decay)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed * 1000 + d.rank)
    rng = np.random.default_rng([settings.seed, d.rank])
    precision = resolve_precision(settings.precision, d.device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and d.device.type == "cuda" else None
    start = 0
    commands = [command]
    log_path = run_dir / "log.tsv"
    if resume and (run_dir / "checkpoint").exists():
        start, meta = load_checkpoint(run_dir, model, ema, optimizer, generator)
        if start > settings.steps:
            raise ValueError(f"the checkpoint in {run_dir} is at step {start}, beyond --steps {settings.steps}")
        commands = meta.get("commands", []) + [command]
        rng.bit_generator.state = meta["numpy_rng"] if d.world == 1 else meta[f"numpy_rng.{d.rank}"]
        if d.world > 1:
            generator.set_state(torch.tensor(meta[f"torch_rng.{d.rank}"], dtype=torch.uint8))
        if d.main:
            _drop_log_rows_after(log_path, start)
    elif d.main:
        log_path.write_text("\t".join(LOG_COLUMNS) + "\n")
    history: list[dict[str, float]] = []

    def checkpoint(step: int) -> None:
        _checkpoint_all_ranks(run_dir, step, model, ema, optimizer, generator, rng, d, commands)
        if on_checkpoint and d.main:
            on_checkpoint(step, ema)

    bar = tqdm(total=settings.steps, initial=start, desc="train", unit="step", disable=not (progress and d.main))
    tick = time.perf_counter()
    for step in range(start + 1, settings.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        x0 = torch.from_numpy(sampler.sample(settings.batch_size, rng)).float().div(127.5).sub(1.0)[:, None]
        res = train_step(model, diffusion, x0.to(d.device), optimizer, ema, generator, settings.grad_clip,
                         precision, scaler)
        row = {"step": step, "loss": res.loss, "mse": res.mse, "vb": res.vb, "grad_norm": res.grad_norm,
               "lr": optimizer.param_groups[0]["lr"]}
        history.append(row)
        bar.update(1)
        if step % settings.log_every == 0 or step == settings.steps:
            now = time.perf_counter()
            row["images_per_s"] = settings.log_every * settings.batch_size * d.world / max(now - tick, 1e-9)
            tick = now
            bar.set_postfix(loss=f"{res.loss:.4f}")
            if d.main:
                with open(log_path, "a") as f:
                    f.write("\t".join(f"{row.get(c, float('nan')):.6g}" for c in LOG_COLUMNS) + "\n")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            checkpoint(step)
    if start == settings.steps and resume:  # nothing left to train: the checkpoint still records this command
        checkpoint(start)
    bar.close()
    return ema, history


def _drop_log_rows_after(log_path: Path, step: int) -> None:
    """Forget the rows a stopped run logged after its last checkpoint: the resumed run logs those steps again."""
    header, *rows = log_path.read_text().splitlines(keepends=True)
    log_path.write_text(header + "".join(r for r in rows if float(r.split("\t", 1)[0]) <= step))


def _checkpoint_all_ranks(run_dir: Path, step: int, model: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer,
                          generator: torch.Generator, rng: np.random.Generator, d: Dist, commands: list[str]) -> None:
    """Rank 0 writes the checkpoint, with every rank's random states gathered into it."""
    extra: dict[str, Any] = {"world_size": d.world, "commands": commands}
    if d.world > 1:
        states = [None] * d.world
        dist.all_gather_object(states, {"numpy": rng.bit_generator.state, "torch": generator.get_state().tolist()})
        for r, s in enumerate(states):
            extra[f"numpy_rng.{r}"] = s["numpy"]
            extra[f"torch_rng.{r}"] = s["torch"]
    if d.main:
        save_checkpoint(run_dir, step, model, ema, optimizer, generator, rng, extra)
    if d.world > 1:
        dist.barrier()


ARCHITECTURES = {"tiny-64": TINY_64, "paper-1024": PAPER_1024}


def architecture(name_or_path: str) -> UNetConfig:
    """A named configuration (``tiny-64``, ``paper-1024``) or a JSON file with a U-Net config dict."""
    if name_or_path in ARCHITECTURES:
        return ARCHITECTURES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown architecture {name_or_path!r}: use {sorted(ARCHITECTURES)} or a JSON config file")
    return UNetConfig.from_dict(json.loads(path.read_text()))


def initialise(network: UNet, package: str, diffusion: DiffusionConfig) -> dict[str, Any]:
    """Load a packaged model's weights into ``network``; returns what the new card records about them."""
    src = modelpkg.load(package)
    if src.network.config != network.config:
        raise modelpkg.ModelPackageError(f"--init {package}: its architecture {src.network.config.to_dict()} is not "
                                         f"the one being trained {network.config.to_dict()}")
    if src.diffusion_config.steps != diffusion.steps:
        raise modelpkg.ModelPackageError(f"--init {package}: trained with {src.diffusion_config.steps} diffusion "
                                         f"steps, not {diffusion.steps}")
    network.load_state_dict(src.network.state_dict())
    return {"name": src.card["name"], "sha256": src.weights_sha256, "steps": src.card["training"].get("steps"),
            "code_version": src.card["training"]["code_version"]}


def train_package(sections_tsv: str, out: Path, *, pixel_size_um: float, arch: UNetConfig, settings: TrainSettings,
                  diffusion: DiffusionConfig = DiffusionConfig(), run_dir: Path | None = None, resume: bool = False,
                  name: str | None = None, command: str = "", progress: bool = True,
                  weights_dtype: str = "float32", init: str | None = None,
                  sheet: SheetSettings = SheetSettings()) -> dict[str, Any] | None:
    """Train on the sections of a table and write a packaged model (rank 0); returns its card.

    ``init`` starts from a packaged model's weights (same architecture and diffusion steps) instead
    of random ones; a checkpoint being resumed takes precedence over it. At each checkpoint
    ``run_dir`` gets ``loss.png`` and, unless ``sheet.count`` is 0, ``samples.png`` (EMA samples).
    """
    d = init_distributed()
    try:
        table = read_sections(sections_tsv, base=Path(sections_tsv).resolve().parent)
        loaded = [load_section(row.section, row.image, row.mask, pixel_size_um, arch.image_size, plane(row.z))
                  for row in table.itertuples()]
        sampler = PatchSampler(loaded, arch.image_size)
        torch.manual_seed(settings.seed)
        network = UNet(arch)
        initialised_from = initialise(network, init, diffusion) if init else None
        run_dir = run_dir or out.with_name(out.name + ".run")
        start = time.perf_counter()
        process = diffusion.build()

        def pictures(step: int, ema: EMA) -> None:
            loss_curve(run_dir / "log.tsv", run_dir / "loss.png", f"{name or out.name}: training loss to step {step}")
            if sheet.count:
                images = draw_samples(ema.shadow, process, arch.image_size, sheet, d.device)
                sample_sheet(images, run_dir / "samples.png",
                             f"EMA samples at step {step} ({sheet.steps} steps, seeds {sheet.seed}-"
                             f"{sheet.seed + sheet.count - 1})")

        ema, _ = run_training(sampler, network, process, settings, run_dir, resume, d, progress, command, pictures)
        if not d.main:
            return None
        commands = json.loads((run_dir / "checkpoint" / "state.json").read_text())["commands"]
        log = np.loadtxt(run_dir / "log.tsv", skiprows=1, ndmin=2)
        training = {
            "command": commands[0], "resumed_by": commands[1:], "data": [str(p) for p in table["image"]],
            "seed": settings.seed,
            "code_version": code_version_string(), "steps": settings.steps, "batch_size": settings.batch_size,
            "world_size": d.world, "lr": settings.lr, "lr_schedule": settings.lr_schedule,
            "lr_min": settings.lr_min, "ema_decay": settings.ema_decay,
            "precision": resolve_precision(settings.precision, d.device), "device": str(d.device),
            "patch_origins": sampler.n_origins, "wall_seconds_last_session": round(time.perf_counter() - start, 1),
            "final_loss_logged": float(np.mean(log[-5:, 1])) if len(log) else None,
        }
        if initialised_from:
            training["initialised_from"] = initialised_from
        return modelpkg.save(out, ema.shadow, name=name or out.name, diffusion=diffusion, pixel_size_um=pixel_size_um,
                             training=training, description=f"DDPM trained by cytopaint train on {len(table)} sections",
                             weights_dtype=weights_dtype)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
