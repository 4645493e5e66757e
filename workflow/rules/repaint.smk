# Repaint: one GPU job per batch; a batch waits for the batches of earlier waves it takes context from.


rule repaint:
    input:
        sections=SECTIONS_TSV,
        # a replanned section reruns only the batches whose fingerprint (params.tiles) changed
        plan=ancient(f"{RESULTS}/sections/{{section}}/plan/tiles.tsv"),
        summary=ancient(f"{RESULTS}/sections/{{section}}/plan/plan.json"),
        model=MODEL_CARD,
        earlier=earlier_batch_files,
    output:
        f"{RESULTS}/sections/{{section}}/batches/batch_{{batch}}.npz",
    wildcard_constraints:
        batch=r"\d+",
    log:
        f"{RESULTS}/logs/repaint/{{section}}/batch_{{batch}}.log",
    params:
        plan_dir=lambda wildcards, input: str(Path(input.plan).parent),
        repaint=as_json(config["repaint"]),
        tiles=batch_fingerprint,
    shell:
        "{CYTOPAINT} repaint-batch --sections {input.sections} --section {wildcards.section}"
        " --plan-dir {params.plan_dir} --batch {wildcards.batch} --earlier {input.earlier}"
        " --model {config[model]} --repaint '{params.repaint}' --out {output} 2> {log}"
