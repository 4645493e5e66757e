# QC: per-section tile metrics and report (qc/), then the stack summary (results/qc/).


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
    conda:
        CONDA_ENV
    params:
        plan_dir=lambda wildcards, input: str(Path(input.plan).parent),
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        qc=as_json(config.get("qc") or {}),
    shell:
        "cytopaint qc --sections {input.sections:q} --section {wildcards.section} --plan-dir {params.plan_dir:q}"
        " --receipt {input.receipt:q} --qc {params.qc:q} --out-dir {params.out_dir:q} 2> {log:q}"


rule qc_summary:
    input:
        section_outcomes,
    output:
        index=STACK.qc_index,
        tsv=STACK.qc_summary,
    log:
        STACK.log("qc_summary"),
    conda:
        CONDA_ENV
    params:
        out_dir=lambda wildcards, output: str(Path(output.index).parent),
    shell:
        "cytopaint summary {input:q} --out-dir {params.out_dir:q} 2> {log:q}"
