# Shared set-up: config and sections validation, paths, and plan look-ups after the planning pass.
import json
import shlex
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from snakemake.utils import validate

from cytopaint.io.sections import check_store, read_sections
from cytopaint.models import package as modelpkg
from cytopaint.paths import StackPaths

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
STACK = StackPaths(RESULTS)  # the stack's files
SECTION = STACK.section("{section}")  # a section's files, as rule patterns
SECTIONS_TSV = config["sections"]
DEMO = config["demo"]["enabled"]
# The package's CLI, also when snakemake runs from a virtual environment that is not activated.
CYTOPAINT = "cytopaint" if shutil.which("cytopaint") else f"{sys.executable} -m cytopaint.cli"
MODEL_CARD = str(modelpkg.resolve(config["model"]) / modelpkg.CARD_NAME)


def _sections() -> list[str]:
    """Section ids: the demo's (its table is made by a rule), or the validated sections table's."""
    if DEMO:
        return list(config["demo"]["sections"])
    table = read_sections(SECTIONS_TSV, base=Path(SECTIONS_TSV).resolve().parent)
    validate(table.drop(columns=[]), "../schemas/sections.schema.yaml")
    for row in table.itertuples():
        for ref, what in ((row.image, "image"), (row.mask, "mask")):
            check_store(ref, f"section {row.section} ({SECTIONS_TSV}): {what}")
    return table.index.tolist()


SECTIONS = _sections()
modelpkg.read_card(config["model"])  # a bad model card fails here, before any job


def every_section(path: str) -> list[str]:
    """A section file pattern (e.g. ``SECTION.manifest``) for every section of the stack."""
    return expand(path, section=SECTIONS)


def plan_index() -> dict:
    """Batches of every section with their dependencies and fingerprints (the planning pass's index)."""
    path = checkpoints.plan_index.get().output.json
    return _read_index(path, Path(path).stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _read_index(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


def all_batch_files(wildcards) -> list[str]:
    files = STACK.section(wildcards.section)
    return [files.batch(b) for b in plan_index()[wildcards.section]]


def earlier_batch_files(wildcards) -> list[str]:
    files = STACK.section(wildcards.section)
    return [files.batch(b) for b in plan_index()[wildcards.section][wildcards.batch]["after"]]


def as_json(block: dict) -> str:
    """A config block as compact JSON, for a rule's params (quote it in the shell with ``:q``)."""
    return json.dumps(block, separators=(",", ":"))
