# Blend: write repaired.ome.zarr beside a receipt. The store is not a declared output (snakemake
# would delete or copy it); the receipt records what was written.


rule blend:
    input:
        sections=SECTIONS_TSV,
        plan=f"{RESULTS}/sections/{{section}}/plan/tiles.tsv",
        batches=all_batch_files,
    output:
        f"{RESULTS}/sections/{{section}}/blend.json",
    log:
        f"{RESULTS}/logs/blend/{{section}}.log",
    params:
        store=lambda wildcards: f"{section_dir(wildcards.section)}/repaired.ome.zarr",
    shell:
        "{CYTOPAINT} blend --sections {input.sections} --section {wildcards.section}"
        " --batches {input.batches} --out {params.store} --receipt {output} --replace 2> {log}"
