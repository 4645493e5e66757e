"""The SLURM side of the workflow: profiles/slurm and profiles/default, run for real.

The `slurm` tests submit a tiny workflow (tests/data/slurm_smoke: plan -> repaint x2 -> blend,
named like the real rules) through snakemake-executor-plugin-slurm to a throw-away single-node
Slurm cluster (tests/slurm_cluster.py). The others need no cluster: they check that the profiles
parse with this snakemake and plugin, and that a local run is not hindered by the workflow
profile's cluster resources (a GPU, 16 GB).
"""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slurm_cluster import slurm_cluster  # noqa: F401  (pytest fixture)

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "tests" / "data" / "slurm_smoke" / "Snakefile"
SLURM_PROFILE = REPO / "profiles" / "slurm"
WORKFLOW_PROFILE = REPO / "profiles" / "default"
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")

# What profiles/default asks for, as the smoke jobs should get it.
EXPECTED = {  # rule: (threads, mem_mb, runtime, gpu)
    "plan": (1, 2000, 10, 0),
    "repaint": (4, 16000, 60, 1),
    "blend": (2, 8000, 30, 0),
}


def _workdir(tmp_path: Path) -> Path:
    """A copy of the smoke workflow with the real workflow profile where snakemake finds it."""
    wd = tmp_path / "wf"
    wd.mkdir()
    shutil.copy(SMOKE, wd / "Snakefile")
    shutil.copytree(WORKFLOW_PROFILE, wd / "profiles" / "default")
    return wd


def _env(base: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(base)
    env.pop("SNAKEMAKE_PROFILE", None)  # a developer's default profile must not join in
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])  # `cytopaint` and `python` for the jobs
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # nor their ~/.config/snakemake
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, diagnostics=lambda: "") -> tuple[str, float]:
    """Run snakemake in its own process group; kill the group on timeout (SIGTERM may not stop it)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout:.0f} s\n{out[-6000:]}\n{diagnostics()}")
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n{out[-6000:]}\n{diagnostics()}")
    return out, elapsed


ALL = ["blend", "plan", "repaint_S1", "repaint_S2"]


def _records(wd: Path, expected=ALL) -> dict[str, dict]:
    res = wd / "results"
    recs = {p.stem: json.loads(p.read_text()) for p in res.glob("*.json")}
    assert sorted(recs) == sorted(expected), sorted(recs)
    return recs


def _check_resources(rec: dict) -> None:
    threads, mem_mb, runtime, gpu = EXPECTED[rec["rule"]]
    assert (rec["mem_mb"], rec["runtime"], rec["gpu"]) == (mem_mb, runtime, gpu), rec


# -- no cluster needed -------------------------------------------------------------------------------
def test_local_run_with_workflow_profile(tmp_path):
    """`snakemake --cores 2` on a machine without GPUs runs the rules the profile gives a GPU and 16 GB."""
    wd = _workdir(tmp_path)
    out, _ = _run([SNAKEMAKE, "--cores", "2"], wd, _env(os.environ, tmp_path), timeout=240)
    assert "workflow specific profile profiles/default" in out, out[-3000:]
    recs = _records(wd)
    for rec in recs.values():
        assert rec["slurm_job_id"] == "", rec
        assert rec["cytopaint"].startswith("cytopaint "), rec
        _check_resources(rec)
        assert rec["threads"] == min(EXPECTED[rec["rule"]][0], 2), rec  # scaled down to --cores
    assert [r["rule"] for r in recs["blend"]["inputs"]] == ["repaint", "repaint"]


def test_installed_slurm_profile_is_found_by_name(tmp_path):
    """After `cp -r profiles/slurm ~/.config/snakemake/slurm`, `--profile slurm` finds it and it parses."""
    wd = _workdir(tmp_path)
    env = _env(os.environ, tmp_path)
    missing = subprocess.run([SNAKEMAKE, "--profile", "slurm", "--dry-run"], cwd=wd, env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode != 0 and "no profile.yaml (or config.yaml) found" in missing.stderr, missing.stderr
    shutil.copytree(SLURM_PROFILE, tmp_path / "xdg" / "snakemake" / "slurm")
    out, _ = _run([SNAKEMAKE, "--profile", "slurm", "--dry-run"], wd, env, timeout=120)
    assert "Using profiles slurm and workflow specific profile profiles/default" in out, out[-3000:]
    assert "This was a dry-run" in out, out[-3000:]


# -- on a local Slurm cluster ------------------------------------------------------------------------
def _partition_config(cluster, tmp_path: Path) -> Path:
    """profiles/slurm/partitions.example.yaml with the local cluster's partition names."""
    example = yaml.safe_load((SLURM_PROFILE / "partitions.example.yaml").read_text())["partitions"]
    cpu, gpu = cluster.partitions[:2]
    path = tmp_path / "partitions.yaml"
    path.write_text(yaml.safe_dump({"partitions": {cpu: example["cpu"], gpu: example["gpu"]}}))
    return path


