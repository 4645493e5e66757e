"""Inputs refused before any GPU work, made the way other tools make them, each with a message naming the problem."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image, write_labels
from test_bad_input import _run, model  # noqa: F401 (a fixture)
from test_workflow import write_stack

from cytopaint.io.sections import read_sections
from cytopaint.plan.section import Section
from cytopaint.plan.stage import TilingConfig, plan_section
from cytopaint.plan.table import read_plan
from cytopaint.qc.summary import write_stack_summary

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&'


@pytest.mark.parametrize(("table", "message"), [
    ("section\timage\nB1\ta.zarr\n", r"missing column\(s\) \['mask'\]"),
    ("section\timage\tmask\n", "lists no sections"),
    ("section\timage\tmask\nB1\ta.zarr\t\n", r"empty mask for sections \['B1'\]"),
    ("section\timage\tmask\nB1\ta.zarr\tm.zarr\nB1\tb.zarr\tm.zarr\n", r"duplicated section ids \['B1'\]"),
    ("section\timage\tmask\n../B1\ta.zarr\tm.zarr\n", r"invalid section id '\.\./B1'"),
    ("section\timage\tmask\n..\ta.zarr\tm.zarr\n", r"invalid section id '\.\.'"),
    ("section\timage\tmask\n-B1\ta.zarr\tm.zarr\n", r"invalid section id '-B1'"),
    ("section\timage\tmask\tz\nB1\ta.zarr\tm.zarr\t-1\n", r"z must be a plane index .* \['-1'\]"),
])
def test_a_broken_sections_table_is_refused_with_its_name_and_problem(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "sections.tsv"
    path.write_text(table)
    with pytest.raises(ValueError, match=message) as err:
        read_sections(path, base=tmp_path)
    assert str(path) in str(err.value)


def _ome_zarr(path: Path, data: np.ndarray, axes: str, units: dict | None = None) -> Path:
    """An image written by ome-zarr's own writer (NGFF 0.4), with a one-pixel artifact label."""
    group = zarr.open_group(path, mode="w", zarr_format=2)
    spatial = axes.replace("c", "")
    units = units or dict.fromkeys(spatial, "micrometer")
    write_image(data, group, fmt=FormatV04(), axes=axes, scale_factors=(), axes_units=units)
    mask = np.zeros(data.shape[-2:], np.uint8)
    mask[8, 8] = 1
    write_labels(mask, group, name="artifacts", fmt=FormatV04(), axes=spatial, scale_factors=(),
                 axes_units=dict.fromkeys(spatial, "micrometer"))
    return path


def _reaxed(path: Path, names: list[str]) -> Path:
    """Rename the image's axes in its metadata, as a tool writing another axis order would."""
    group = zarr.open_group(path, mode="r+")
    ms = group.attrs["multiscales"]
    for axis, name in zip(ms[0]["axes"], names, strict=True):
        axis["name"] = name
    group.attrs["multiscales"] = ms
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: _ome_zarr(p, np.zeros((3, 32, 32), np.uint8), "cyx"), r"axes 'cyx' not supported \(need 'yx' or 'zyx'\)"),
    (lambda p: _reaxed(_ome_zarr(p, np.zeros((32, 32), np.uint8), "yx"), ["x", "y"]), r"axes 'xy' not supported"),
    (lambda p: _ome_zarr(p, np.zeros((32, 32), np.uint8), "yx", {"y": "inch", "x": "inch"}),
     r"unit 'inch' of axis 'y' not supported"),
    (lambda p: (p.mkdir(), p)[1], "not a zarr group"),
    (lambda p: (zarr.open_group(p, mode="w").create_array("0", shape=(32, 32), dtype="uint8"), p)[1],
     "not an OME-Zarr multiscale image"),
])
def test_an_image_of_another_layout_is_refused_at_planning(tmp_path: Path, model: str, make, message: str) -> None:
    image = make(tmp_path / "in.ome.zarr")
    before = sorted((str(p), p.stat().st_mtime_ns) for p in image.rglob("*"))
    with pytest.raises(ValueError, match=message) as err:
        plan_section(Section("s", str(image), f"{image}#labels/artifacts"), model, TilingConfig(), None, tmp_path / "plan")
    assert "in.ome.zarr" in str(err.value)
    assert not (tmp_path / "plan").exists()
    assert sorted((str(p), p.stat().st_mtime_ns) for p in image.rglob("*")) == before


def _dry_run(work: Path, config: dict) -> subprocess.CompletedProcess:
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return _run(work, "--dry-run")


def test_a_config_outside_the_schema_is_refused_before_any_job(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    wrong_type = _dry_run(tmp_path, {**config, "tiling": {**config.get("tiling", {}), "max_batch": "eight"}})
    assert wrong_type.returncode != 0 and "'eight' is not of type 'integer'" in wrong_type.stdout + wrong_type.stderr
    unknown = _dry_run(tmp_path, {**config, "repaint": {**config.get("repaint", {}), "jump_lenght": 5}})
    assert unknown.returncode != 0 and "'jump_lenght' was unexpected" in unknown.stdout + unknown.stderr
    typo = _dry_run(tmp_path, {**config, "reveiw": "data/review.tsv"})
    assert typo.returncode != 0 and "'reveiw' was unexpected" in typo.stdout + typo.stderr
    method = _dry_run(tmp_path, {**config, "repaint": {**config.get("repaint", {}), "method": "dps"}})
    assert method.returncode != 0 and "'dps' is not one of" in method.stdout + method.stderr
    start = _dry_run(tmp_path, {**config, "repaint": {**config.get("repaint", {}), "resample_start": 0}})
    assert start.returncode != 0 and "resample_start" in start.stdout + start.stderr
    ddnm = _dry_run(tmp_path, {**config, "repaint": {**config.get("repaint", {}), "method": "ddnm"}})
    assert ddnm.returncode == 0, ddnm.stderr
    assert not (tmp_path / "results" / "sections").exists()


def test_strings_from_inputs_are_escaped_in_the_qc_pages(tmp_path: Path, model: str) -> None:
    from test_qc_report import build_section, run_qc  # a really repaired section

    b = build_section(tmp_path / "s", model=model)
    info = json.loads((b["out"] / "plan" / "plan.json").read_text())
    tile = str(read_plan(b["out"] / "plan" / "tiles.tsv")["tile"].iloc[0])
    info["review"] = {"table": "review.tsv", "sha256": "0" * 64, "tiles": {tile: {
        "status": "regenerated", "round": 1, "seeds": [1, 2],
        "decisions": [{"decision": "reject", "note": HOSTILE, "line": 2}]}}}
    (b["out"] / "plan" / "plan.json").write_text(json.dumps(info))
    run_qc(b)
    page = (b["out"] / "qc" / "report.html").read_text()
    assert html.escape(HOSTILE) in page
    assert "<script>alert" not in page and "<img src=x" not in page

    # a section refused at planning, whose error quotes a hostile string, in the stack index
    failed = tmp_path / "results" / "sections" / "B2" / "plan" / "plan.json"
    failed.parent.mkdir(parents=True)
    failed.write_text(json.dumps({"section": "B2", "failed": {"stage": "plan", "error": HOSTILE}}))
    write_stack_summary([b["out"] / "qc" / "summary.json", failed], tmp_path / "results" / "qc", progress=False)
    index = (tmp_path / "results" / "qc" / "index.html").read_text()
    assert html.escape(f"plan: {HOSTILE}") in index
    assert "<script>alert" not in index and "<img src=x" not in index
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', index, re.S).group(1))
    assert data["rows"][1][[c[0] for c in data["columns"]].index("error")] == f"plan: {HOSTILE}"
