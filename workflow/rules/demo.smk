# The demo stack: synthetic sections with artifacts and ground truth, written by `cytopaint synth`.
if DEMO:

    rule synth_demo:
        output:
            SECTIONS_TSV,
        log:
            STACK.log("synth_demo"),
        conda:
            CONDA_ENV
        params:
            out=lambda wildcards, output: str(Path(output[0]).parent),
            sections=" ".join(config["demo"]["sections"]),
            shape=" ".join(str(v) for v in config["demo"]["shape"]),
            demo=config["demo"],
        shell:
            "cytopaint synth --out {params.out} --sections {params.sections} --shape {params.shape}"
            " --pixel-size {params.demo[pixel_size_um]} --seed {params.demo[seed]}"
            " --damage {params.demo[damaged_fraction]} 2> {log:q}"
