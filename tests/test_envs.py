"""envs/ (conda environments for `--software-deployment-method conda`) agrees with the tested pins, and
the workflow passes `snakemake --lint` and `snakefmt --check`.

Conda cannot be installed here, so the environment files are checked against what CI installs:
every pip pin is a pin of requirements/constraints.txt, and every package cytopaint needs at run
time (its requirements and theirs, from the installed metadata) is in the file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ENV = REPO / "envs" / "cytopaint.yaml"


def _pins(lines: list[str]) -> dict[str, str]:
    """``{canonical name: version}`` of ``name==version`` lines."""
    pins = {}
    for line in lines:
        name, version = line.split("==")
        pins[canonicalize_name(name)] = version
    return pins


def _constraints() -> dict[str, str]:
    lines = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    return _pins([ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")])


def _runtime_closure(package: str = "cytopaint") -> set[str]:
    """Every distribution ``package`` needs at run time (no extras), as this machine's markers select."""
    needed, todo = set(), [Requirement(r) for r in metadata.requires(package) or []]
    while todo:
        req = todo.pop()
        extras = sorted(req.extras) or [""]
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        name = canonicalize_name(req.name)
        if name in needed:
            continue
        needed.add(name)
        for r in metadata.requires(req.name) or []:
            sub = Requirement(r)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in [""] + sorted(req.extras)):
                todo.append(sub)
    return needed


def _env() -> tuple[list[str], dict[str, str]]:
    spec = yaml.safe_load(ENV.read_text())
    deps = spec["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    return conda, _pins(pip)


def test_the_conda_env_pins_the_tested_versions_of_everything_cytopaint_needs() -> None:
    conda, pip = _env()
    constraints = _constraints()
    wrong = {n: (v, constraints.get(n)) for n, v in pip.items() if constraints.get(n) != v}
    assert not wrong, f"{ENV.name}: pins that are not requirements/constraints.txt's (env, constraints): {wrong}"
    from_conda = {canonicalize_name(re.split(r"[=<>]", d)[0]) for d in conda}
    missing = _runtime_closure() - set(pip) - from_conda
    assert not missing, f"{ENV.name} lacks {sorted(missing)}, which cytopaint needs at run time"
    python = next(d for d in conda if d.startswith("python="))
    assert python == f"python={sys.version_info.major}.{sys.version_info.minor}"  # the Python CI tests


def test_every_rule_runs_in_the_conda_env() -> None:
    rules = sorted((REPO / "workflow" / "rules").glob("*.smk"))
    for path in rules:
        text = path.read_text()
        n_rules = len(re.findall(r"^\s*(?:rule|checkpoint) \w+:", text, re.M))
        n_shell = len(re.findall(r"^\s*shell:", text, re.M))
        assert len(re.findall(r"^\s*conda:\s*\n\s*CONDA_ENV,?\s*$", text, re.M)) == n_shell, path.name
        assert n_shell <= n_rules
    assert (REPO / "workflow" / "rules" / "../../envs/cytopaint.yaml").resolve() == ENV


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_snakemake_lint_finds_nothing() -> None:
    out = _run(sys.executable, "-m", "snakemake", "--lint")
    assert out.returncode == 0 and "Lints for" not in out.stdout + out.stderr, (out.stdout + out.stderr)[-4000:]


def test_the_workflow_is_formatted_as_snakefmt_would() -> None:
    snakefmt = Path(sys.executable).with_name("snakefmt")
    if not snakefmt.exists():
        pytest.fail("snakefmt is not installed: it is in the test extra (pip install -e '.[test]')")
    out = _run(str(snakefmt), "--check", "Snakefile", "workflow")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
