"""Planes of one 3-D stack in (written by ome-zarr's own writer), one repaired 3-D stack out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import blob_image
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from ome_zarr.writer import write_image, write_labels
from ome_zarr_models import open_ome_zarr
from test_workflow import snakemake, write_stack

from cytopaint.blend.assemble import assemble_stack
from cytopaint.io import volume


def _stack_levels(ref: str) -> list[np.ndarray]:
    info = volume.read_info(ref)
    store, sub = volume.split_ref(ref)
    group = zarr.open_group(store, mode="r")
    group = group[sub] if sub else group
    return [np.asarray(group[p]) for p in info.level_paths]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def write_ome_zarr_stack(path: Path) -> np.ndarray:
    """A 3-plane uint8 stack and its artifact labels, as ome-zarr's writer makes them (label pyramid
    nearest-downsampled, chunks of its own choosing)."""
    image = np.stack([blob_image((96, 96), seed=s) for s in range(3)])
    group = zarr.open_group(path, mode="w")
    write_image(image, group, axes="zyx", scale_factors=(2, 2), storage_options={"chunks": (1, 32, 32)})
    mask = np.zeros_like(image)
    mask[0, 20:32, 30:50] = 1
    mask[1, 40:44, 40:44] = 1  # plane 1 is not in the sections table: left as it is
    mask[2, 60:66, 10:40] = 1
    write_labels(mask, group, name="artifacts", axes="zyx", scale_factors=(2, 2))
    return image


def test_the_repaired_planes_of_a_stack_are_assembled_into_one_stack(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    data = tmp_path / "data"
    image = write_ome_zarr_stack(data / "stack.ome.zarr")
    (data / "sections.tsv").write_text("section\timage\tmask\tz\n" + "".join(
        f"p{z}\tstack.ome.zarr\tstack.ome.zarr#labels/artifacts\t{z}\n" for z in (0, 2)))
    before = _digest(data / "stack.ome.zarr")
    snakemake(tmp_path)
    assert _digest(data / "stack.ome.zarr") == before  # the input is never written

    results = tmp_path / "results"
    receipt = json.loads((results / "stack" / "assemble.json").read_text())
    assert sorted(receipt["repaired_planes"]) == ["0", "2"] and receipt["copied_planes"] == [1]
    out = str(results / "stack" / "repaired.ome.zarr")
    info, src = volume.read_info(out), volume.read_info(str(data / "stack.ome.zarr"))
    assert (info.axes, info.shape, info.dtype, info.level_shapes) == ("zyx", src.shape, src.dtype, src.level_shapes)
    assert info.chunks[0] == 1  # one plane per chunk: each plane has one writer
    stack, labels = _stack_levels(out), _stack_levels(f"{out}#labels/repaired")
    inputs = _stack_levels(str(data / "stack.ome.zarr"))
    for z in (0, 2):  # every level of a repaired plane is that plane's repaired store
        plane = str(results / "sections" / f"p{z}" / "repaired.ome.zarr")
        for lv, arr in enumerate(_stack_levels(plane)):
            assert np.array_equal(stack[lv][z], arr)
        for lv, arr in enumerate(_stack_levels(f"{plane}#labels/repaired")):
            assert np.array_equal(labels[lv][z], arr)
    repaired = labels[0] > 0
    assert repaired[0].any() and repaired[2].any() and not repaired[1].any()
    assert np.array_equal(stack[0][~repaired], image[~repaired])  # bit-identical outside the repaired pixels
    for lv in range(len(stack)):
        assert np.array_equal(stack[lv][1], inputs[lv][1])  # the plane not in the table, as it was
    open_ome_zarr(out)  # valid for ome-zarr-models, and readable by ome-zarr's reader (napari's plugin)
    nodes = list(Reader(parse_url(out))())
    assert any(n.load(Multiscales) for n in nodes) and any(n.load(Label) for n in nodes)


def test_assembly_refuses_planes_that_do_not_fit_the_stack(tmp_path: Path) -> None:
    write_ome_zarr_stack(tmp_path / "stack.ome.zarr")
    stack = str(tmp_path / "stack.ome.zarr")
    with pytest.raises(ValueError, match="outside the stack"):
        assemble_stack(stack, {5: stack}, tmp_path / "out.ome.zarr")
    with pytest.raises(ValueError, match="do not match plane 0"):
        assemble_stack(stack, {0: stack}, tmp_path / "out.ome.zarr")  # a 3-D store is no plane
    assert not (tmp_path / "out.ome.zarr").exists() and not (tmp_path / "out.ome.zarr.partial").exists()
