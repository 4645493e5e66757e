"""Provenance manifests: schema, config hash, reproducibility, and a bit-identical replay from the seeds."""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_qc_report import FAST, build_section, repaint_all, run_qc

from cytopaint.models import package as modelpkg

from cytopaint.plan.table import read_plan, write_plan

from cytopaint.io import volume
from cytopaint.blend.stage import blend_section
from cytopaint.io.digest import level0_digest
from cytopaint.cli import main
from cytopaint.provenance.manifest import (VOLATILE_JOB_KEYS, build_manifest, config_hash, plan_from_manifest, stable_view,
                                  validate_manifest, write_manifest)
from cytopaint.plan.section import Section

CONFIG = {"sections": "data/sections.tsv", "results": "results", "model": "m",
          "tiling": {"margin_um": 2, "min_known": 0.2, "max_batch": 2, "seed": 0},
          "repaint": {"jump_length": 1, "jump_n_sample": 1, "steps": 2}, "qc": {"thresholds": {"seam": 1.5}}}


def make_manifest(b: dict, config: dict = CONFIG) -> dict:
    return build_manifest(Section(b["section"], b["image"], b["mask"]), sections_table=b["sections"],
                          plan_dir=b["out"] / "plan", batch_files=b["batches"], receipt_path=b["out"] / "blend.json",
                          qc_summary_path=b["out"] / "qc" / "summary.json", config=config, progress=False)


def run_section(root: Path, model: str | None = None) -> dict:
    b = build_section(root, holes=((20, 26, 10, 12), (44, 8, 6, 6)), model=model)
    run_qc(b)
    return b


@pytest.fixture(scope="module")
def section(tmp_path_factory) -> dict:
    b = run_section(tmp_path_factory.mktemp("prov"))
    b["manifest"] = make_manifest(b)
    return b


def test_the_manifest_records_the_run(section: dict) -> None:
    m = section["manifest"]
    validate_manifest(m)
    plan = read_plan(section["out"] / "plan" / "tiles.tsv")
    assert [t["tile"] for t in m["tiles"]] == plan["tile"].tolist()
    assert [t["seed"] for t in m["tiles"]] == plan["seed"].tolist()
    assert all(t["nfe"] == 2 and 0 < t["generated_px"] <= t["n_owned"] for t in m["tiles"] if t["batch"] >= 0)
    assert m["sampler"] == {"method": "repaint", "jump_length": 1, "jump_n_sample": 1, "steps": 2,
                            "resample_start": 1.0, "zeta": 1.0, "nfe_per_tile": [2]}
    assert m["output"]["sha256_level0"] == section["receipt"]["sha256_level0"]
    assert m["output"]["pixels_repaired"] == sum(t["generated_px"] or 0 for t in m["tiles"])
    assert 0 < m["output"]["repaired_pct_tissue"] < 100
    assert m["output"]["repaired_um2"] == m["output"]["pixels_repaired"]  # 1 µm pixels
    assert m["inputs"]["image"]["sha256_level0"] == level0_digest(section["image"])
    assert m["model"]["weights_sha256"] == modelpkg.read_card(section["model"])["weights"]["sha256"]
    assert m["config"] == {"sha256": config_hash(CONFIG), "values": CONFIG}
    assert m["code"]["version"] and m["review"] == {"table": None, "sha256": None, "decisions": {}}
    steps = [j["step"] for j in m["jobs"]]
    assert steps == ["repaint"] * len(section["batches"]) + ["blend", "qc", "manifest"]
    assert all(j["device"] == "cpu" and j["started"] and j["host"] for j in m["jobs"] if j["step"] == "repaint")
    per_batch = Counter(t["batch"] for t in m["tiles"] if t["batch"] >= 0)
    assert {j["batch"]: j["tiles_per_call"] for j in m["jobs"] if j["step"] == "repaint"} == {
        b: min(n, FAST.gpu_batch) for b, n in per_batch.items()}
    # CPU results depend on torch's thread count: each batch records the count it was sampled at
    assert all(j["threads"] == torch.get_num_threads() for j in m["jobs"] if j["step"] == "repaint")
    assert m["plan"]["margin_px"] == 2 and m["qc"]["report"].endswith("qc/report.html")
    qc = json.loads((section["out"] / "qc" / "summary.json").read_text())
    assert m["qc"]["section_flags"] == qc["section_flags"] and isinstance(qc["section_flags"], list)


