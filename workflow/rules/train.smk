# Regenerating the bundled demo model: `snakemake train_demo --cores all` (CPU: hours; GPU: minutes),
# then copy results/demo_model/demo/ to src/cytopaint/models/demo/. Two stages, as the bundled model
# was made (its card records the exact commands): 1,000 steps on 6 synthetic sections, then 6,300
# steps on 12 sections starting from the stage-1 weights (`--init`). Stage 1 of the bundled model
# packaged its raw weights at step 1000, taken from a longer run (its card, `initialised_from`).
DEMO_DATA = {"shape": "1024 1024", "pixel_size": 2, "seed": 100, "damage": 0.02}
DEMO_STAGES = {
    "stage1": {
        "sections": "t0 t1 t2 t3 t4 t5",
        "train": "--steps 1000 --lr 5e-4 --warmup 200 --checkpoint-every 250 --seed 1",
    },
    "demo": {
        "sections": " ".join(f"t{i}" for i in range(12)),
        "train": f"--init {RESULTS}/demo_model/stage1"
        " --steps 6300 --lr 3e-4 --warmup 100 --checkpoint-every 100 --seed 2",
    },
}
DEMO_TRAIN_COMMON = (
    "--arch tiny-64 --batch-size 32 --ema-decay 0.999 --weights-dtype float16"
)


rule train_demo:
    input:
        f"{RESULTS}/demo_model/demo/model.json",


rule train_demo_stage:
    input:
        lambda wildcards: (
            f"{RESULTS}/demo_model/stage1/model.json"
            if wildcards.stage == "demo"
            else []
        ),
    output:
        f"{RESULTS}/demo_model/{{stage}}/model.json",
    log:
        STACK.log("train_demo_{stage}"),
    wildcard_constraints:
        stage="stage1|demo",
    conda:
        CONDA_ENV
    params:
        data=lambda wildcards: f"{RESULTS}/demo_model/data-{wildcards.stage}",
        out=lambda wildcards, output: str(Path(output[0]).parent),
        sections=lambda wildcards: DEMO_STAGES[wildcards.stage]["sections"],
        train=lambda wildcards: DEMO_STAGES[wildcards.stage]["train"],
        d=DEMO_DATA,
        common=DEMO_TRAIN_COMMON,
    shell:
        "(cytopaint synth --out {params.data} --sections {params.sections} --shape {params.d[shape]}"
        " --pixel-size {params.d[pixel_size]} --seed {params.d[seed]} --damage {params.d[damage]} --quiet"
        " && cytopaint train --sections {params.data}/sections.tsv --out {params.out} --name demo"
        " --pixel-size {params.d[pixel_size]} {params.common} {params.train} --resume) 2> {log}"
