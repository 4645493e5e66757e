#!/usr/bin/env bash
# One GPU session, as run on a lent H100 / H200 (results in docs/evaluation/): GPU tests, sampler
# timings, and the evaluation of the demo model on 1 mm² patches of held-out synthetic sections.
#
#   [SKIP_BENCH=1] [SKIP_EXECUTION=1] [SKIP_PARETO=1] [PER_BIN=4] \
#       bash benchmarks/gpu_session.sh OUT_DIR [PATCHES_PER_BIN]
#
# Uses the machine's python3 with torch; packages it lacks may come as wheels in .whl/ (zarr,
# dask, jsonschema and their needs). Everything lands in OUT_DIR/gpu_session.tgz and logs beside it.
set -u -o pipefail
out=${1:?usage: gpu_session.sh OUT_DIR [PATCHES_PER_BIN]}
per_bin=${2:-12}
mkdir -p "$out/eval"
out=$(cd "$out" && pwd)
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log="$out/session.log"
{
    date -u; nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"
    # held-out sections of the config (seed 200, 40 x 1536 x 2048 px at 2 µm), rendered on all CPUs
    (time python3 -m cytopaint.cli synth --out /tmp/heldout --sections $(seq -f 'h%g' 0 39) --shape 1536 2048 \
        --pixel-size 2 --seed 200 --damage 0 --workers 16 --quiet) > "$out/synth.log" 2>&1 &
    synth=$!
    echo "== GPU tests"
    timeout 240 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py -s 2>&1 | tail -15
    [ "${SKIP_BENCH:-0}" = 1 ] || {
        echo "== sampler timings"; timeout 90 python3 benchmarks/bench_gpu_sampler.py 2>&1
        echo "== cytopaint bench: PAPER_1024 at the planner's window shapes, the demo model; paper's sampler, ours"
        shapes=$(for h in 1024 512 256 128; do for w in 1024 512 256 128; do printf -- '--shape %sx%s ' "$h" "$w"; done; done)
        # shellcheck disable=SC2086
        timeout 240 python3 -m cytopaint.cli bench paper-1024 --batch 4 --timed-nfe 20 $shapes \
            --out "$out/bench-paper" 2>&1
        timeout 60 python3 -m cytopaint.cli bench demo --batch 512 --timed-nfe 40 --out "$out/bench-demo" 2>&1
        [ "${SKIP_EXECUTION:-0}" = 1 ] || {
            echo "== PAPER_1024 run eager, channels-last, compiled (config 'execution'; warm-up = compile time)"
            timeout 420 python3 -m cytopaint.cli bench paper-1024 --batch 4 --timed-nfe 20 --sampler default=50:5:2 \
                --execution eager --execution channels-last --execution compile --execution channels-last+compile \
                --execution channels-last+compile=reduce-overhead --out "$out/bench-execution" 2>&1
        }
        echo "== BigBrain projection: the planner's windows on one synthetic 3.3 cm section x the bench's seconds"
        (cd benchmarks && timeout 120 python3 project_bigbrain.py --bench "$out/bench-paper/bench.json" --sections 1 \
            --out "$out/projection.json") 2>&1
        echo "== the same for the planner's cheapest setting (README 'Cells': core 0.75, min_known 0.125, windows to 128 px)"
        (cd benchmarks && timeout 120 python3 project_bigbrain.py --bench "$out/bench-paper/bench.json" --sections 1 \
            --core-fraction 0.75 --min-known 0.125 --min-window 128 --out "$out/projection-cells.json") 2>&1
    }
    wait $synth; cat "$out/synth.log" | tail -4
    echo "== evaluation, $per_bin patches per bin"
    time timeout 330 python3 -m cytopaint.cli evaluate --config config/config.yaml --sections /tmp/heldout/sections.tsv \
        --device cuda --settings "{\"evaluate\": {\"patches_per_bin\": $per_bin, \"batch_size\": 1024, \"workers\": 14}}" \
        --out /tmp/eval --quiet 2>&1 | tail -20
    rm -rf /tmp/eval/work
    [ "${SKIP_PARETO:-0}" = 1 ] || {
        echo "== sampler settings vs the paper's reference (cytopaint pareto), ${PER_BIN:-4} patches per bin"
        time PY=python3 HELDOUT=/tmp/heldout/sections.tsv timeout 420 bash benchmarks/sampler_pareto.sh gpu /tmp/pareto 2>&1 \
            | tail -15
    }
    date -u
} 2>&1 | tee "$log"
tar czf "$out/gpu_session.tgz" -C /tmp eval pareto 2>/dev/null
ls -la "$out"
