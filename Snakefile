# cytopaint: repair artifacts in stacks of cell-body stained sections with a DDPM and RePaint.
# `snakemake --cores all` repairs the demo stack (config/config.yaml); see README.md.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


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
