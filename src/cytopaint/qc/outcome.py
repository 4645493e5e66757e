"""What became of a planned section in a run that failed: which of its jobs failed, and why.

Once a section is planned, its files are made in one chain: every repaint batch, the blend
receipt, the QC summary, the manifest. Snakemake deletes the outputs of a job that fails (and of a
job it is about to rerun), so the first missing file of the chain names the job that failed or was
never reached, and that job's log holds the reason. `job_failure` finds it for one section; the
workflow's ``onerror`` handler uses it to list, in the stack summary and on the console, the
sections a ``--keep-going`` run could not finish, while every other section is repaired.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cytopaint.paths import SectionPaths

# the last line of a failed cytopaint command ("cytopaint blend (section s): error: ...") or of a
# Python traceback ("ValueError: ...")
_ERROR_LINE = re.compile(r"(?:: error: |^(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Interrupt)\b:?\s*)(?P<why>.*)$")
_MAX_REASON = 400


@dataclass(frozen=True)
class JobFailure:
    """A section's first job that did not produce its file: ``stage`` (e.g. ``"repaint batch 3"``), why, its log."""

    section: str
    stage: str
    error: str
    log: str


def log_error(log: str | Path) -> str | None:
    """The reason a job failed, from its log: its last error line (None if the log has none or is missing)."""
    path = Path(log)
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        m = _ERROR_LINE.search(line)
        if m:
            reason = m.group("why").strip() or line
            return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"
    return None


def _chain(files: SectionPaths, batches: Iterable[str], through_manifest: bool) -> list[tuple[str, str, str]]:
    """(stage, file, log) of each job of a planned section, in the order they run."""
    chain = [(f"repaint batch {b}", files.batch(b), files.log("repaint", f"batch_{b}")) for b in batches]
    chain += [("blend", files.receipt, files.log("blend")), ("qc", files.qc_summary, files.log("qc"))]
    if through_manifest:
        chain.append(("manifest", files.manifest, files.log("manifest")))
    return chain


def job_failure(files: SectionPaths, batches: Iterable[str], *, through_manifest: bool = False) -> JobFailure | None:
    """The job of a planned section that failed, or None when its files are all there.

    Of the missing files, the first whose job's log holds an error is reported; when no log does
    (the job was killed, or never started because an earlier one failed), the first missing one is,
    as a job that did not finish. ``through_manifest`` also checks the manifest (after the QC summary).
    """
    missing = [(stage, log) for stage, out, log in _chain(files, batches, through_manifest) if not Path(out).exists()]
    if not missing:
        return None
    for stage, log in missing:
        reason = log_error(log)
        if reason is not None:
            return JobFailure(files.section, stage, reason, log)
    stage, log = missing[0]
    return JobFailure(files.section, stage, "the job did not finish (killed, out of time or memory, or not reached; "
                      "see its log and snakemake's)", log)
