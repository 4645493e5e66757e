# QC: per-section tile metrics and report (qc/), then the stack summary (results/qc/).


def after_planning(wildcards) -> list[str]:
    """No file: the rule waits for the planning checkpoint, so snakemake decides whether it runs
    once the batches are known. (Before, every blend counts as pending, and a replan of one
    section would rerun the QC and manifests of all sections.)"""
    checkpoints.plan_index.get()
    return []


rule qc:
    input:
        planned=after_planning,
        sections=SECTIONS_TSV,
        plan=SECTION.plan_table,
        summary=SECTION.plan_settings,
        receipt=SECTION.receipt,
    output:
        metrics=SECTION.qc_metrics,
        report=SECTION.qc_report,
        summary=SECTION.qc_summary,
    log:
        SECTION.log("qc"),
    params:
        plan_dir=SECTION.plan_dir,
        out_dir=SECTION.qc_dir,
        qc=as_json(config.get("qc") or {}),
    shell:
        "{CYTOPAINT} qc --sections {input.sections:q} --section {wildcards.section} --plan-dir {params.plan_dir:q}"
        " --receipt {input.receipt:q} --qc {params.qc:q} --out-dir {params.out_dir:q} 2> {log:q}"


rule qc_summary:
    input:
        section_outcomes,
    output:
        index=STACK.qc_index,
        tsv=STACK.qc_summary,
    log:
        STACK.log("qc_summary"),
    params:
        out_dir=lambda wildcards, output: str(Path(output.index).parent),
    shell:
        "{CYTOPAINT} summary {input:q} --out-dir {params.out_dir:q} 2> {log:q}"
