"""The repaint job of one batch (rule ``repaint``): read each tile's context, run the sampler,
write the batch result file (`cytopaint.io.batchfile`)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from cytopaint.diffusion.execution import Execution
from cytopaint.diffusion.sampling import SamplerSettings
from cytopaint.io.batchfile import read_tiles_meeting, write_batch
from cytopaint.models import package as modelpkg
from cytopaint.models.normalization import normalization_for
from cytopaint.plan.ownership import Owners, window_box
from cytopaint.plan.section import Section
from cytopaint.runtime import JobClock, device_record

from .memory import Fit, fit_tiles_per_call
from .tiles import TileInputs, finish_tiles, prepare_tiles, sample_tiles


@dataclass(frozen=True)
class RepaintConfig(SamplerSettings):
    """The ``repaint`` block of the workflow config: the sampler settings, checked as they are made,
    and where and how the job runs."""

    device: str = "auto"
    gpu_batch: int | Literal["auto"] = 8
    normalization: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gpu_batch != "auto" and (isinstance(self.gpu_batch, bool) or not isinstance(self.gpu_batch, int)
                                         or self.gpu_batch < 1):
            raise ValueError(f"repaint.gpu_batch must be >= 1 or 'auto', got {self.gpu_batch!r}")

    @property
    def sampler(self) -> SamplerSettings:
        return SamplerSettings(**{f.name: getattr(self, f.name) for f in fields(SamplerSettings)})


def pick_device(device: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; anything else as torch names it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_batch(section: Section, plan: pd.DataFrame, batch: int, earlier_batch_files: list[Path], model_ref: str,
              config: RepaintConfig, out_path: Path, progress: bool = True,
              execution: Execution = Execution()) -> dict[str, Any]:
    """Repaint the tiles of one batch and write its result file.

    Parameters
    ----------
    section
        The planned section (`Section.planned`).
    plan
        Its plan table.
    batch
        The batch to repaint.
    earlier_batch_files
        The result files of the batches of earlier waves it takes context from
        (`cytopaint.plan.ownership.batch_dependencies`).
    model_ref, config
        The packaged model (or ``demo``) and the ``repaint`` block of the config.
    out_path
        The batch result file to write.
    execution
        How the network runs (the config's ``execution`` block: channels-last, compiled).

    Returns
    -------
    dict
        The batch metadata written with the result: model, sampler, NFE per tile, execution, device and
        job record.
    """
    clock = JobClock()
    tiles = plan[plan["batch"] == batch]
    if tiles.empty:
        raise ValueError(f"batch {batch} is not in the plan of section {section.id}")
    device = pick_device(config.device)
    model = modelpkg.load(model_ref, device=device).run_as(execution)
    norm = normalization_for(section.info.dtype, model.normalization, config.normalization)
    windows = [window_box(t) for t in tiles.itertuples(index=False)]
    earlier = [t for f in earlier_batch_files for t in read_tiles_meeting(f, windows)]  # only what gives context
    inputs = prepare_tiles(section, Owners(plan), tiles, earlier, model.sides, norm)
    sampling = JobClock()
    fit = tiles_per_call(config.gpu_batch, model, inputs, device)
    size = fit.tiles_per_call
    groups = range(0, len(inputs), size)  # sampler calls; each tile has its own seed
    parts = [sample_tiles(model, inputs[i:i + size], config.sampler, device, progress,
                          f"{section.id} batch {batch}" + (f" ({k + 1}/{len(groups)})" if len(groups) > 1 else ""))
             for k, i in enumerate(groups)]
    generated, nfe = [g for gs, _ in parts for g in gs], parts[0][1]
    sample_seconds = sampling.seconds()
    job = clock.record()
    meta = {
        "section": section.id, "batch": int(batch), "wave": int(inputs[0].tile.wave),
        "model": {"path": os.fspath(model.path), "name": model.card["name"], "sha256": model.weights_sha256},
        "sampler": asdict(config.sampler), "nfe_per_tile": nfe, "execution": asdict(execution),
        "gpu_batch": {"setting": config.gpu_batch, **fit.as_dict()},
        **device_record(device),
        **{k: v for k, v in job.items() if k != "seconds"},
        "sample_seconds": round(sample_seconds, 3), "wall_seconds": job["seconds"],
        "earlier_batches": [os.fspath(f) for f in earlier_batch_files],
    }
    write_batch(out_path, finish_tiles(inputs, generated, norm, nfe), meta)
    return meta


def tiles_per_call(gpu_batch: int | Literal["auto"], model: modelpkg.PackagedModel, inputs: list[TileInputs],
                   device: torch.device) -> Fit:
    """The job's sampler call size: ``gpu_batch`` tiles, or with ``auto`` as many as the free GPU memory holds
    at the job's largest tile shape (`cytopaint.repaint.memory`; probed on the eager network)."""
    if gpu_batch != "auto":
        return Fit(min(gpu_batch, len(inputs)))
    shape = max((t.known.shape[-2:] for t in inputs), key=lambda hw: hw[0] * hw[1])
    return fit_tiles_per_call(model.network, shape, model.network.config.in_channels, device, len(inputs))
