"""A throw-away single-node Slurm cluster for tests: munged, slurmctld and slurmd as plain daemons.

Use it from a test module (or from conftest.py, to share one cluster between modules)::

    from slurm_cluster import slurm_cluster  # noqa: F401  (the pytest fixture)

    @pytest.mark.slurm
    def test_something(slurm_cluster, tmp_path):
        subprocess.run(["snakemake", "--profile", ...], env=slurm_cluster.env, cwd=tmp_path, check=True)

or, outside pytest, ``with SlurmCluster.start() as cluster: ...``.

Everything lives in one temporary directory: ``slurm.conf`` and ``gres.conf``, a munge key and
socket, state, spool, pid and log files. The daemons run in the foreground as children of the test
process; on exit the cluster cancels its jobs and stops each daemon by its PID (SIGTERM, then
SIGKILL), never by name. Ports are picked free, so several clusters (pytest-xdist workers) can run
side by side on one machine.

Requirements: the Debian packages ``slurmctld slurmd slurm-client munge`` (``.ci/install-slurm.sh``)
and root (slurmd launches jobs). Without them the fixture skips with a message saying so.

The node is the local host (``hostname -s``) with ``nproc`` CPUs and ~90 % of ``MemTotal``, but at
least ``min_cpus`` (8) CPUs and ``min_mem_mb`` (40,000 MB), and ``gpus`` (2) GPUs whose "devices" are
harmless character devices (/dev/null, /dev/zero, ...): ``SlurmdParameters=config_overrides`` makes
Slurm schedule what the configuration says rather than what the hardware has, so jobs that ask for
the workflow profile's resources (``repaint``: 4 CPUs, 16 GB, a GPU) are accepted on a 2-core CI
machine, two at a time. Nothing enforces these limits (no cgroups): the jobs must be small in fact.
Inside a job snakemake still scales ``threads`` down to the real core count.

Slurm 22.05 without slurmdbd: ``sacct`` does not work here (use the squeue status command).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

DAEMONS = ("slurmctld", "slurmd", "munged")
CLIENTS = ("sinfo", "squeue", "sbatch", "scancel", "scontrol", "srun")
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
INSTALL_HINT = ("install them with `.ci/install-slurm.sh` (as root: apt-get install slurmctld slurmd "
                "slurm-client munge)")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def unavailable_reason() -> str | None:
    """Why a local cluster cannot be started here, or None if it can."""
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if missing:
        return f"Slurm/munge programs not found ({', '.join(missing)}); {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd launches the jobs); run the SLURM tests as root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal not found in /proc/meminfo")


@dataclasses.dataclass
class SlurmCluster:
    """A running local cluster. ``env`` is os.environ plus SLURM_CONF and a PATH for its clients."""

    root: Path
    conf: Path
    env: dict[str, str]
    node: str
    partitions: list[str]
    cpus: int
    mem_mb: int
    gpus: int
    procs: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)

    @property
    def partition(self) -> str:
        """The default partition (the first)."""
        return self.partitions[0]

    # -- start / stop -----------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def start(cls, root: Path | None = None, *, partitions: Sequence[str] = ("cytopaint", "cytopaint_gpu"),
              min_cpus: int = 8, min_mem_mb: int = 40_000, gpus: int = 2, extra_conf: str = "",
              timeout: float = 60.0) -> Iterator[SlurmCluster]:
        """Start a cluster in ``root`` (a new temporary directory if None), yield it, stop it.

        Every partition holds the one node; the first is the default. ``extra_conf`` is appended to
        slurm.conf (e.g. ``"SlurmdDebug=debug2\n"``).
        """
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        # Unix sockets (munge's, slurmstepd's in the spool dir) must have short paths.
        own_root = root is None or len(str(Path(root).resolve())) > 60
        root = Path(tempfile.mkdtemp(prefix="cytopaint-slurm-", dir="/tmp")) if own_root else Path(root)
        cluster = cls._configure(root, partitions=partitions, min_cpus=min_cpus, min_mem_mb=min_mem_mb, gpus=gpus,
                                 extra_conf=extra_conf)
        try:
            cluster._start_daemons(timeout)
            yield cluster
        finally:
            cluster.stop()
            if own_root:
                shutil.rmtree(root, ignore_errors=True)

    @classmethod
    def _configure(cls, root: Path, *, partitions: Sequence[str], min_cpus: int, min_mem_mb: int, gpus: int,
                   extra_conf: str = "") -> SlurmCluster:
        root = root.resolve()
        for sub in ("etc", "munge", "state", "spool", "log", "run", "bin"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "munge", 0o700)
        node = socket.gethostname().split(".")[0]
        cpus = max(os.cpu_count() or 1, min_cpus)
        mem_mb = max(int(0.9 * _mem_total_mb()), min_mem_mb)
        user = getpass.getuser()
        conf = root / "etc" / "slurm.conf"
        gres = f" Gres=gpu:{gpus}" if gpus else ""
        partition_lines = "".join(
            f"PartitionName={p} Nodes={node} Default={'YES' if i == 0 else 'NO'} MaxTime=INFINITE State=UP\n"
            for i, p in enumerate(partitions))
        conf.write_text(f"""\
