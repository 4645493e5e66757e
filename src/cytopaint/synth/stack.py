"""Writing synthetic sections as OME-Zarr stacks, window by window (``cytopaint synth``).

Per section ``ID`` under the output folder:

- ``ID.ome.zarr``: the damaged image with ``labels/artifacts`` (0 none, 1 tear, 2 missing, 3 fold, 4 crystal);
- ``truth/ID.ome.zarr``: the intact image with ``labels/layer`` and ``labels/area``;
- ``truth/ID.cells.tsv``: ground-truth somata (centroid in section px and µm, area in µm², type, layer);

plus ``sections.tsv`` (the workflow's sections table) listing every section written.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..io import pyramid, writer
from ..io.sections import check_section_id
from . import SectionSpec, iter_windows


def pyramid_levels(shape: tuple[int, int], smallest: int = 64) -> int:
    """Levels halving the plane until its shorter side would drop below ``smallest`` px."""
    levels, side = 1, min(shape)
    while side // 2 >= smallest:
        side //= 2
        levels += 1
    return levels


def write_synthetic_section(spec: SectionSpec, section: str, out_dir: Path, *, chunks: int = 512,
                            window: int = 2048, ngff: str = "0.5", progress: bool = False) -> dict[str, str]:
    """Render ``spec`` window by window into the image, truth and label stores; returns their paths."""
    check_section_id(section)
    window = max(chunks, window // chunks * chunks)  # whole chunks per write: one writer per chunk
    image = out_dir / f"{section}.ome.zarr"
    truth = out_dir / "truth" / f"{section}.ome.zarr"
    truth.parent.mkdir(parents=True, exist_ok=True)
    levels = pyramid_levels(spec.shape)
    for path in (image, truth):
        writer.create_image(path, spec.shape, pixel_size_um=spec.pixel_size_um, n_levels=levels,
                            chunks=(chunks, chunks), ngff=ngff)
    writer.create_label(image, "artifacts")
    writer.create_label(truth, "layer")
    writer.create_label(truth, "area")
    cells = []
    n_windows = -(-spec.shape[0] // window) * -(-spec.shape[1] // window)
    for y0, x0, win in tqdm(iter_windows(spec, window), total=n_windows, desc=section, disable=not progress):
        writer.write_region(image, win["image"], y0, x0)
        writer.write_region(image, win["artifact"], y0, x0, label="artifacts")
        writer.write_region(truth, win["intact"], y0, x0)
        writer.write_region(truth, win["layer"], y0, x0, label="layer")
        writer.write_region(truth, win["area"], y0, x0, label="area")
        cells.append(win["cells"].assign(y=win["cells"]["y"] + y0, x=win["cells"]["x"] + x0))  # section px
    for path, labels in ((image, ["artifacts"]), (truth, ["layer", "area"])):
        pyramid.rebuild_pyramid(path)
        for name in labels:
            pyramid.rebuild_pyramid(path, label=name)
    cells_path = truth.with_suffix("").with_suffix(".cells.tsv")
    pd.concat(cells, ignore_index=True).to_csv(cells_path, sep="\t", index=False)
    return {"image": os.fspath(image), "mask": f"{image}#labels/artifacts", "truth": os.fspath(truth),
            "cells": os.fspath(cells_path)}


def _write_one(spec: SectionSpec, section: str, out_dir: Path, chunks: int, ngff: str,
               progress: bool = False) -> dict[str, str]:
    return write_synthetic_section(spec, section, out_dir, chunks=chunks, ngff=ngff, progress=progress)


def write_synthetic_stack(out_dir: Path, sections: Sequence[str], *, shape: tuple[int, int], pixel_size_um: float,
                          seed: int, damaged_fraction: float = 0.05, chunks: int = 512, ngff: str = "0.5",
                          progress: bool = True, workers: int = 1) -> Path:
    """Write several sections (seeds ``seed * 1000 + i``) and their ``sections.tsv``; returns the table's path.

    ``workers`` > 1 renders that many sections at once in separate processes (same result).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [SectionSpec(seed=seed * 1000 + i, shape=shape, pixel_size_um=pixel_size_um,
                         damaged_fraction=damaged_fraction, anchor=("crown", "sulcus")[i % 2])
             for i in range(len(sections))]
    args = (specs, sections, [out_dir] * len(specs), [chunks] * len(specs), [ngff] * len(specs))
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            written = list(tqdm(pool.map(_write_one, *args), total=len(specs), desc="sections", disable=not progress))
    else:
        written = [_write_one(*a, progress=progress) for a in zip(*args, strict=True)]
    rows = [{"section": section, "image": Path(paths["image"]).name, "mask": Path(paths["image"]).name + "#labels/artifacts"}
            for section, paths in zip(sections, written, strict=True)]
    table = out_dir / "sections.tsv"
    tmp = table.with_suffix(".tmp")
    pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    tmp.replace(table)
    return table



