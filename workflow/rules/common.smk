# Shared set-up: config and sections validation, paths, and plan look-ups after the planning pass.
import fcntl
import json
import os
import platform
import shlex
import sys
import time
from functools import lru_cache
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from cytopaint.diffusion.execution import Execution
from cytopaint.io.sections import check_store, read_sections
from cytopaint.io.volume import metadata_file
from cytopaint.models import package as modelpkg
from cytopaint.paths import StackPaths
from cytopaint.plan.stage import TilingConfig
from cytopaint.qc.outcome import JobFailure, job_failure
from cytopaint.repaint.stage import RepaintConfig

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
STACK = StackPaths(RESULTS)  # the stack's files
SECTION = STACK.section("{section}")  # a section's files, as rule patterns
# no sections table given: the demo stack, which rule synth_demo writes
DEMO = config["sections"] is None
SECTIONS_TSV = f"{RESULTS}/demo/data/sections.tsv" if DEMO else config["sections"]
# Every job calls the package's CLI as `cytopaint`, a shell function (shell.prefix) that runs it with
# snakemake's own Python (also from a virtual environment that is not activated) or, in the jobs'
# conda environment (envs/, --software-deployment-method conda), with that environment's Python and
# this checkout's src/ on PYTHONPATH. (shell.prefix is formatted: braces are doubled.)
# every rule's software, relative to workflow/rules/
CONDA_ENV = "../../envs/cytopaint.yaml"
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    _PYTHON = f"PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}} python"
else:
    _PYTHON = shlex.quote(sys.executable)
shell.prefix(
    f'set -euo pipefail; cytopaint() {{{{ {_PYTHON} -m cytopaint.cli "$@"; }}}}; '
)
MODEL_CARD = str(modelpkg.resolve(config["model"]) / modelpkg.CARD_NAME)
MODEL_WEIGHTS = str(modelpkg.resolve(config["model"]) / modelpkg.WEIGHTS_NAME)


def _sections_table():
    """The validated sections table (None for the demo: its table is made by a rule)."""
    if DEMO:
        return None
    table = read_sections(SECTIONS_TSV, base=Path(SECTIONS_TSV).resolve().parent)
    validate(
        table, "../schemas/sections.schema.yaml", set_default=False
    )  # it has no defaults
    for row in table.itertuples():
        for ref, what in ((row.image, "image"), (row.mask, "mask")):
            check_store(ref, f"section {row.section} ({SECTIONS_TSV}): {what}")
    return table


TABLE = _sections_table()
SECTIONS = list(config["demo"]["sections"]) if DEMO else TABLE.index.tolist()
# the 3-D stack whose planes all sections are (rule assemble_stack puts them back together)
ONE_STACK = (
    TABLE["image"].iloc[0]
    if TABLE is not None and (TABLE["z"] != "").all() and TABLE["image"].nunique() == 1
    else None
)


@lru_cache(maxsize=1)
def target_sections() -> frozenset[str] | None:
    """The sections whose files are this run's only targets (a single-section rerun), else None.

    Such a run takes their batches from each section's own planning index (checkpoint
    section_plan), not from the stack's (checkpoint plan_index, which waits for the plans of all
    sections): its DAG then holds those sections' jobs alone. (Known once the DAG is built.)
    """
    prefix = os.path.join(os.path.abspath(RESULTS), "sections", "")
    found = set()
    for target in workflow.dag_settings.targets:
        path = os.path.abspath(target)
        section = path[len(prefix) :].split(os.sep)[0]
        if not path.startswith(prefix) or section not in SECTIONS:
            return None
        found.add(section)
    return frozenset(found) or None


@lru_cache(maxsize=1)
def _failed_before() -> frozenset[str]:
    """Sections whose planning failed in an earlier run (from the last planning indexes)."""
    paths = [STACK.plan_index_json] + [
        STACK.section(s).plan_index_json for s in sorted(target_sections() or ())
    ]
    return frozenset(
        s
        for path in map(Path, paths)
        if path.is_file()
        for s in json.loads(path.read_text())["failed"]
    )


def retry_token(wildcards) -> str:
    """A new value on every run for a section that failed before, so that its planning runs again
    (a fixed input store may keep its metadata, and snakemake reruns only on changed content).
    """
    return str(time.time_ns()) if wildcards.section in _failed_before() else ""


