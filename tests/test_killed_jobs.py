"""Jobs killed with SIGKILL between writing their temporary file and renaming it onto the output.

A ``sitecustomize`` module on the killed run's PYTHONPATH makes every Python process SIGKILL
itself when it is about to rename a finished file onto an output whose name matches
``CYTOPAINT_TEST_KILL`` (the last moment a kill can land before the output exists). The workflow
is then rerun, as the README says, and must finish with the outputs of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_workflow import REPO, snakemake, write_stack

from cytopaint.io.batchfile import read_batch
from cytopaint.provenance.manifest import VOLATILE_JOB_KEYS, stable_view

KILL_HOOK = '''
import fnmatch, os, signal
_target = os.environ.get("CYTOPAINT_TEST_KILL")
if _target:
    _replace = os.replace

    def _kill_before_rename(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), _target):
            os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _kill_before_rename
'''


def batch_digests(section: Path) -> dict[str, list[tuple]]:
    """Every batch file of a section: its tiles' ids, positions and sha256 of pixels and ownership."""
    batches = {}
    for path in sorted((section / "batches").glob("batch_*.npz")):
        tiles, _ = read_batch(path)
        batches[path.name] = [(t.tile, t.y0, t.x0, hashlib.sha256(t.pixels.tobytes()).hexdigest(),
                               hashlib.sha256(t.owned.tobytes()).hexdigest()) for t in tiles]
    return batches


def _outputs(work: Path) -> dict:
    """What the section's outputs must reproduce: pixels, tile results, QC tables and the manifest up to times and hosts."""
    root = work / "results" / "sections" / "s0"
    batches = batch_digests(root)
    summary = json.loads((root / "qc" / "summary.json").read_text())
    summary["job"] = {k: v for k, v in summary["job"].items() if k not in VOLATILE_JOB_KEYS}
    return {"level0": json.loads((root / "blend.json").read_text())["sha256_level0"], "batches": batches,
            "metrics": (root / "qc" / "metrics.tsv").read_text(), "summary": summary,
            "manifest": stable_view(json.loads((root / "manifest.json").read_text()))}


def _killed_run(work: Path, hook: Path, target: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CYTOPAINT_TEST_KILL": target,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", "--rerun-incomplete"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_each_job_killed_before_its_rename_reruns_to_the_uninterrupted_outputs(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    snakemake(tmp_path)
    expected = _outputs(tmp_path)
    shutil.rmtree(tmp_path / "results")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)

    root = tmp_path / "results" / "sections" / "s0"
    # (output name the kill waits for, the output's path, where the killed job's unrenamed file is left)
    for target, output, leftover in [("batch_*.npz", "batches/batch_*.npz", "batches/.batch_*.tmp*.npz"),
                                     ("repaired.ome.zarr", "repaired.ome.zarr", "repaired.ome.zarr.partial/*"),
                                     ("metrics.tsv", "qc/metrics.tsv", "qc/.metrics.tmp*.tsv"),
                                     ("manifest.json", "manifest.json", ".manifest.tmp*.json")]:
        killed = _killed_run(tmp_path, hook, target)
        assert killed.returncode != 0, f"{target}: the hook did not kill the job"
        assert list(root.glob(leftover)), f"{target}: no unrenamed file {leftover} left: {killed.stderr[-2000:]}"
        assert not list(root.glob(output)), f"{target}: a killed job's file was taken for its output"
    snakemake(tmp_path, "--rerun-incomplete")
    assert _outputs(tmp_path) == expected
