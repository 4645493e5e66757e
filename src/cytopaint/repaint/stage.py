"""The repaint job of one batch (rule ``repaint``): read each tile's context, run the sampler,
write the batch result file (`cytopaint.io.batchfile`)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

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

from .tiles import finish_tiles, prepare_tiles, sample_tiles


@dataclass(frozen=True)
class RepaintConfig(SamplerSettings):
    """The ``repaint`` block of the workflow config: the sampler settings, checked as they are made,
    and where and how the job runs."""

    device: str = "auto"
    gpu_batch: int = 8
    normalization: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gpu_batch < 1:
            raise ValueError(f"repaint.gpu_batch must be >= 1, got {self.gpu_batch}")

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
    groups = range(0, len(inputs), config.gpu_batch)  # sampler calls; each tile has its own seed
    parts = [sample_tiles(model, inputs[i:i + config.gpu_batch], config.sampler, device, progress,
                          f"{section.id} batch {batch}" + (f" ({k + 1}/{len(groups)})" if len(groups) > 1 else ""))
             for k, i in enumerate(groups)]
    generated, nfe = [g for gs, _ in parts for g in gs], parts[0][1]
    sample_seconds = sampling.seconds()
    job = clock.record()
    meta = {
        "section": section.id, "batch": int(batch), "wave": int(inputs[0].tile.wave),
        "model": {"path": os.fspath(model.path), "name": model.card["name"], "sha256": model.weights_sha256},
        "sampler": asdict(config.sampler), "nfe_per_tile": nfe, "execution": asdict(execution),
        **device_record(device),
        **{k: v for k, v in job.items() if k != "seconds"},
        "sample_seconds": round(sample_seconds, 3), "wall_seconds": job["seconds"],
        "earlier_batches": [os.fspath(f) for f in earlier_batch_files],
    }
    write_batch(out_path, finish_tiles(inputs, generated, norm, nfe), meta)
    return meta