def test_one_changed_config_value_changes_the_hash() -> None:
    base = config_hash(CONFIG)
    changed = copy.deepcopy(CONFIG)
    changed["qc"]["thresholds"]["seam"] = 1.6
    assert config_hash(changed) != base
    reordered = dict(reversed(list(CONFIG.items())))
    assert config_hash(reordered) == base


def test_the_schema_rejects_broken_manifests(section: dict) -> None:
    m = copy.deepcopy(section["manifest"])
    m["output"]["sha256_level0"] = "not-a-digest"
    del m["tiles"][0]["seed"]
    m["jobs"][0]["step"] = "dance"
    with pytest.raises(ValueError) as err:
        validate_manifest(m)
    for where in ("output/sha256_level0", "tiles/0: 'seed' is a required property", "jobs/0/step"):
        assert where in str(err.value)


def test_a_repeated_run_gives_the_same_manifest_but_times_and_hosts(section: dict, tmp_path: Path) -> None:
    first = make_manifest(run_section(tmp_path, model=section["model"]))
    shutil.rmtree(tmp_path / "results")
    again = make_manifest(run_section(tmp_path, model=section["model"]))
    assert stable_view(again) == stable_view(first)
    assert {k for k in first if first[k] != again[k]} <= {"created", "jobs"}
    for a, b in zip(first["jobs"], again["jobs"], strict=True):
        assert {k for k in a if a[k] != b[k]} <= set(VOLATILE_JOB_KEYS)


def test_replaying_the_manifest_seeds_reproduces_the_pixels(section: dict, tmp_path: Path) -> None:
    m = section["manifest"]
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    write_plan(plan_from_manifest(m), plan_dir / "tiles.tsv")
    (plan_dir / "plan.json").write_text(json.dumps(m["plan"]))
    batches = repaint_all(Section("s0", section["image"], section["mask"]), plan_dir, m["model"]["path"],
                          tmp_path / "batches")
    receipt = blend_section(section["image"], None, batches, tmp_path / "replay.ome.zarr")
    assert receipt["sha256_level0"] == m["output"]["sha256_level0"]
    original = np.asarray(volume.open_level(m["output"]["path"]))
    assert np.array_equal(np.asarray(volume.open_level(str(tmp_path / "replay.ome.zarr"))), original)


def test_batches_that_disagree_with_the_plan_are_refused(section: dict, tmp_path: Path) -> None:
    plan_dir = tmp_path / "plan"
    shutil.copytree(section["out"] / "plan", plan_dir)
    plan = read_plan(plan_dir / "tiles.tsv")
    plan.loc[0, "seed"] += 1
    write_plan(plan, plan_dir / "tiles.tsv")
    b = {**section, "out": tmp_path}
    shutil.copy(section["out"] / "blend.json", tmp_path / "blend.json")
    shutil.copytree(section["out"] / "qc", tmp_path / "qc")
    with pytest.raises(ValueError, match="was sampled with seed .* the plan says"):
        make_manifest(b)
    with pytest.raises(ValueError, match=r"no batch result given for batch\(es\) \[0\]"):
        make_manifest({**section, "batches": section["batches"][1:]})


def test_cli_manifest(section: dict, tmp_path: Path, capsys) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    out = tmp_path / "manifest.json"
    args = ["manifest", "--sections", str(section["sections"]), "--section", "s0", "--plan-dir",
            str(section["out"] / "plan"), "--batches", *map(str, section["batches"]), "--receipt",
            str(section["out"] / "blend.json"), "--qc", str(section["out"] / "qc" / "summary.json"), "--config",
            str(tmp_path / "config.json"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    m = json.loads(out.read_text())
    validate_manifest(m)
    assert m["config"]["sha256"] == config_hash(CONFIG) and "manifest" in capsys.readouterr().err
    write_manifest(m, tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == m
