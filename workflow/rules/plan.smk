# Planning: validate each section's inputs and write its tile plan (CPU, before any GPU job).


rule plan:
    input:
        sections=SECTIONS_TSV,
        model=MODEL_CARD,
    output:
        tiles=f"{RESULTS}/sections/{{section}}/plan/tiles.tsv",
        summary=f"{RESULTS}/sections/{{section}}/plan/plan.json",
    log:
        f"{RESULTS}/logs/plan/{{section}}.log",
    params:
        out=lambda wildcards, output: str(Path(output.tiles).parent),
        tiling=as_json(config["tiling"]),
        normalization=(
            f"--normalization '{as_json(config['repaint']['normalization'])}'"
            if config["repaint"]["normalization"]
            else ""
        ),
    shell:
        "{CYTOPAINT} plan --sections {input.sections} --section {wildcards.section} --model {config[model]}"
        " --tiling '{params.tiling}' {params.normalization} --out-dir {params.out} 2> {log}"


# One planning pass over all sections fixes the batches of every section: a single checkpoint
# (not one per section), so the DAG is re-evaluated once even for thousands of sections.
checkpoint plan_index:
    input:
        expand(f"{RESULTS}/sections/{{section}}/plan/plan.json", section=SECTIONS),
    output:
        f"{RESULTS}/plan/index.tsv",
    log:
        f"{RESULTS}/logs/plan_index.log",
    shell:
        "{CYTOPAINT} plan-index {input} --out {output} 2> {log}"
