# Regenerating the bundled demo model: `snakemake train_demo --cores all` (CPU: hours; GPU: minutes),
# then copy results/demo_model/demo/ to src/cytopaint/models/demo/. The settings are those of the
# bundled model (its card records the exact command).
DEMO_TRAIN = {
    "sections": "t0 t1 t2 t3 t4 t5",
    "shape": "1024 1024",
    "pixel_size": 2,
    "seed": 100,
    "damage": 0.02,
    "train": "--arch tiny-64 --steps 6000 --batch-size 32 --lr 5e-4 --warmup 200 --ema-decay 0.999"
    " --checkpoint-every 250 --seed 1 --weights-dtype float16",
}


rule train_demo:
    output:
        f"{RESULTS}/demo_model/demo/model.json",
    log:
        STACK.log("train_demo"),
    conda:
        CONDA_ENV
    params:
        data=f"{RESULTS}/demo_model/data",
        out=lambda wildcards, output: str(Path(output[0]).parent),
        t=DEMO_TRAIN,
    shell:
        "(cytopaint synth --out {params.data} --sections {params.t[sections]} --shape {params.t[shape]}"
        " --pixel-size {params.t[pixel_size]} --seed {params.t[seed]} --damage {params.t[damage]} --quiet"
        " && cytopaint train --sections {params.data}/sections.tsv --out {params.out} --name demo"
        " --pixel-size {params.t[pixel_size]} {params.t[train]} --resume) 2> {log}"
