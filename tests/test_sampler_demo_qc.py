"""benchmarks/sampler_demo_qc.py: the QC of a finished results folder, as one row beside other sampler settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from test_provenance import make_manifest
from test_qc_report import build_section, run_qc

from cytopaint.provenance.manifest import write_manifest
from cytopaint.qc.metrics import QCSettings, Thresholds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sampler_demo_qc import qc_row  # noqa: E402


def test_a_results_folder_gives_its_flags_metrics_and_pooled_cells(tmp_path: Path) -> None:
    b = build_section(tmp_path, holes=((20, 26, 10, 12), (44, 8, 6, 6)))
    run_qc(b)
    write_manifest(make_manifest(b), b["out"] / "manifest.json")
    row = qc_row(tmp_path / "results", QCSettings())
    m = pd.read_csv(b["out"] / "qc" / "metrics.tsv", sep="\t")
    m = m[m["repaired_px"] > 0]
    assert row["nfe"] == "2" and row["tiles"] == len(m) > 0  # the test config: 2 steps, no resampling
    assert row["flagged"] == m["flags"].notna().sum() and row["median_seam"] == round(m["seam"].median(), 3)
    expected = (m["density_ring"] * m["repaired_um2"] * 1e-6).sum()
    assert row["s0_cells_rel"] == round(m["cells_repaired"].sum() / expected - 1, 3)
    # a section flag needs |rel| beyond the limit and significance: a zero limit and z flag any deficit
    strict = qc_row(tmp_path / "results", QCSettings(thresholds=Thresholds(section_density=0.0, significance_z=0.0)))
    assert strict["s0_flagged"] == (row["s0_cells_rel"] != 0)
