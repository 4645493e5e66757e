# Provenance: one manifest.json per section (inputs, model, config and its hash, tile plan with
# seeds and review decisions, sampler, output checksum, QC, code version, jobs).


rule manifest:
    input:
        sections=SECTIONS_TSV,
        plan=SECTION.plan_table,
        summary=SECTION.plan_settings,
        batches=all_batch_files,
        receipt=SECTION.receipt,
        qc=SECTION.qc_summary,
        model=MODEL_CARD,
    output:
        SECTION.manifest,
    log:
        SECTION.log("manifest"),
    conda:
        CONDA_ENV
    params:
        plan_dir=lambda wildcards, input: str(Path(input.plan).parent),
        config=json.dumps(config, sort_keys=True),
    shell:
        "printf '%s' {params.config:q} | cytopaint manifest --sections {input.sections:q}"
        " --section {wildcards.section} --plan-dir {params.plan_dir:q} --batches {input.batches:q}"
        " --receipt {input.receipt:q} --qc {input.qc:q} --config - --out {output:q} 2> {log:q}"
