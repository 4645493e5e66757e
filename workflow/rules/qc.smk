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
        plan=f"{RESULTS}/sections/{{section}}/plan/tiles.tsv",
        summary=f"{RESULTS}/sections/{{section}}/plan/plan.json",
        receipt=f"{RESULTS}/sections/{{section}}/blend.json",
    output:
        metrics=f"{RESULTS}/sections/{{section}}/qc/metrics.tsv",
        report=f"{RESULTS}/sections/{{section}}/qc/report.html",
        summary=f"{RESULTS}/sections/{{section}}/qc/summary.json",
    log:
        f"{RESULTS}/logs/qc/{{section}}.log",
    params:
        plan_dir=lambda wildcards, input: str(Path(input.plan).parent),
        out_dir=lambda wildcards, output: str(Path(output.report).parent),
        qc=as_json(config.get("qc") or {}),
    shell:
        "{CYTOPAINT} qc --sections {input.sections} --section {wildcards.section} --plan-dir {params.plan_dir}"
        " --receipt {input.receipt} --qc '{params.qc}' --out-dir {params.out_dir} 2> {log}"


rule qc_summary:
    input:
        expand(f"{RESULTS}/sections/{{section}}/qc/summary.json", section=SECTIONS),
    output:
        index=f"{RESULTS}/qc/index.html",
        tsv=f"{RESULTS}/qc/summary.tsv",
    log:
        f"{RESULTS}/logs/qc_summary.log",
    params:
        out_dir=lambda wildcards, output: str(Path(output.index).parent),
    shell:
        "{CYTOPAINT} summary {input} --out-dir {params.out_dir} 2> {log}"
