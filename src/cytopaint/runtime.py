"""What ran, and where and when: the code version and the record of one job.

Every job of the pipeline (a repaint batch, QC, the manifest) records the same fields, so the
manifest can list them side by side: `JobClock.record` gives Python version, host, SLURM job id,
start, end and seconds; `device_record` adds the device, GPU, CPU threads and torch/CUDA versions of a job that
ran a network.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@lru_cache(maxsize=1)
def code_version() -> dict[str, str | bool | None]:
    """``{"version", "git_commit", "dirty"}``; commit and dirty are None outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"version": __version__, "git_commit": commit, "dirty": bool(status) if status is not None else None}


def code_version_string() -> str:
    """``version+g<commit>[.dirty]``, or the version alone outside a git checkout."""
    v = code_version()
    if not v["git_commit"]:
        return str(v["version"])
    return f"{v['version']}+g{str(v['git_commit'])[:12]}{'.dirty' if v['dirty'] else ''}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class JobClock:
    """Started when a job starts; `record` when it ends."""

    def __init__(self) -> None:
        self.started = _now()
        self._t0 = time.perf_counter()

    def seconds(self) -> float:
        """Wall seconds since the start."""
        return time.perf_counter() - self._t0

    def record(self) -> dict[str, Any]:
        """Python version, host, SLURM job id, start, end (UTC, ISO 8601) and wall seconds."""
        return {"python": platform.python_version(), "host": platform.node(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "started": self.started, "ended": _now(),
                "seconds": round(self.seconds(), 3)}


def device_record(device: Any) -> dict[str, Any]:
    """The device a network ran on (a ``torch.device``), its GPU name, torch's CPU threads and the torch and CUDA
    versions. The thread count belongs to a result: CPU convolutions split their sums by thread, so the same tile
    and seed give other last bits (and then other cells) at another count."""
    import torch

    return {"device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "cuda": torch.version.cuda}