@pytest.mark.slurm
@pytest.mark.parametrize("routing", ["default-partition", "partition-config"])
def test_smoke_workflow_through_slurm(slurm_cluster, tmp_path, routing, record_property):  # noqa: F811
    """profiles/slurm as shipped runs every job as a SLURM job with the workflow profile's resources.

    default-partition: the only addition is the local cluster's partition, as a user sets theirs;
    the whole workflow.
    partition-config: no partition; the plugin picks one per job from partitions.example.yaml
    (GPU jobs to the GPU partition); only plan -> repaint_S1, to save time.
    """
    cluster = slurm_cluster
    wd = _workdir(tmp_path)
    # a command-line --default-resources replaces the profile's whole mapping: restate its defaults
    cmd = [SNAKEMAKE, "--profile", str(SLURM_PROFILE), "--slurm-keep-successful-logs", "--default-resources",
           "runtime=30", "mem_mb=2000"]
    if routing == "default-partition":
        cmd += [f"slurm_partition={cluster.partition}"]
        expected_partition = {"plan": cluster.partition, "repaint": cluster.partition, "blend": cluster.partition}
    else:
        cmd += ["--slurm-partition-config", str(_partition_config(cluster, tmp_path)), "--",
                "results/repaint_S1.json"]
        cpu, gpu = cluster.partitions[:2]
        expected_partition = {"plan": cpu, "repaint": gpu}

    def diagnostics() -> str:
        logs = sorted((wd / ".snakemake" / "slurm_logs").rglob("*.log"))
        return cluster.logs() + "".join(f"\n--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)

    out, elapsed = _run(cmd, wd, _env(cluster.env, tmp_path), timeout=300, diagnostics=diagnostics)
    (tmp_path / "snakemake.out").write_text(out)
    record_property("slurm_smoke_seconds", round(elapsed, 1))
    print(f"smoke workflow through SLURM ({routing}): {elapsed:.1f} s")

    recs = _records(wd, ALL if routing == "default-partition" else ["plan", "repaint_S1"])
    job_ids = {name: rec["slurm_job_id"] for name, rec in recs.items()}
    assert all(job_ids.values()), job_ids  # every job ran inside a SLURM allocation
    assert len(set(job_ids.values())) == len(recs), job_ids  # each as its own SLURM job
    for rec in recs.values():
        assert rec["cytopaint"].startswith("cytopaint "), rec
        _check_resources(rec)
        threads, mem_mb, runtime, gpu = EXPECTED[rec["rule"]]
        # inside the job snakemake scales threads to the CPUs the node really has
        assert rec["threads"] == min(threads, os.cpu_count()), rec
        # What Slurm itself granted (jobs stay in slurmctld for MinJobAge after they end).
        info = cluster.job_info(rec["slurm_job_id"])
        assert info["JobState"] == "COMPLETED", info
        assert info["Partition"] == expected_partition[rec["rule"]], info
        assert int(info["NumCPUs"]) == threads, info
        assert info["MinMemoryNode"] == f"{mem_mb}M", info
        assert info["TimeLimit"] == f"{runtime // 60:02d}:{runtime % 60:02d}:00", info
        if gpu:
            assert "gpu:1" in info.get("TresPerJob", ""), info
            assert rec["cuda_visible_devices"] != "", rec
        else:
            assert "gpu" not in info.get("TresPerJob", ""), info
    # the dependencies plan -> repaint -> blend held: each job read its inputs' records
    assert recs["repaint_S1"]["inputs"][0]["slurm_job_id"] == job_ids["plan"]
    if "blend" in recs:
        assert [r["slurm_job_id"] for r in recs["blend"]["inputs"]] == [job_ids["repaint_S1"],
                                                                        job_ids["repaint_S2"]]


def test_the_slurm_profile_submits_a_sections_cpu_stages_as_one_job(tmp_path):
    """With profiles/slurm, blend, qc and manifest of a planned section form one group job (a dry run)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_dag import write_plans, write_stack

    ids = write_stack(tmp_path, 2)
    write_plans(tmp_path, ids, batches=2)
    env = _env(os.environ, tmp_path)
    out, _ = _run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml", "--profile",
                   str(SLURM_PROFILE), "--dry-run"], tmp_path, env, timeout=120)
    groups = re.findall(r"Group job finish \(jobs in lexicogr\. order\):", out)
    assert len(groups) == len(ids), out[-3000:]
    assert out.count("rule repaint:") == 2 * len(ids)  # the GPU jobs stay one per batch
