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
    log:
        SECTION.log("repaint", "batch_{batch}"),
    wildcard_constraints:
        batch=r"\d+",
    conda:
        CONDA_ENV
    params:
        model=config["model"],
        plan_dir=lambda wildcards, input: str(Path(input.plan).parent),
        repaint=as_json(config["repaint"]),
        # how the network runs: the same maths, so like gpu_batch it changes no pixel beyond rounding
        execution=as_json(config["execution"]),
        tiles=batch_fingerprint,
    shell:
        "cytopaint repaint-batch --sections {input.sections:q} --section {wildcards.section}"
        " --plan-dir {params.plan_dir:q} --batch {wildcards.batch} --earlier {input.earlier:q}"
        " --model {params.model:q} --repaint {params.repaint:q} --execution {params.execution:q}"
        " --out {output:q} 2> {log:q}"
