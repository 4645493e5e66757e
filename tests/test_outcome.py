"""Which job of a planned section failed, and why (the workflow's onerror report and stack summary)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cytopaint.paths import SectionPaths
from cytopaint.qc.outcome import JobFailure, job_failure, log_error
from cytopaint.qc.summary import write_stack_summary


def _touch(path: str, text: str = "") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def test_the_error_line_of_a_log_is_the_reason(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    assert log_error(log) is None  # no log: the job never started
    log.write_text("blend level 0:  50%|#####     | 1/2\n")
    assert log_error(log) is None
    log.write_text("progress\ncytopaint blend (section s): error: store x: chunk 'c/0/1' cannot be read\n\n")
    assert log_error(log) == "store x: chunk 'c/0/1' cannot be read"
    log.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\ntorch.OutOfMemoryError: CUDA out of memory\n")
    assert log_error(log) == "CUDA out of memory"
    log.write_text("RuntimeError: " + "x" * 1000 + "\n")
    assert len(log_error(log)) == 400


def test_the_first_failed_job_of_the_chain_is_named(tmp_path: Path) -> None:
    files = SectionPaths(str(tmp_path), "s")
    for out in (files.batch(0), files.batch(1), files.receipt, files.qc_summary, files.manifest):
        _touch(out)
    assert job_failure(files, ["0", "1"], through_manifest=True) is None

    Path(files.manifest).unlink()
    assert job_failure(files, ["0", "1"]) is None  # the QC summary is there
    assert job_failure(files, ["0", "1"], through_manifest=True).stage == "manifest"

    # batch 1 failed with an error; blend, QC and the manifest were never reached
    for out in (files.batch(1), files.receipt, files.qc_summary):
        Path(out).unlink()
    _touch(files.log("repaint", "batch_1"), "cytopaint repaint-batch (section s): error: bad tile\n")
    assert job_failure(files, ["0", "1"]) == JobFailure("s", "repaint batch 1", "bad tile",
                                                      files.log("repaint", "batch_1"))

    # a job killed without a word (SIGKILL, out of memory on a node): the first missing file's job
    _touch(files.log("repaint", "batch_1"), "sampling:  40%|####\n")
    failure = job_failure(files, ["0", "1"])
    assert failure.stage == "repaint batch 1" and "did not finish" in failure.error


def test_a_job_failure_is_a_failed_row_of_the_stack_summary(tmp_path: Path) -> None:
    results = tmp_path / "results"
    log = results / "logs" / "blend" / "s.log"
    write_stack_summary([JobFailure("s", "blend", "chunk 'c/2/2' cannot be read", str(log))], results / "qc",
                        progress=False)
    row = pd.read_csv(results / "qc" / "summary.tsv", sep="\t", keep_default_na=False).iloc[0]
    assert (row["section"], row["status"], row["report"]) == ("s", "failed", "../logs/blend/s.log")
    assert row["error"] == "blend: chunk 'c/2/2' cannot be read" and row["tiles_repaired"] == 0
    assert "1 section(s) failed and were not repaired" in (results / "qc" / "index.html").read_text()
