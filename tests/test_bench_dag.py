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


def _job_counts(work: Path, *targets: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"), "--directory",
                          str(work), "--configfile", str(work / "config.yaml"), "-n", "--cores", "1", "--quiet", "rules"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_a_single_section_target_leaves_the_other_sections_plans_out_of_its_dag(tmp_path: Path) -> None:
    """A rerun of one section takes its batches from its own index: another section whose plan must be
    made again (its plan.json gone) is not in that DAG, while a whole-stack run plans it."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_dag import write_plans, write_stack

    ids = write_stack(tmp_path, 3)
    write_plans(tmp_path, ids, 2)
    (tmp_path / "results" / "sections" / ids[1] / "plan" / "plan.json").unlink()
    assert _job_counts(tmp_path, f"results/sections/{ids[0]}/manifest.json") == {"repaint": 2, "blend": 1, "qc": 1,
                                                                                 "manifest": 1}
    assert _job_counts(tmp_path)["plan"] == 1