def store_metadata(wildcards) -> list[str]:
    """The metadata files of a section's image and mask stores: a rewritten store is planned again."""
    if DEMO:
        return []
    row = TABLE.loc[wildcards.section]
    return [p for p in (metadata_file(row["image"]), metadata_file(row["mask"])) if p]


# a bad model card fails here, before any job, and so do a bad tiling or repaint block (values
# that go together, sampler settings)
MODEL_CARD_JSON = modelpkg.read_card(config["model"])
try:
    TILING = TilingConfig(**config["tiling"])
    NFE_PER_TILE = RepaintConfig(**config["repaint"]).nfe(
        MODEL_CARD_JSON["diffusion"]["steps"]
    )
    Execution(**config["execution"])
except ValueError as err:
    raise WorkflowError(f"config: {err}") from None


def nfe_arg() -> str:
    """``--nfe`` for the plan job when its batches are sized by run time (else nothing: the plans of
    a stack that does not size by time stay as they are when the sampler changes)."""
    return f"--nfe {NFE_PER_TILE}" if TILING.job_minutes is not None else ""


def every_section(path: str) -> list[str]:
    """A section file pattern (e.g. ``SECTION.manifest``) for every section of the stack."""
    return expand(path, section=SECTIONS)


def plan_index() -> dict:
    """The planning pass's index: ``sections`` (batches of every planned section with their dependencies
    and fingerprints) and ``failed`` (sections whose inputs were refused, with the reason).
    """
    path = checkpoints.plan_index.get().output.json
    return _read_index(path, Path(path).stat().st_mtime_ns)


def section_index(section: str) -> dict:
    """The planning index this run takes a section's batches from: the stack's, or in a run that
    targets single sections, the section's own."""
    if target_sections() is None:
        return plan_index()
    path = checkpoints.section_plan.get(section=section).output.json
    return _read_index(path, Path(path).stat().st_mtime_ns)


def planned(section: str) -> dict:
    """The batches of a planned section (none for a failed one; a run that targets the files of a
    section whose planning failed stops, with the reason)."""
    index = section_index(section)
    if target_sections() is not None and section in index["failed"]:
        raise WorkflowError(
            f"section {section} was not planned: {index['failed'][section]}"
        )
    return index["sections"].get(section, {})


def _planned_sections() -> list[str]:
    """The sections, in stack order, but for those whose planning failed."""
    failed = plan_index()["failed"]
    return [s for s in SECTIONS if s not in failed]


def repaired_sections(wildcards) -> list[str]:
    """Every section's manifest, but for the sections whose planning failed."""
    return [STACK.section(s).manifest for s in _planned_sections()]


def repaired_receipts(wildcards) -> list[str]:
    """The blend receipts of every section but those whose planning failed."""
    return [STACK.section(s).receipt for s in _planned_sections()]


def section_outcomes(wildcards) -> list[str]:
    """Per section in stack order, its QC summary, or the plan that records why it failed."""
    failed = plan_index()["failed"]
    return [
        STACK.section(s).plan_settings if s in failed else STACK.section(s).qc_summary
        for s in SECTIONS
    ]


def _listing(items: list[str], most: int = 50) -> str:
    more = [f"... and {len(items) - most} more"] if len(items) > most else []
    return "".join(f"\n  {line}" for line in items[:most] + more)


def report_stack() -> None:
    """Say on the console what was not repaired: failed sections, and tiles short of context."""
    if not Path(STACK.plan_index).is_file():
        return
    index = pd.read_csv(STACK.plan_index, sep="\t", keep_default_na=False)
    failed = index[index["status"] == "failed"]
    if len(failed):
        print(
            f"cytopaint: {len(failed)} of {len(index)} sections FAILED and were not repaired (see {STACK.plan_index} "
            f"and {STACK.qc_index}):"
            + _listing([f"{r.section}: {r.error}" for r in failed.itertuples()]),
            file=sys.stderr,
        )
    short = index[
        (index["status"] == "planned") & (index["insufficient_context_tiles"] > 0)
    ]
    if len(short):
        tiles = _listing(
            [
                f"{r.section}: {r.insufficient_context_tiles} tiles"
                for r in short.itertuples()
            ]
        )
        print(
            f"cytopaint: WARNING: in {len(short)} sections, tiles lack context and their artifact pixels are NOT "
            f"repaired (see plan/plan.json of each, and the QC reports):{tiles}",
            file=sys.stderr,
        )


