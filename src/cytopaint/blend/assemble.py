"""A repaired 3-D stack from its repaired planes (rule ``assemble_stack``): ``results/stack/repaired.ome.zarr``.

When the sections are planes ``z`` of one 3-D ``zyx`` OME-Zarr stack, each is repaired into a 2-D
``repaired.ome.zarr`` of its own (`cytopaint.blend.stage`). `assemble_stack` puts them back
together: the output mirrors the input stack (dtype, scale, origin, chunks one plane deep, pyramid
depth, NGFF version); every level of a repaired plane is copied from that plane's repaired store
(whose pyramid was made the same way, plane by plane, so nothing is recomputed), every other plane
from the input stack, and ``labels/repaired`` holds the planes' own ``labels/repaired`` (zero on
the planes copied as they are). Chunks are one plane deep and each plane is written by this one
job, so every chunk has one writer. Memory is one band of chunk rows of one plane. The store is
built in ``<out>.partial/`` and renamed into place when complete; the input is only read.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zarr
from tqdm import tqdm

from cytopaint.io import volume, writer

from .stage import LABEL


def _copy_plane(src: zarr.Array, lead: tuple[int, ...], dst: zarr.Array, z: int, band: int) -> None:
    """Copy a 2-D plane (``src[lead]``) into plane ``z`` of ``dst``, ``band`` rows at a time."""
    ny = dst.shape[-2]
    for y0 in range(0, ny, band):
        y1 = min(y0 + band, ny)
        dst[z, y0:y1, :] = src[(*lead, slice(y0, y1), slice(None))]


def _levels(ref: str, mode: str = "r") -> list[zarr.Array]:
    """The level arrays of an image (or ``store#labels/NAME``), opened read-only (or in ``mode``)."""
    group = volume.open_group(ref, mode)
    info, _ = volume.read_multiscale(group, ref)
    return [group[p] for p in info.level_paths]


def assemble_stack(stack_ref: str, planes: Mapping[int, str], out_path: Path, *,
                   progress: bool = False) -> dict[str, Any]:
    """Write the repaired stack ``out_path`` from the input stack and the repaired planes ``{z: store}``.

    Raises ValueError, before anything is written, when the input is not a 3-D stack, a ``z`` is
    outside it, or a repaired plane's levels differ from the stack's planes in number, shape or dtype;
    FileExistsError when ``out_path`` exists.
    """
    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path}: already exists; remove it to assemble again")
    info = volume.read_info(stack_ref)
    if info.axes != "zyx":
        raise ValueError(f"{stack_ref}: not a 3-D (z, y, x) stack, its axes are {info.axes!r}")
    n_z = info.shape[0]
    for z, ref in sorted(planes.items()):
        if not 0 <= z < n_z:
            raise ValueError(f"{ref}: plane z={z} is outside the stack {stack_ref} (0..{n_z - 1})")
        plane = volume.read_info(ref)
        want = [shape[1:] for shape in info.level_shapes]
        if plane.axes != "yx" or list(plane.level_shapes) != want or plane.dtype != info.dtype:
            raise ValueError(f"{ref}: levels {list(plane.level_shapes)} of {plane.dtype} do not match plane {z} of "
                             f"{stack_ref} ({want} of {info.dtype})")
    staging = out_path.with_name(out_path.name + ".partial")
    store = staging / out_path.name
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted earlier attempt
    try:
        writer.create_like(info, store)
        writer.create_label(store, LABEL)
        out_levels = _levels(os.fspath(store), "r+")
        out_labels = _levels(volume.label_ref(os.fspath(store), LABEL), "r+")
        src_levels = _levels(stack_ref)
        for z in tqdm(range(n_z), desc="assemble stack", unit="plane", disable=not progress):
            repaired = planes.get(z)
            sources = _levels(repaired) if repaired else src_levels
            lead = () if repaired else (z,)
            for src, dst in zip(sources, out_levels, strict=True):
                _copy_plane(src, lead, dst, z, dst.chunks[-2])
            if repaired:
                for src, dst in zip(_levels(volume.label_ref(repaired, LABEL)), out_labels, strict=True):
                    _copy_plane(src, (), dst, z, dst.chunks[-2])
        os.replace(store, out_path)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"output": os.fspath(out_path), "input": stack_ref, "planes": n_z,
            "repaired_planes": {str(z): planes[z] for z in sorted(planes)},
            "copied_planes": [z for z in range(n_z) if z not in planes]}
