# Blend: write repaired.ome.zarr beside a receipt. The store is not a declared output (snakemake
# would delete or copy it); the receipt records what was written.


rule blend:
    input:
        sections=SECTIONS_TSV,
        plan=SECTION.plan_table,
        batches=all_batch_files,
    output:
        SECTION.receipt,
    log:
        SECTION.log("blend"),
    conda:
        CONDA_ENV
    params:
        store=SECTION.repaired,
    shell:
        "cytopaint blend --sections {input.sections:q} --section {wildcards.section}"
        " --batches {input.batches:q} --out {params.store:q} --receipt {output:q} --replace 2> {log:q}"