# Written by tests/slurm_cluster.py for a throw-away single-node test cluster.
ClusterName=cytopaint
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / 'munge' / 'munge.socket'}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}
SlurmdPidFile={root / 'run' / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
PlugStackConfig={root / 'etc' / 'plugstack.conf'}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=7200
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} CPUs={cpus} RealMemory={mem_mb}{gres} State=UNKNOWN
{partition_lines}{extra_conf}""")
        # Slurm drops GPUs without a device file; harmless character devices stand in for them.
        if gpus > len(FAKE_GPU_DEVICES):
            raise ValueError(f"at most {len(FAKE_GPU_DEVICES)} fake GPUs")
        (root / "etc" / "gres.conf").write_text(
            "".join(f"NodeName={node} Name=gpu File={dev}\n" for dev in FAKE_GPU_DEVICES[:gpus]))
        (root / "etc" / "plugstack.conf").write_text("")
        # snakemake-executor-plugin-slurm-jobstep (2.x) drops every SLURM_* variable, SLURM_CONF
        # included, before the job's inner `srun`; on a cluster whose slurm.conf is not at the
        # default path that srun would find no configuration. A wrapper that knows it stands in.
        real_srun = _which("srun")
        shim = root / "bin" / "srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{real_srun}" "$@"\n')
        shim.chmod(0o755)
        env = dict(os.environ)
        for var in list(env):  # a test run from inside a Slurm job must not leak that job's settings
            if var.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")):
                del env[var]
        env["SLURM_CONF"] = str(conf)
        # the srun wrapper first, then this interpreter's bin (snakemake, cytopaint, python)
        env["PATH"] = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent), env.get("PATH", ""),
                                       "/usr/sbin"])
        return cls(root=root, conf=conf, env=env, node=node, partitions=list(partitions), cpus=cpus, mem_mb=mem_mb,
                   gpus=gpus)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        try:
            self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                env=self.env, start_new_session=True)
        finally:
            log.close()
        (self.root / "run" / f"{name}.popen.pid").write_text(f"{self.procs[name].pid}\n")

    def _start_daemons(self, timeout: float) -> None:
        m = self.root / "munge"
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--socket={m / 'munge.socket'}",
                               f"--key-file={key}", f"--pid-file={m / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"])
        self._wait(lambda: (m / "munge.socket").exists(), timeout, "munged to open its socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, "slurmctld to answer")
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_ready, timeout, f"node {self.node} to become idle")

    def _node_ready(self) -> bool:
        state = self.node_state()
        if any(bad in state for bad in ("drain", "inval", "fail")):  # a configuration error: say why now
            node = self.run("scontrol", "show", "node", self.node, check=False).stdout
            raise RuntimeError(f"node {self.node} is {state}:\n{node}\n{self.logs()}")
        return state == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop slurmd, slurmctld and munged by their PIDs."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                self.run("scancel", "--full", f"--user={getpass.getuser()}", check=False, timeout=10)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and self.run(
                        "squeue", "--noheader", "--states=RUNNING,COMPLETING,PENDING", check=False,
                        timeout=10).stdout.strip():
                    time.sleep(0.3)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    # -- helpers for tests -------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command (a Slurm client, snakemake, ...) against this cluster; text output captured."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def node_state(self) -> str:
        """The node's state as sinfo says it (``idle``, ``mixed``, ``allocated``, ``drained``, ...)."""
        r = self.run("sinfo", "--noheader", "--Node", "--format=%T", check=False)
        if r.returncode != 0:
            return ""
        states = {line.strip().rstrip("*~#!%$@^-").lower() for line in r.stdout.splitlines() if line.strip()}
        return ",".join(sorted(states))  # one line per partition

    def job_info(self, job_id: str | int) -> dict[str, str]:
        """``scontrol show job`` as a dict.

        Jobs stay visible for MinJobAge=7200 s after they end: longer than a whole CI run, so a slow
        machine cannot purge a job before a test reads it (300 s did, on a CI run)."""
        out = self.run("scontrol", "--oneliner", "show", "job", str(job_id)).stdout
        return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)

    def logs(self, tail: int = 40) -> str:
        """The last lines of each daemon's log, for failure messages."""
        parts = []
        for name in DAEMONS:
            log, out = self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"
            f = log if log.exists() else out  # .out: what the daemon printed before it opened its log
            if f.exists():
                lines = [ln for ln in f.read_text(errors="replace").splitlines() if "pmix" not in ln][-tail:]
                parts.append(f"--- {f} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(parts)


# -- pytest fixture: one cluster per process, shared by every module that imports the fixture -------
_shared: dict = {"cm": None, "cluster": None, "users": 0}


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    """A running single-node Slurm cluster (session scope); skips if Slurm is not installed here."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no local Slurm cluster: {reason}")
    if _shared["cluster"] is None:
        cm = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
        _shared["cluster"] = cm.__enter__()
        _shared["cm"] = cm
    _shared["users"] += 1
    try:
        yield _shared["cluster"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            cm, _shared["cm"], _shared["cluster"] = _shared["cm"], None, None
            cm.__exit__(None, None, None)
