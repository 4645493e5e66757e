"""The version of the code that ran: package version, git commit and whether the tree was dirty."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

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
    v = code_version()
    if not v["git_commit"]:
        return str(v["version"])
    return f"{v['version']}+g{str(v['git_commit'])[:12]}{'.dirty' if v['dirty'] else ''}"
