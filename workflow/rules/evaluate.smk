# Evaluation (`snakemake evaluate`): the paper's validation protocol on held-out sections, with
# classical baselines (cytopaint evaluate). Not part of `all`; results in {results}/evaluation/.
EVALUATE = config["evaluate"]
EVAL_DIR = STACK.evaluation
HELDOUT_TSV = EVALUATE["sections"] or f"{EVAL_DIR}/heldout/sections.tsv"

if not EVALUATE["sections"]:

    rule synth_heldout:
        output:
            HELDOUT_TSV,
        log:
            STACK.log("synth_heldout"),
        conda:
            CONDA_ENV
        threads: 8
        params:
            out=lambda wildcards, output: str(Path(output[0]).parent),
            sections=" ".join(f"h{i}" for i in range(EVALUATE["synthetic"]["sections"])),
            shape=" ".join(str(v) for v in EVALUATE["synthetic"]["shape"]),
            synthetic=EVALUATE["synthetic"],
            pixel_size=modelpkg.read_card(config["model"])["pixel_size_um"],
        shell:
            "cytopaint synth --out {params.out} --sections {params.sections} --shape {params.shape}"
            " --pixel-size {params.pixel_size} --seed {params.synthetic[seed]}"
            " --damage {params.synthetic[damaged_fraction]} --workers {threads} 2> {log}"


rule evaluate:
    input:
        sections=HELDOUT_TSV,
    output:
        summary=f"{EVAL_DIR}/summary.md",
        patches=f"{EVAL_DIR}/patches.tsv",
        table=f"{EVAL_DIR}/summary.tsv",
        fcd=f"{EVAL_DIR}/fcd.tsv",
    log:
        STACK.log("evaluate"),
    conda:
        CONDA_ENV
    params:
        out=lambda wildcards, output: str(Path(output.summary).parent),
        settings=as_json(
            {k: config[k] for k in ("model", "tiling", "repaint", "evaluate")}
        ),
    shell:
        "cytopaint evaluate --settings {params.settings:q} --sections {input.sections:q} --out {params.out:q} 2> {log:q}"