def _whole_stack_run() -> bool:
    """Whether this run was asked for the whole stack (the default target), not for single files."""
    targets = set(workflow.dag_settings.targets)
    return not targets or bool(targets & {"all", STACK.qc_index})


def report_failed_jobs() -> None:
    """After a failed run: name on the console each planned section a job of which failed, and why.

    With ``--keep-going`` the other sections are repaired, but the stack summary (rule qc_summary)
    waits for every section; for a whole-stack run it is then written here, with those sections
    listed as failed (the reason, a link to the failed job's log) and the others as they are.
    """
    only = target_sections()
    sections = SECTIONS if only is None else sorted(only)
    paths = [
        Path(
            STACK.plan_index_json if only is None else STACK.section(s).plan_index_json
        )
        for s in sections
    ]
    if not all(path.is_file() for path in paths):
        return  # planning did not finish: its own error says why
    index = {"sections": {}, "failed": {}}
    for path in set(paths):
        for key, value in json.loads(path.read_text()).items():
            index[key].update(value)
    if any(s not in index["sections"] and s not in index["failed"] for s in sections):
        return  # an index of an earlier, different stack
    outcomes: list[str | JobFailure] = []
    failures: list[JobFailure] = []
    for s in sections:
        files = STACK.section(s)
        if s in index["failed"]:
            outcomes.append(files.plan_settings)
            continue
        failure = job_failure(files, index["sections"][s], through_manifest=True)
        if failure:
            failures.append(failure)
        outcomes.append(
            failure if failure and failure.stage != "manifest" else files.qc_summary
        )
    if not failures:
        return
    unsummarized = any(isinstance(o, JobFailure) for o in outcomes)
    where = ""
    if unsummarized and _whole_stack_run():
        # imported here: it brings scipy and matplotlib, which the DAG does not need
        from cytopaint.qc.summary import write_stack_summary

        write_stack_summary(outcomes, Path(STACK.qc_index).parent, progress=False)
        where = f"; they are listed in {STACK.qc_index}"
    print(
        f"cytopaint: {len(failures)} of {len(sections)} sections FAILED after planning (a job of theirs "
        f"failed){where}; fix the cause and run the same command again:"
        + _listing(
            [f"{f.section}: {f.stage}: {f.error} (log: {f.log})" for f in failures]
        ),
        file=sys.stderr,
    )


_LOCK: list[int] = []


def lock_results() -> None:
    """Hold an exclusive lock on the results folder for as long as this snakemake process runs.

    Snakemake's own lock lives in the working directory, so two runs from different folders could
    write the same results; the operating system drops this one when the process ends, however it ends.
    """
    Path(RESULTS).mkdir(parents=True, exist_ok=True)
    fd = os.open(STACK.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise WorkflowError(
            f"the results folder {RESULTS} is in use by another snakemake run ({holder}); wait for "
            f"it to end (a run that was killed holds nothing: its lock went with it)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(
        fd,
        f"pid {os.getpid()} on {platform.node()}, working directory {os.getcwd()}\n".encode(),
    )
    _LOCK.append(fd)


@lru_cache(maxsize=64)
def _read_index(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


def all_batch_files(wildcards) -> list[str]:
    files = STACK.section(wildcards.section)
    return [files.batch(b) for b in planned(wildcards.section)]


def earlier_batch_files(wildcards) -> list[str]:
    files = STACK.section(wildcards.section)
    return [
        files.batch(b) for b in planned(wildcards.section)[wildcards.batch]["after"]
    ]


def as_json(block: dict) -> str:
    """A config block as compact JSON, for a rule's params (quote it in the shell with ``:q``), its
    keys sorted: the same settings in another order in a config file rerun nothing."""
    return json.dumps(block, separators=(",", ":"), sort_keys=True)


def batch_fingerprint(wildcards) -> str:
    """What a batch's pixels depend on in the plan: a re-seeded tile repaints its batch, not its section."""
    return planned(wildcards.section)[wildcards.batch]["fingerprint"]


def after_planning(wildcards) -> list[str]:
    """No file: the rule waits for the planning checkpoint, so snakemake decides whether it runs
    once the batches are known. (Before, every blend counts as pending, and a replan of one
    section would rerun the QC and manifests of all sections.)"""
    section_index(wildcards.section)
    return []
