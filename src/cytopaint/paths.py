"""Where the pipeline's files live under the results folder: one definition for the workflow rules
and the package.

Per section, under ``<results>/sections/<id>/``::

    plan/tiles.tsv  plan/plan.json     the plan (rule plan)
    plan/index.tsv  plan/index.json    its own planning index, read by runs that target single
                                       sections (checkpoint plan_index --beside, or section_plan)
    batches/batch_<k>.npz              one result per repaint batch (rule repaint)
    repaired.ome.zarr  blend.json      the repaired section and its receipt (rule blend)
    qc/metrics.tsv  qc/summary.json  qc/report.html                       (rule qc)
    manifest.json                      provenance (rule manifest)

For the stack: ``model/verified.json`` (rule verify_model), ``plan/index.tsv`` and
``plan/index.json`` (checkpoint plan_index),
``qc/index.html`` and ``qc/summary.tsv`` (rule qc_summary), ``stack/repaired.ome.zarr`` and
``stack/assemble.json`` (rule assemble_stack, for the planes of one 3-D stack), ``logs/<rule>/...``.
A section id may be a Snakemake wildcard (``"{section}"``): the paths are then rule patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

PLAN_TABLE = "tiles.tsv"
PLAN_SETTINGS = "plan.json"
PLAN_INDEX = "index.tsv"
PLAN_INDEX_JSON = "index.json"
QC_METRICS = "metrics.tsv"
QC_SUMMARY = "summary.json"
QC_REPORT = "report.html"
MANIFEST = "manifest.json"
REPAIRED = "repaired.ome.zarr"
RECEIPT = "blend.json"


@dataclass(frozen=True)
class SectionPaths:
    """The files of one section (or, with ``section="{section}"``, their rule patterns)."""

    results: str
    section: str

    @property
    def root(self) -> str:
        return f"{self.results}/sections/{self.section}"

    @property
    def plan_dir(self) -> str:
        return f"{self.root}/plan"

    @property
    def plan_table(self) -> str:
        return f"{self.plan_dir}/{PLAN_TABLE}"

    @property
    def plan_settings(self) -> str:
        return f"{self.plan_dir}/{PLAN_SETTINGS}"

    @property
    def plan_index(self) -> str:
        return f"{self.plan_dir}/{PLAN_INDEX}"

    @property
    def plan_index_json(self) -> str:
        return f"{self.plan_dir}/{PLAN_INDEX_JSON}"

    def batch(self, batch: int | str) -> str:
        """The result file of one repaint batch."""
        return f"{self.root}/batches/batch_{batch}.npz"

    @property
    def repaired(self) -> str:
        return f"{self.root}/{REPAIRED}"

    @property
    def receipt(self) -> str:
        return f"{self.root}/{RECEIPT}"

    @property
    def qc_dir(self) -> str:
        return f"{self.root}/qc"

    @property
    def qc_metrics(self) -> str:
        return f"{self.qc_dir}/{QC_METRICS}"

    @property
    def qc_summary(self) -> str:
        return f"{self.qc_dir}/{QC_SUMMARY}"

    @property
    def qc_report(self) -> str:
        return f"{self.qc_dir}/{QC_REPORT}"

    @property
    def manifest(self) -> str:
        return f"{self.root}/{MANIFEST}"

    def log(self, rule: str, name: str | None = None) -> str:
        """The log of one of this section's jobs: ``logs/<rule>/<section>[/<name>].log``."""
        return f"{self.results}/logs/{rule}/{self.section}" + (f"/{name}" if name else "") + ".log"


@dataclass(frozen=True)
class StackPaths:
    """The stack-level files."""

    results: str

    def section(self, section: str) -> SectionPaths:
        return SectionPaths(self.results, section)

    @property
    def plan_index(self) -> str:
        return f"{self.results}/plan/index.tsv"

    @property
    def plan_index_json(self) -> str:
        return f"{self.results}/plan/index.json"

    @property
    def model_verified(self) -> str:
        """The card of the configured model, written once its weights are verified (rule verify_model)."""
        return f"{self.results}/model/verified.json"

    @property
    def lock(self) -> str:
        """Held by the running snakemake process: a second run on the same results folder is refused."""
        return f"{self.results}/.cytopaint.lock"

    @property
    def stack_repaired(self) -> str:
        """The repaired 3-D stack, when the sections are planes of one stack (rule assemble_stack)."""
        return f"{self.results}/stack/repaired.ome.zarr"

    @property
    def stack_receipt(self) -> str:
        return f"{self.results}/stack/assemble.json"

    @property
    def qc_index(self) -> str:
        return f"{self.results}/qc/index.html"

    @property
    def qc_summary(self) -> str:
        return f"{self.results}/qc/summary.tsv"

    @property
    def evaluation(self) -> str:
        return f"{self.results}/evaluation"

    def log(self, name: str) -> str:
        """The log of a stack-level job: ``logs/<name>.log``."""
        return f"{self.results}/logs/{name}.log"
