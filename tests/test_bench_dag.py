"""benchmarks/bench_dag.py builds the DAGs a real run builds (its figures are in the README)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_dag_benchmark_counts_the_jobs_of_a_real_run() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_dag.py"), "--sections", "3", "--batches", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    m = re.search(r"3 sections: dry-run before planning [\d.]+ s \((\d+) jobs\), after planning [\d.]+ s \((\d+) jobs, "
                  r"2 batches per section\), one section's manifest after planning [\d.]+ s \((\d+) jobs\); "
                  r"peak RSS \d+ MiB", out.stdout)
    assert m, out.stdout + out.stderr[-2000:]
    # before: a plan per section, verify_model, plan_index, qc_summary, all; after: per section its
    # 2 repaint batches, blend, qc and manifest, then qc_summary and all; one section: its 5 jobs
    assert [int(g) for g in m.groups()] == [3 + 4, 3 * 5 + 2, 5]
