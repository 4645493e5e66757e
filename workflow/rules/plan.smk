# Planning: validate each section's inputs and write its tile plan (CPU, before any GPU job).
from cytopaint.plan import review as review_table

# Review table (config `review`): rejected tiles are replanned with new seeds. A section is
# replanned when its own decisions change (params.review), not when the table's mtime does.
REVIEW_TSV = config.get("review")
REVIEW = review_table.read_review(REVIEW_TSV) if REVIEW_TSV else None
if REVIEW is not None:
    review_table.check_sections(REVIEW, SECTIONS)


def batch_fingerprint(wildcards) -> str:
    """What a batch's pixels depend on in the plan: a re-seeded tile repaints its batch, not its section."""
    return plan_index()[wildcards.section][wildcards.batch]["fingerprint"]


rule plan:
    input:
        sections=SECTIONS_TSV,
        model=MODEL_CARD,
        review=[ancient(REVIEW_TSV)] if REVIEW_TSV else [],
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
        review=lambda wildcards: review_table.section_params(REVIEW, wildcards.section),
        review_arg=f"--review {REVIEW_TSV}" if REVIEW_TSV else "",
    shell:
        "{CYTOPAINT} plan --sections {input.sections} --section {wildcards.section} --model {config[model]}"
        " --tiling '{params.tiling}' {params.normalization} {params.review_arg} --out-dir {params.out} 2> {log}"


# One planning pass over all sections fixes the batches of every section: a single checkpoint
# (not one per section), so the DAG is re-evaluated once even for thousands of sections.
checkpoint plan_index:
    input:
        expand(f"{RESULTS}/sections/{{section}}/plan/plan.json", section=SECTIONS),
    output:
        tsv=f"{RESULTS}/plan/index.tsv",
        json=f"{RESULTS}/plan/index.json",
    log:
        f"{RESULTS}/logs/plan_index.log",
    shell:
        "{CYTOPAINT} plan-index {input} --out {output.tsv} --out-json {output.json} 2> {log}"
