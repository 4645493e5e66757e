"""Stack summary: summary.tsv and index.html from the sections' summary.json, up to 7,404 sections."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytopaint.cli import main
from cytopaint.qc.metrics import METRIC_COLUMNS, QCSettings, Thresholds
from cytopaint.qc.summary import COLUMNS, HISTOGRAMS, summarize_section, write_stack_summary

BIGBRAIN_SECTIONS = 7404


def fake_metrics(rng: np.random.Generator, n: int, flagged: int = 0) -> pd.DataFrame:
    """A metrics table of ``n`` tiles with plausible values; the first ``flagged`` carry a seam flag."""
    m = pd.DataFrame({k: rng.normal(0, 0.2, n) for k in METRIC_COLUMNS})
    m["seam"] = rng.uniform(0.6, 1.4, n)
    m["repaired_px"] = rng.integers(1, 400, n)
    m["status"], m["review"], m["review_round"] = "ok", "unreviewed", 0
    m["flags"] = ["seam"] * flagged + [""] * (n - flagged)
    m.loc[: flagged - 1, "seam"] = 3.0
    return m


def write_summary(results: Path, section: str, summary: dict) -> Path:
    path = results / "sections" / section / "qc" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**summary, "section": section}))
    return path


def _summary(m: pd.DataFrame, section: str = "s") -> dict:
    return summarize_section(section, m, plane_shape=(100, 100), pixel_size_um=1.0, pixels_repaired=500,
                             repaired_um2=500.0, tissue_um2=8000.0, output_sha256="ab" * 32, settings=QCSettings())


def test_summary_of_a_section() -> None:
    m = fake_metrics(np.random.default_rng(0), 12, flagged=2)
    m.loc[5, "density_rel"] = -0.9
    m.loc[7, ["status", "repaired_px"]] = ["insufficient_context", 0]
    s = _summary(m)
    assert s["tiles_repaired"] == 11 and s["tiles_unrepaired"] == 1 and s["flagged_tiles"] == 2
    assert s["flags"] == {"seam": 2} and s["worst"]["seam"] == 3.0 and s["worst"]["density_rel"] == -0.9
    assert s["repaired_pct_tissue"] == pytest.approx(6.25)
    assert {k: sum(v) for k, v in s["histograms"].items()} == dict.fromkeys(HISTOGRAMS, 12)
    assert s["histograms"]["seam"][-1] == 0 and s["histograms"]["density_rel"][0] == 0


def test_stack_summary_table_links_and_page(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    results = tmp_path / "results"
    paths = [write_summary(results, s, _summary(fake_metrics(rng, 5, flagged=f))) for s, f in
             (("B0001", 0), ("B0002", 3), ("B0003", 1))]
    done = write_stack_summary(paths, results / "qc", progress=False)
    assert done == {"sections": 3, "flagged_sections": 2, "failed_sections": 0}
    table = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == [c[0] for c in COLUMNS] and table["section"].tolist() == ["B0001", "B0002", "B0003"]
    assert table["report"].tolist() == [f"../sections/B000{i}/qc/report.html" for i in (1, 2, 3)]
    assert table["flags"].tolist() == ["", "seam:3", "seam:1"]
    page = (results / "qc" / "index.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert len(data["rows"]) == 3 and data["columns"][0][0] == "section" and data["limits"]["worst_seam"] == 1.5
    assert not re.search(r'(src|href)="https?:', page) and page.count('<img src="data:image/png;base64,') == 7


def test_missing_section_summary_is_an_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="summary .* does not exist"):
        write_stack_summary([tmp_path / "nope.json"], tmp_path / "qc", progress=False)
    assert main(["summary", str(tmp_path / "nope.json"), "--out-dir", str(tmp_path / "qc")]) == 2
    assert "does not exist" in capsys.readouterr().err


def big_stack(results: Path, n: int = BIGBRAIN_SECTIONS) -> list[Path]:
    """``n`` section summaries (every 7th with flags, every 50th with a review), written as the QC does."""
    rng = np.random.default_rng(2)
    base = _summary(fake_metrics(rng, 40))
    paths = []
    for i in range(n):
        s = {**base, "flagged_tiles": int(i % 7 == 0) * int(rng.integers(1, 9)),
             "repaired_um2": float(rng.gamma(2, 2e6)), "repaired_pct_tissue": float(rng.gamma(4, 1.4)),
             "review": {"regenerated": int(i % 50 == 0), "accepted": 0, "rejected": int(i % 50 == 0)},
             "worst": {**base["worst"], "seam": float(rng.uniform(0.8, 3))}}
        paths.append(write_summary(results, f"B{i:04d}", s))
    return paths


def test_a_bigbrain_sized_stack(tmp_path: Path) -> None:
    paths = big_stack(tmp_path / "results")
    t = time.perf_counter()
    assert main(["summary", *map(str, paths), "--out-dir", str(tmp_path / "results" / "qc"), "--quiet"]) == 0
    seconds = time.perf_counter() - t
    page = tmp_path / "results" / "qc" / "index.html"
    print(f"index of {BIGBRAIN_SECTIONS} sections in {seconds:.1f} s")  # a figure, not an assertion: CI is noisy
    assert page.stat().st_size < 4_000_000
    assert len(pd.read_csv(tmp_path / "results" / "qc" / "summary.tsv", sep="\t")) == BIGBRAIN_SECTIONS


def test_a_section_flag_reaches_the_stack_table(tmp_path: Path) -> None:
    """Repairs that hold half the cells their rings predict flag the section, even with no tile flagged."""
    rng = np.random.default_rng(3)
    m = fake_metrics(rng, 40)
    m["repaired_um2"], m["density_ring"], m["cells_null_var"] = 2000.0, 1000.0, 2.0
    m["cells_repaired"] = 1
    few = _summary(m, "B0002")
    assert few["flagged_tiles"] == 0 and [f["code"] for f in few["section_flags"]] == ["section_density"]
    assert few["pooled"]["density_rel"] == pytest.approx(-0.5)
    m["cells_repaired"] = 2
    ok = _summary(m, "B0001")
    assert ok["section_flags"] == [] and ok["pooled"]["density_rel"] == pytest.approx(0.0)
    results = tmp_path / "results"
    paths = [write_summary(results, s["section"], s) for s in (ok, few)]
    assert write_stack_summary(paths, results / "qc", progress=False)["flagged_sections"] == 1
    table = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False)
    assert table["flags"].tolist() == ["", "section_density"]
    assert table["pooled_density_rel"].tolist() == pytest.approx([0.0, -0.5])
    page = (results / "qc" / "index.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert data["limits"]["pooled_density_rel"] == Thresholds().section_density


def test_a_section_summary_from_before_pooling_still_lists(tmp_path: Path) -> None:
    old = _summary(fake_metrics(np.random.default_rng(4), 5, flagged=1))
    del old["pooled"], old["section_flags"]
    results = tmp_path / "results"
    write_stack_summary([write_summary(results, "B0001", old)], results / "qc", progress=False)
    table = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False)
    assert table["flags"].tolist() == ["seam:1"] and table["pooled_density_rel"].tolist() == [""]
