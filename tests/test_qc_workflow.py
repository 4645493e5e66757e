"""The QC, manifest and review rules in real snakemake runs on a tiny stack with a tiny model."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import make_section, write_sections_table
from test_qc_report import tiny_model

from cytopaint.plan.seeds import tile_seed
from cytopaint.plan.table import read_plan

from cytopaint.io import volume
from cytopaint.provenance.manifest import validate_manifest
from cytopaint.plan.ownership import batch_dependencies

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
pytestmark = pytest.mark.skipif(
    not all(f"workflow/rules/{r}.smk" in SNAKEFILE.read_text() for r in ("qc", "provenance")),
    reason="the Snakefile does not include workflow/rules/qc.smk and provenance.smk yet")
HOLES = {"s0": [(20, 24, 8, 10)], "s1": [(6, 6, 6, 8), (44, 44, 8, 8)]}


def snakemake(work: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    targets = [f"results/sections/{s}/manifest.json" for s in HOLES] + ["results/qc/index.html"]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work), "--configfile",
           str(work / "config.yaml"), "--cores", "2", *args, *targets]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert (out.returncode == 0) == ok, out.stderr[-4000:]
    return out


def jobs(log: str) -> set[tuple[str, ...]]:
    """(rule, wildcard values...) of every job snakemake started, from its log."""
    found = set()
    for block in re.split(r"\n(?=\[[A-Z][a-z]{2} )", log):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        if rule and rule.group(1) != "all":
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            values = [kv.split("=", 1)[1] for kv in wildcards.group(1).split(", ")] if wildcards else []
            found.add((rule.group(1), *values))
    return found


def digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_qc_manifests_and_a_review_round(tmp_path: Path) -> None:
    work = tmp_path
    data = work / "data"
    data.mkdir()
    for i, (s, holes) in enumerate(HOLES.items()):
        make_section(data / f"{s}.ome.zarr", (64, 64), seed=11 + i, holes=holes)
    write_sections_table(data / "sections.tsv", [(s, f"{s}.ome.zarr", f"{s}.ome.zarr#labels/artifacts") for s in HOLES])
    review = data / "review.tsv"
    review.write_text("# one row per decision, oldest first\nsection\ttile\tdecision\tnote\n")
    config = {"sections": "data/sections.tsv", "results": "results", "model": tiny_model(work / "model"),
              "review": "data/review.tsv",
              "tiling": {"margin_um": 2, "min_known": 0.2, "max_batch": 2},
              "repaint": {"jump_length": 1, "jump_n_sample": 1, "steps": 2}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(work)
    results = work / "results"

    # every section: a valid manifest, metrics and a report; the stack: index and summary
    for s in HOLES:
        m = json.loads((results / "sections" / s / "manifest.json").read_text())
        validate_manifest(m)
        assert m["config"]["values"]["tiling"]["max_batch"] == 2 and m["review"]["table"] == "data/review.tsv"
        assert (results / "sections" / s / "qc" / "report.html").is_file()
    assert pd.read_csv(results / "qc" / "summary.tsv", sep="\t")["section"].tolist() == list(HOLES)
    assert "s1" in (results / "qc" / "index.html").read_text()

    # reject one tile of s1 whose batch no later batch takes context from
    plan = read_plan(results / "sections" / "s1" / "plan" / "tiles.tsv")
    deps = batch_dependencies(plan)
    free = [b for b in deps if not any(b in d for d in deps.values())]
    tile = plan[plan["batch"] == free[-1]].iloc[0]
    before = np.asarray(volume.open_level(str(results / "sections" / "s1" / "repaired.ome.zarr")))
    s0_before = digest(results / "sections" / "s0")
    with review.open("a") as f:
        f.write(f"s1\t{tile.tile}\treject\tghost cells at the seam\n")
    out = snakemake(work)
    assert jobs(out.stderr) == {("plan", "s1"), ("plan_index",), ("repaint", "s1", str(tile.batch)), ("blend", "s1"),
                                ("qc", "s1"), ("manifest", "s1"), ("qc_summary",)}
    assert digest(results / "sections" / "s0") == s0_before

    after = np.asarray(volume.open_level(str(results / "sections" / "s1" / "repaired.ome.zarr")))
    label = np.asarray(volume.open_level(str(results / "sections" / "s1" / "repaired.ome.zarr#labels/repaired"))) > 0
    owned = np.zeros(label.shape, dtype=bool)
    owned[tile.core_y0:tile.core_y0 + tile.core_height, tile.core_x0:tile.core_x0 + tile.core_width] = True
    owned &= label
    changed = after != before
    assert changed.any() and not (changed & ~owned).any()

    m = json.loads((results / "sections" / "s1" / "manifest.json").read_text())
    record = next(t for t in m["tiles"] if t["tile"] == tile.tile)["review"]
    assert record["status"] == "regenerated" and record["round"] == 1
    assert record["seeds"] == [tile_seed(0, "s1", int(tile.row), int(tile.col), round=k) for k in (0, 1)]
    assert record["decisions"][0]["note"] == "ghost cells at the seam"
    assert m["review"]["decisions"][tile.tile][0]["decision"] == "reject"
    report = (results / "sections" / "s1" / "qc" / "report.html").read_text()
    assert "regenerated · round 1" in report and "ghost cells at the seam" in report

    # nothing left to do; then clear errors for a section or a tile that does not exist
    assert jobs(snakemake(work).stderr) == set()
    with review.open("a") as f:
        f.write("s7\tr00000c00000\treject\n")
    failed = snakemake(work, "-n", ok=False)
    assert "name a section that is not in the sections table (line 4: s7)" in failed.stdout + failed.stderr
    review.write_text(review.read_text().replace("s7\t", "s0\t").replace("r00000c00000", "r00099c00000"))
    snakemake(work, ok=False)
    assert "section s0 has no tile r00099c00000 in its plan" in (results / "logs" / "plan" / "s0.log").read_text()
