"""One bad section never stops the stack: it is reported as failed, every other section is repaired."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from conftest import make_section
from test_workflow import REPO, snakemake, write_stack


def test_a_section_with_refused_inputs_is_reported_and_the_others_are_repaired(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0", "s1"))
    data = tmp_path / "data"
    make_section(data / "bad.ome.zarr", (96, 80), holes=[(10, 10, 5, 5)])  # its mask is 96 x 80, the image not
    table = data / "sections.tsv"
    table.write_text(table.read_text() + "bad\tbad_image.ome.zarr\tbad.ome.zarr#labels/artifacts\n")
    make_section(data / "bad_image.ome.zarr", (96, 96), holes=[(10, 10, 5, 5)])

    out = snakemake(tmp_path)
    results = tmp_path / "results"
    for s in ("s0", "s1"):  # the good sections went through every stage
        assert (results / "sections" / s / "manifest.json").is_file()
    bad = results / "sections" / "bad"
    info = json.loads((bad / "plan" / "plan.json").read_text())
    assert info["failed"]["stage"] == "plan" and "extent" in info["failed"]["error"]
    assert not (bad / "batches").exists() and not (bad / "repaired.ome.zarr").exists()
    assert "extent" in (results / "logs" / "plan" / "bad.log").read_text()
    assert "1 of 3 sections FAILED" in out.stderr and "bad:" in out.stderr

    index = pd.read_csv(results / "plan" / "index.tsv", sep="\t", keep_default_na=False)
    assert index.set_index("section")["status"].to_dict() == {"s0": "planned", "s1": "planned", "bad": "failed"}
    summary = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False).set_index("section")
    assert summary.loc["bad", "status"] == "failed" and "extent" in summary.loc["bad", "error"]
    assert summary.loc["s0", "status"] == "repaired" and summary.loc["s0", "tiles_repaired"] > 0
    page = (results / "qc" / "index.html").read_text()
    assert "1 section(s) failed and were not repaired" in page and "extent" in page
    # asked for alone, the failed section stops the run with the reason
    alone = subprocess.run([sys.executable, "-m", "snakemake", "results/sections/bad/manifest.json", "-s",
                            str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                            str(tmp_path / "config.yaml"), "--cores", "1"], capture_output=True, text=True, timeout=600)
    assert alone.returncode != 0
    assert re.search(r"section bad was not planned: .*extent", alone.stdout + alone.stderr), alone.stderr[-2000:]

    # once the section is fixed, the next run repairs it and leaves the others as they are
    manifests = {s: (results / "sections" / s / "manifest.json").stat().st_mtime_ns for s in ("s0", "s1")}
    shutil.rmtree(data / "bad.ome.zarr")
    make_section(data / "bad.ome.zarr", (96, 96), holes=[(10, 10, 5, 5)])
    snakemake(tmp_path)
    assert (bad / "manifest.json").is_file()
    assert "failed" not in json.loads((bad / "plan" / "plan.json").read_text())
    summary = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False)
    assert set(summary["status"]) == {"repaired"}


def test_the_cli_fails_for_refused_inputs_unless_asked_to_record_them(tmp_path: Path, capsys) -> None:
    from cytopaint.cli import main

    write_stack(tmp_path, sections=("s0",))
    data = tmp_path / "data"
    make_section(data / "m.ome.zarr", (64, 64), holes=[(1, 1, 4, 4)])
    (data / "t.tsv").write_text("section\timage\tmask\nx\ts0.ome.zarr\tm.ome.zarr#labels/artifacts\n")
    model = yaml.safe_load((tmp_path / "config.yaml").read_text())["model"]
    args = ["plan", "--sections", str(data / "t.tsv"), "--section", "x", "--model", model, "--out-dir",
            str(tmp_path / "p")]
    assert main(args) == 2 and "extent" in capsys.readouterr().err
    assert main([*args, "--record-failure"]) == 0
    assert "FAILED" in capsys.readouterr().err
    assert "extent" in json.loads((tmp_path / "p" / "plan.json").read_text())["failed"]["error"]
    assert sys.modules["cytopaint.cli"]  # the CLI ran in this process


def test_a_config_with_only_sections_results_and_model_runs_that_stack(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    minimal = {k: config[k] for k in ("sections", "results", "model")}  # no demo block at all
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(minimal))
    out = snakemake(tmp_path, "-n")
    assert "synth_demo" not in out.stdout and "wildcards: section=s0" in out.stdout
    assert "demo_a" not in out.stdout


def test_a_section_whose_blend_fails_is_reported_and_the_others_are_repaired(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    data = tmp_path / "data"
    make_section(data / "bad.ome.zarr", (96, 96), holes=[(4, 4, 6, 6)])
    chunk = data / "bad.ome.zarr" / "0" / "c" / "2" / "2"  # far from the artifact: planning never reads it
    chunk.write_bytes(chunk.read_bytes()[:20])
    table = data / "sections.tsv"
    table.write_text(table.read_text() + "bad\tbad.ome.zarr\tbad.ome.zarr#labels/artifacts\n")

    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2",
                          "--keep-going"], capture_output=True, text=True, timeout=600)
    assert out.returncode != 0  # the run did fail, and says so
    results = tmp_path / "results"
    assert (results / "sections" / "s0" / "manifest.json").is_file()
    bad = results / "sections" / "bad"
    assert (bad / "batches").is_dir() and not (bad / "blend.json").exists() and not (bad / "repaired.ome.zarr").exists()
    assert "1 of 2 sections FAILED after planning" in out.stderr
    assert re.search(r"bad: blend: .*bad\.ome\.zarr/0: chunk 'c/2/2' of array '0' cannot be read", out.stderr)

    summary = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False).set_index("section")
    assert summary["status"].to_dict() == {"s0": "repaired", "bad": "failed"}
    assert summary.loc["bad", "error"].startswith("blend: ") and "c/2/2" in summary.loc["bad", "error"]
    assert summary.loc["bad", "report"] == "../logs/blend/bad.log"
    assert summary.loc["s0", "tiles_repaired"] > 0
    page = (results / "qc" / "index.html").read_text()
    assert "1 section(s) failed and were not repaired" in page and "c/2/2" in page

    # the store mended, the same command finishes the stack: the summary is the workflow's own again
    shutil.rmtree(data / "bad.ome.zarr")
    make_section(data / "bad.ome.zarr", (96, 96), holes=[(4, 4, 6, 6)])
    snakemake(tmp_path, "--keep-going")
    assert (bad / "manifest.json").is_file()
    summary = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False)
    assert set(summary["status"]) == {"repaired"} and len(summary) == 2
    assert (results / "logs" / "qc_summary.log").is_file()
