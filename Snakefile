# cytopaint: repair artifacts in stacks of cell-body stained sections with a DDPM and RePaint.
# `snakemake --cores all` repairs the demo stack (config/config.yaml); see README.md.
import gc
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# A whole stack's DAG is ~10^5 jobs made of millions of small objects: with its default thresholds
# Python's cycle collector keeps walking them while snakemake builds the DAG (dry run after planning
# at 7,404 sections: 108 s with the default thresholds, 96 s with these; benchmarks/bench_dag.py).
# Collect 100x less often: snakemake's own process makes little cyclic garbage, and every job runs
# in a process of its own.
gc.set_threshold(100_000, 50, 100)


configfile: Path(workflow.basedir) / "config" / "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/repaint.smk"
include: "workflow/rules/blend.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/stack.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"


localrules:
    all,
    verify_model,
    plan_index,
    section_plan,
    qc_summary,


rule all:
    default_target: True
    input:
        repaired_sections,
        STACK.qc_index,
        [STACK.stack_receipt] if ONE_STACK else [],


onstart:
    lock_results()


onsuccess:
    report_stack()


onerror:
    report_stack()
    report_failed_jobs()
