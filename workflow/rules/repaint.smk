# Repaint: one GPU job per batch; a batch waits for the batches of earlier waves it takes context from.


rule repaint:
    input:
        sections=SECTIONS_TSV,
        # a replanned section reruns only the batches whose fingerprint (params.tiles) changed
        plan=ancient(SECTION.plan_table),
        summary=ancient(SECTION.plan_settings),
        model=MODEL_CARD,
        earlier=earlier_batch_files,
    output:
        SECTION.batch("{batch}"),
    wildcard_constraints:
        batch=r"\d+",
    log:
        SECTION.log("repaint", "batch_{batch}"),
    params:
        plan_dir=SECTION.plan_dir,
        repaint=as_json(config["repaint"]),
        tiles=batch_fingerprint,
    shell:
        "{CYTOPAINT} repaint-batch --sections {input.sections:q} --section {wildcards.section}"
        " --plan-dir {params.plan_dir:q} --batch {wildcards.batch} --earlier {input.earlier:q}"
        " --model {config[model]:q} --repaint {params.repaint:q} --out {output:q} 2> {log:q}"
