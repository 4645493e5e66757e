# Provenance: one manifest.json per section (inputs, model, config and its hash, tile plan with
# seeds and review decisions, sampler, output checksum, QC, code version, jobs).
import shlex


rule manifest:
    input:
        sections=SECTIONS_TSV,
        plan=f"{RESULTS}/sections/{{section}}/plan/tiles.tsv",
        summary=f"{RESULTS}/sections/{{section}}/plan/plan.json",
        batches=all_batch_files,
        receipt=f"{RESULTS}/sections/{{section}}/blend.json",
        qc=f"{RESULTS}/sections/{{section}}/qc/summary.json",
        model=MODEL_CARD,
    output:
        f"{RESULTS}/sections/{{section}}/manifest.json",
    log:
        f"{RESULTS}/logs/manifest/{{section}}.log",
    params:
        plan_dir=lambda wildcards, input: str(Path(input.plan).parent),
        config=shlex.quote(json.dumps(config, sort_keys=True)),
    shell:
        "printf '%s' {params.config} | {CYTOPAINT} manifest --sections {input.sections} --section {wildcards.section}"
        " --plan-dir {params.plan_dir} --batches {input.batches} --receipt {input.receipt} --qc {input.qc}"
        " --config - --out {output} 2> {log}"
