"""End-to-end snakemake runs of the real workflow on a tiny stack with a tiny model."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import make_section, write_sections_table

from cytopaint.models import package as modelpkg

from cytopaint.paths import SectionPaths
from cytopaint.plan.ownership import dilated_window

from cytopaint.io import volume, writer
from cytopaint.diffusion.gaussian import DiffusionConfig

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("s0", "s1", "s2")


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 and mtime of every file under ``path``."""
    return {str(p.relative_to(path)): f"{hashlib.sha256(p.read_bytes()).hexdigest()}:{p.stat().st_mtime_ns}"
            for p in sorted(path.rglob("*")) if p.is_file()}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


# s2's speck straddles four cores: each owns a corner of it, small enough for an 8 px window
HOLES = {"s0": [(20, 30, 12, 20)], "s1": [(60, 10, 6, 30), (5, 70, 10, 10)], "s2": [(40, 40, 30, 30), (87, 87, 1, 1)]}


def write_stack(work: Path, sections=SECTIONS, min_window: int | None = None) -> None:
    """96x96 px sections (1 µm) with rectangular holes, their table, a tiny model and a fast config
    (``min_window``: `tiling.min_window`)."""
    import torch

    from conftest import TINY
    from cytopaint.diffusion.unet import UNet

    data = work / "data"
    data.mkdir(parents=True)
    for s in sections:
        make_section(data / f"{s}.ome.zarr", (96, 96), seed=len(s) + int(s[1]), holes=HOLES[s])
    write_sections_table(data / "sections.tsv", [(s, f"{s}.ome.zarr", f"{s}.ome.zarr#labels/artifacts")
                                                 for s in sections])
    torch.manual_seed(0)
    net = UNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    modelpkg.save(work / "model", net, name="tiny", diffusion=DiffusionConfig(steps=20), pixel_size_um=1.0,
                  training={"command": "test", "data": [], "seed": 0, "code_version": "test"})
    config = {"sections": "data/sections.tsv", "results": "results", "model": str(work / "model"),
              "tiling": {"margin_um": 2, "min_known": 0.2, "max_batch": 2, "min_window": min_window},
              "repaint": {"jump_length": 2, "jump_n_sample": 2, "steps": 4}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    """Three sections and one finished local run, with small windows where tiles own little."""
    work = tmp_path_factory.mktemp("wf")
    write_stack(work, min_window=8)
    inputs_before = tree_digest(work / "data")
    snakemake(work)
    assert tree_digest(work / "data") == inputs_before  # the input stores are never written
    plan = pd.read_csv(work / SectionPaths("results", "s2").plan_table, sep="\t")
    assert set(plan["height"]) == {8, 16}  # the speck's tiles sampled 8 px windows
    return work


def _arrays(work: Path, s: str):
    src = work / "data" / f"{s}.ome.zarr"
    out = work / "results" / "sections" / s / "repaired.ome.zarr"
    return src, out


@pytest.mark.parametrize("section", SECTIONS)
def test_pixels_outside_repaired_label_are_bit_identical(stack: Path, section: str) -> None:
    src, out = _arrays(stack, section)
    before = np.asarray(volume.open_level(str(src)))
    after = np.asarray(volume.open_level(str(out)))
    repaired = np.asarray(volume.open_level(f"{out}#labels/repaired")) > 0
    assert after.dtype == before.dtype and after.shape == before.shape
    assert np.array_equal(after[~repaired], before[~repaired])
    assert (after[repaired] != before[repaired]).mean() > 0.5
    mask = np.asarray(volume.open_level(f"{src}#labels/artifacts")) > 0
    dilated = dilated_window(mask, 1, mask.shape, 2, 0, 0, *mask.shape)
    assert not (dilated & ~repaired).any()  # every dilated artifact pixel is repaired


@pytest.mark.parametrize("section", SECTIONS)
def test_output_is_valid_ome_zarr_with_the_input_layout(stack: Path, section: str) -> None:
    import ome_zarr_models
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    src, out = _arrays(stack, section)
    ome_zarr_models.open_ome_zarr(str(out))
    nodes = list(Reader(parse_url(str(out)))())
    assert nodes and nodes[0].data[0].shape == (96, 96)
    a, b = volume.read_info(str(src)), volume.read_info(str(out))
    assert (a.dtype, a.scale_um, a.chunks, a.n_levels, a.ngff) == (b.dtype, b.scale_um, b.chunks, b.n_levels, b.ngff)


@pytest.mark.parametrize("section", SECTIONS)
def test_pyramid_equals_a_full_rebuild(stack: Path, section: str, tmp_path: Path) -> None:
    _, out = _arrays(stack, section)
    level0 = np.asarray(volume.open_level(str(out)))
    ref = tmp_path / "ref.ome.zarr"
    writer.write_section(ref, level0, pixel_size_um=1.0, n_levels=3, chunks=(32, 32))
    for level in (1, 2):
        assert np.array_equal(np.asarray(volume.open_level(str(out), level)),
                              np.asarray(volume.open_level(str(ref), level)))


def test_rerun_of_one_section_leaves_the_others_untouched(stack: Path) -> None:
    results = stack / "results" / "sections"
    others = {s: tree_digest(results / s) for s in ("s0", "s2")}
    before = (results / "s1" / "blend.json").read_text()
    snakemake(stack, "results/sections/s1/blend.json", "--forcerun", "repaint", "blend")
    for s, digest in others.items():
        assert tree_digest(results / s) == digest
    after = (results / "s1" / "blend.json").read_text()
    assert _checksum(before) == _checksum(after)  # deterministic: the same pixels again


def test_a_section_replanned_alone_is_indexed_on_its_own(stack: Path) -> None:
    """Its DAG holds its own plan and index (checkpoint section_plan), not the stack's index or the others' plans."""
    results = stack / "results"
    untouched = {p: tree_digest(p) for p in (results / "plan", results / "sections" / "s0", results / "sections" / "s2")}
    before = _checksum((results / "sections" / "s1" / "blend.json").read_text())
    out = snakemake(stack, "results/sections/s1/manifest.json", "--forcerun", "plan")
    log = out.stdout + out.stderr
    assert "checkpoint section_plan:" in log and "checkpoint plan_index:" not in log
    assert log.count("rule plan:") == 1
    for path, digest in untouched.items():
        assert tree_digest(path) == digest
    assert _checksum((results / "sections" / "s1" / "blend.json").read_text()) == before


def test_rerun_after_a_killed_job_equals_an_uninterrupted_run(stack: Path) -> None:
    results = stack / "results" / "sections" / "s2"
    before = _checksum((results / "blend.json").read_text())
    batches = sorted((results / "batches").glob("batch_*.npz"))
    batches[-1].unlink()  # the job was killed before it wrote its result
    (results / "batches" / (batches[-1].name + ".tmp.npz")).write_bytes(b"partial")
    snakemake(stack, "--rerun-incomplete")
    assert _checksum((results / "blend.json").read_text()) == before


def _checksum(receipt: str) -> str:
    import json

    return json.loads(receipt)["sha256_level0"]


def test_the_same_settings_in_another_order_rerun_nothing(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    snakemake(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    reordered = {k: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for k, v in reversed(config.items())}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert "Nothing to be done" in snakemake(tmp_path, "-n").stdout
    # a setting that changes no pixel (tiles per sampler call), kept with the rerun triggers the README gives
    reordered["repaint"]["gpu_batch"] = 1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert "Nothing to be done" in snakemake(tmp_path, "-n", "--rerun-triggers", "mtime", "input").stdout
    reordered["execution"] = {"channels_last": True, "compile": "default"}  # neither does how the network runs
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert "Nothing to be done" in snakemake(tmp_path, "-n", "--rerun-triggers", "mtime", "input").stdout
    forced = snakemake(tmp_path, "-n", "-p", "--forcerun", "repaint").stdout
    assert """--execution '{"channels_last":true,"compile":"default"}'""" in forced
