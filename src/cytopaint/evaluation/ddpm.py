"""Repairing evaluation patches with the workflow's own planning, repaint and blending code.

Each patch becomes a small OME-Zarr section with its hole as ``labels/artifacts``; it is planned
(`cytopaint.plan.stage.plan_section`), its tiles are repainted wave by wave
(`cytopaint.repaint.tiles`: `prepare_tiles`, `sample_tiles`, `finish_tiles`) and blended
(`cytopaint.blend.stage.blend_section`). The only difference from the
workflow is that the tiles of one wave of all patches share sampler calls of ``batch_size`` tiles;
each tile still draws its noise from its own seed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cytopaint.blend.stage import LABEL, blend_section
from cytopaint.diffusion.execution import Execution
from cytopaint.io import volume, writer
from cytopaint.io.batchfile import TileResult, write_batch
from cytopaint.models import package as modelpkg
from cytopaint.models.normalization import normalization_for
from cytopaint.plan.ownership import Owners, batch_dependencies
from cytopaint.plan.section import Section
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.repaint.stage import RepaintConfig, pick_device
from cytopaint.repaint.tiles import TileInputs, finish_tiles, prepare_tiles, sample_tiles


@dataclass(frozen=True)
class Repaired:
    """One repaired patch: its pixels, the pixels the workflow repaired, and what it cost."""

    image: np.ndarray
    region: np.ndarray  # labels/repaired: the dilated hole, less tiles short of context
    tiles: int
    unrepaired_px: int  # hole pixels left as they were (tiles short of context)


@dataclass
class _Patch:
    section: Section  # planned and in memory: tile windows are sliced from it
    plan: pd.DataFrame
    owners: Owners
    deps: dict[int, list[int]]  # batch -> earlier batches it needs
    batch_dir: Path


def _write_patches(images: Sequence[np.ndarray], holes: Sequence[np.ndarray], pixel_size_um: float,
                   work: Path, names: Sequence[str]) -> list[Section]:
    sections = []
    for name, image, hole in zip(names, images, holes, strict=True):
        path = work / "patches" / f"{name}.ome.zarr"
        writer.write_section(path, image, pixel_size_um=pixel_size_um, n_levels=1,
                             labels={"artifacts": hole.astype(np.uint8)}, chunks=image.shape)
        sections.append(Section(name, os.fspath(path), f"{path}#labels/artifacts"))
    return sections


def repair_patches(images: Sequence[np.ndarray], holes: Sequence[np.ndarray], pixel_size_um: float,
                   model_ref: str, tiling: TilingConfig, repaint: RepaintConfig, work: Path,
                   batch_size: int = 64, progress: bool = True,
                   execution: Execution = Execution(),
                   names: Sequence[str] | None = None) -> tuple[list[Repaired], dict[str, float]]:
    """Repair ``images`` (uint8) inside ``holes`` (bool) with the DDPM; ``work`` (emptied first) holds the stores and batches.

    Each patch is a section named ``names[i]`` (default ``p0000``, ``p0001``, ...), which its tile seeds hash.

    Returns the repaired patches and timings (seconds: planning, sampling, the rest of repainting,
    blending; sampled tiles; network evaluations per tile).
    """
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)  # scratch of an earlier run
    device = pick_device(repaint.device)
    model = modelpkg.load(model_ref, device=device).run_as(execution)
    t0 = time.perf_counter()
    patches = []
    names = list(names) if names is not None else [f"p{i:04d}" for i in range(len(images))]
    for section in _write_patches(images, holes, pixel_size_um, work, names):
        plan_dir = work / "plans" / section.id
        plan_section(section, model_ref, tiling, repaint.normalization, plan_dir)
        plan, summary = read_plan_dir(plan_dir)
        owners = Owners(plan)
        p = _Patch(section.planned(summary).in_memory(), plan, owners, batch_dependencies(plan, owners),
                   work / "batches" / section.id)
        p.batch_dir.mkdir(parents=True, exist_ok=True)
        patches.append(p)
    norm = normalization_for(np.dtype(np.uint8), model.normalization, repaint.normalization)
    t_plan = time.perf_counter()
    n_waves = max((int(p.plan["wave"].max()) + 1 for p in patches if len(p.plan)), default=0)
    total = sum(int((p.plan["wave"] >= 0).sum()) for p in patches)
    sampling, nfe = 0.0, 0
    done: dict[tuple[str, int], list[TileResult]] = {}  # finished batches, for the context of later waves
    bar = tqdm(total=total, desc="DDPM tiles", unit="tile", disable=not progress)
    for wave in range(n_waves):
        groups: list[tuple[_Patch, int, list[TileInputs]]] = []
        for p in patches:
            sched = p.plan[p.plan["wave"] == wave]
            for b in sorted(int(v) for v in sched["batch"].unique()):
                earlier = [t for d in p.deps.get(b, []) for t in done[p.section.id, d]]
                groups.append((p, b, prepare_tiles(p.section, p.owners, sched[sched["batch"] == b], earlier,
                                                   model.sides, norm)))
        flat = [t for _, _, ts in groups for t in ts]
        generated: list[np.ndarray] = []
        for i in range(0, len(flat), batch_size):
            ts = time.perf_counter()
            g, nfe = sample_tiles(model, flat[i:i + batch_size], repaint.sampler, device, progress=False)
            sampling += time.perf_counter() - ts
            generated.extend(g)
            bar.update(len(g))
        k = 0
        for p, b, ts in groups:
            meta = {"section": p.section.id, "batch": b, "wave": wave, "model": {"sha256": model.weights_sha256},
                    "sampler": asdict(repaint.sampler), "nfe_per_tile": nfe}
            done[p.section.id, b] = finish_tiles(ts, generated[k:k + len(ts)], norm, nfe)
            write_batch(p.batch_dir / f"batch_{b}.npz", done[p.section.id, b], meta)
            k += len(ts)
    bar.close()
    t_repaint = time.perf_counter()
    out = []
    for p, hole in zip(patches, holes, strict=True):
        dst = work / "repaired" / f"{p.section.id}.ome.zarr"
        blend_section(p.section.image, None, sorted(p.batch_dir.glob("batch_*.npz")), dst, workers=1)
        region = np.asarray(volume.open_level(f"{dst}#labels/{LABEL}", 0)) > 0
        out.append(Repaired(np.asarray(volume.open_level(dst, 0)), region, int((p.plan["wave"] >= 0).sum()),
                            int((hole & ~region).sum())))
    t_blend = time.perf_counter()
    timings = {"plan_s": t_plan - t0, "sample_s": sampling, "repaint_other_s": t_repaint - t_plan - sampling,
               "blend_s": t_blend - t_repaint, "tiles": total, "nfe_per_tile": nfe}
    return out, timings
