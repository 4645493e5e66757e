# Planning: validate each section's inputs and write its tile plan (CPU, before any GPU job).
from cytopaint.plan import review as review_table

# Review table (config `review`): rejected tiles are replanned with new seeds. A section is
# replanned when its own decisions change (params.review), not when the table's mtime does.
REVIEW_TSV = config.get("review")
REVIEW = review_table.read_review(REVIEW_TSV) if REVIEW_TSV else None
if REVIEW is not None:
    review_table.check_sections(REVIEW, SECTIONS)


# The model is every section's: its weights are verified once (sha256 against its card, the card
# against its schema), before any section is planned, and a tampered package stops the run here.
rule verify_model:
    input:
        card=MODEL_CARD,
        weights=MODEL_WEIGHTS,
    output:
        STACK.model_verified,
    log:
        STACK.log("verify_model"),
    conda:
        CONDA_ENV
    params:
        model=config["model"],
    shell:
        "cytopaint model-info {params.model:q} > {output:q} 2> {log:q}"


rule plan:
    input:
        sections=SECTIONS_TSV,
        model=STACK.model_verified,
        stores=store_metadata,
        review=[ancient(REVIEW_TSV)] if REVIEW_TSV else [],
    output:
        tiles=SECTION.plan_table,
        summary=SECTION.plan_settings,
    log:
        SECTION.log("plan"),
    conda:
        CONDA_ENV
    params:
        model=config["model"],
        out=lambda wildcards, output: str(Path(output.tiles).parent),
        tiling=as_json(config["tiling"]),
        normalization=(
            f"--normalization {shlex.quote(as_json(config['repaint']['normalization']))}"
            if config["repaint"]["normalization"]
            else ""
        ),
        review=lambda wildcards: review_table.section_params(REVIEW, wildcards.section),
        review_arg=f"--review {shlex.quote(REVIEW_TSV)}" if REVIEW_TSV else "",
        retry=retry_token,
        nfe=nfe_arg(),
    shell:
        "cytopaint plan --sections {input.sections:q} --section {wildcards.section} --model {params.model:q}"
        " --tiling {params.tiling:q} {params.normalization} {params.review_arg} {params.nfe} --record-failure"
        " --out-dir {params.out:q} 2> {log:q}"


# One planning pass over all sections fixes the batches of every section: a single checkpoint
# (not one per section), so the DAG is re-evaluated once even for thousands of sections. A section
# whose inputs are refused is recorded as failed by its plan job (--record-failure), so one bad
# section never holds back the others; the index lists it, and it gets no repaint, blend or QC.
checkpoint plan_index:
    input:
        every_section(SECTION.plan_settings),
    output:
        tsv=STACK.plan_index,
        json=STACK.plan_index_json,
    log:
        STACK.log("plan_index"),
    conda:
        CONDA_ENV
    shell:
        "cytopaint plan-index {input:q} --out {output.tsv:q} --out-json {output.json:q} --beside 2> {log:q}"


# In a run whose targets are files of single sections (a rerun of one section), each of them takes
# its batches from its own index, so that its DAG holds its own plan job, not those of all sections.
# plan_index writes these too (--beside): they are made again here only after a section's replan.
checkpoint section_plan:
    input:
        SECTION.plan_settings,
    output:
        tsv=SECTION.plan_index,
        json=SECTION.plan_index_json,
    log:
        SECTION.log("section_plan"),
    conda:
        CONDA_ENV
    shell:
        "cytopaint plan-index {input:q} --out {output.tsv:q} --out-json {output.json:q} 2> {log:q}"
