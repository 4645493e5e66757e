"""The real workflow through `snakemake --profile profiles/slurm` on a local single-node Slurm cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_killed_jobs import batch_digests
from test_slurm import SLURM_PROFILE, _env, _run
from test_workflow import REPO, snakemake, write_stack

from cytopaint.io import volume
from slurm_cluster import slurm_cluster  # noqa: F401  (pytest fixture)


@pytest.mark.slurm
def test_two_section_stack_is_repaired_through_slurm(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    work = tmp_path / "stack"
    write_stack(work, ("s0", "s1"))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--profile", str(SLURM_PROFILE),
           "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(work / "config.yaml"),
           "--retries", "0", "--default-resources", f"slurm_partition={slurm_cluster.partition}", "runtime=30",
           "mem_mb=2000"]
    out, seconds = _run(cmd, work, _env(slurm_cluster.env, tmp_path), timeout=900, diagnostics=slurm_cluster.logs)
    for s in ("s0", "s1"):
        section = work / "results" / "sections" / s
        receipt = json.loads((section / "blend.json").read_text())
        assert receipt["pixels_repaired"] > 0
        src = np.asarray(volume.open_level(str(work / "data" / f"{s}.ome.zarr")))
        dst = np.asarray(volume.open_level(str(section / "repaired.ome.zarr")))
        repaired = np.asarray(volume.open_level(f"{section / 'repaired.ome.zarr'}#labels/repaired")) > 0
        assert np.array_equal(src[~repaired], dst[~repaired]) and repaired.any()
        for batch in (section / "batches").glob("batch_*.npz"):
            with np.load(batch) as z:
                assert json.loads(str(z["meta"]))["slurm_job_id"]  # sampled inside a SLURM job
    print(f"2-section stack through SLURM in {seconds:.0f} s")


def _repaint_jobs(cluster) -> list[tuple[str, str]]:
    """(SLURM job id, state) of the repaint jobs in the queue (the plugin's comment names the rule)."""
    out = cluster.run("squeue", "--noheader", "--format=%i|%T|%k", check=False).stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line.count("|") == 2]
    return [(i, state) for i, state, comment in rows if comment.startswith("rule_repaint_")]


def _outputs(section: Path) -> dict:
    """A section's level-0 digest and every batch's tiles."""
    return {"level0": json.loads((section / "blend.json").read_text())["sha256_level0"],
            "batches": batch_digests(section)}


@pytest.mark.slurm
def test_a_repaint_job_cancelled_and_one_requeued_mid_run_end_as_an_uninterrupted_run(slurm_cluster,  # noqa: F811
                                                                                       tmp_path: Path) -> None:
    """`scancel` of one running repaint job and `scontrol requeue` of another: the run (the profile's
    `retries: 1`) finishes, and the section equals a local uninterrupted run at the same threads."""
    threads = ["--set-threads", "repaint=2"]  # CPU results depend on the thread count (README)
    cluster, reference, work = slurm_cluster, tmp_path / "reference", tmp_path / "stack"
    for w in (reference, work):
        write_stack(w, ("s1",))
        config = yaml.safe_load((w / "config.yaml").read_text())
        config["tiling"]["max_batch"] = 1  # one tile per batch: several repaint jobs to interrupt
        (w / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(reference, *threads)
    expected = _outputs(reference / "results" / "sections" / "s1")
    assert len(expected["batches"]) >= 2, expected

    cmd = [str(Path(sys.executable).parent / "snakemake"), "--profile", str(SLURM_PROFILE),
           "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(work / "config.yaml"),
           *threads, "--default-resources", f"slurm_partition={cluster.partition}", "runtime=30", "mem_mb=2000"]
    log = tmp_path / "snakemake.out"  # a file, not a pipe: nobody reads the output while the run goes on
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=work, env=_env(cluster.env, tmp_path), stdout=sink,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    faults: dict[str, str] = {}  # SLURM job id -> what was done to it
    deadline = time.monotonic() + 900
    try:
        while len(faults) < 2 and proc.poll() is None and time.monotonic() < deadline:
            running = [i for i, state in _repaint_jobs(cluster) if state == "RUNNING" and i not in faults]
            for job in running[: 2 - len(faults)]:
                time.sleep(2)  # inside the job: snakemake started, torch loading or sampling
                fault = "scancel" if not faults else "requeue"
                cluster.run(*(["scancel", job] if fault == "scancel" else ["scontrol", "requeue", job]))
                faults[job] = fault
            time.sleep(0.5)
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out = log.read_text()
        pytest.fail(f"the SLURM run did not finish in 900 s\n{out[-6000:]}\n{cluster.logs()}")
    out = log.read_text()
    assert sorted(faults.values()) == ["requeue", "scancel"], (faults, out[-4000:])
    assert proc.returncode == 0, f"{out[-6000:]}\n{cluster.logs()}"
    for job, fault in faults.items():
        info = cluster.job_info(job)
        if fault == "scancel":
            assert info["JobState"] == "CANCELLED", info
        else:  # Slurm ran the same job again
            assert info["JobState"] == "COMPLETED" and int(info["Restarts"]) == 1, info
    assert "failed, SLURM status is: 'CANCELLED'" in out, out[-4000:]  # snakemake saw it and resubmitted
    assert _outputs(work / "results" / "sections" / "s1") == expected
