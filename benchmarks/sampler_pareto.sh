#!/usr/bin/env bash
# Sampler settings on the Pareto front: every setting through `cytopaint pareto` (the evaluation
# harness, DDPM only) on the same held-out patches, masks and tile seeds; the first is the paper's
# reference (256 steps, each repeated 5 times: 1,276 NFE per tile).
#
#   [PER_BIN=4] benchmarks/sampler_pareto.sh gpu [OUT]  # the protocol: 40 synthetic held-out sections,
#         PER_BIN patches of 1 mm² per coverage bin (5 bins), the demo classifier. An H100 ran the
#         95-NFE evaluation at ~12,000 tile-NFE/s (docs/evaluation), so the reference takes ~4 min at
#         PER_BIN=4 and ~13 min at 12; a run cut short resumes (finished settings are reused).
#   benchmarks/sampler_pareto.sh cpu [OUT]  # reduced for 2 CPU cores: 6 sections, one bin, 3 patches of
#         256 µm, no classifier (its input is 1 mm²); the same settings and seeds
#
# PY (default .venv/bin/python) is the Python with cytopaint importable (python3 with PYTHONPATH=src on
# a lent GPU machine, as in gpu_session.sh).
set -euo pipefail
mode=${1:?usage: $0 gpu|cpu [OUT]}
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
work=${WORK:-/tmp/cytopaint-pareto}
SAMPLERS=(
  --sampler reference=256:1:5
  --sampler repaint-50-j5r2=50:5:2
  --sampler repaint-50-j5r2-late=50:5:2,resample_start=0.5
  --sampler repaint-25-j5r2=25:5:2
  --sampler repaint-100=100:1:1
  --sampler ddnm-50=50:1:1,method=ddnm
  --sampler ddnm-50-j5r2-late=50:5:2,method=ddnm,resample_start=0.5
  --sampler ddnm-25-j5r2-late=25:5:2,method=ddnm,resample_start=0.5
  --sampler diffpir-20=20:1:1,method=diffpir,zeta=1
  --sampler diffpir-50-z05=50:1:1,method=diffpir,zeta=0.5
)
case "$mode" in
  gpu)
    out=${2:-docs/samplers/gpu}
    sections=()
    for i in $(seq 0 39); do sections+=("h$i"); done
    table=${HELDOUT:-$work/heldout/sections.tsv}  # HELDOUT: a sections table already rendered
    [ -f "$table" ] || "$PY" -m cytopaint.cli synth --out "$work/heldout" --sections "${sections[@]}" \
      --shape 1536 2048 --pixel-size 2 --seed 200 --damage 0 --workers "$(nproc)" --quiet
    settings="{\"evaluate\": {\"patches_per_bin\": ${PER_BIN:-4}, \"batch_size\": 1024, \"workers\": 14}}"
    device=cuda ;;
  cpu)
    out=${2:-docs/samplers/cpu}
    table=$work/heldout-cpu/sections.tsv
    [ -f "$table" ] || "$PY" -m cytopaint.cli synth --out "$work/heldout-cpu" \
      --sections h0 h1 h2 h3 h4 h5 --shape 1024 1024 --pixel-size 2 --seed 200 --damage 0 --quiet
    settings='{"evaluate": {"patch_um": 256, "patches_per_bin": 3, "bins": [[0.1, 0.2]], "classifier": null}}'
    device=cpu ;;
  *) echo "mode must be gpu or cpu" >&2; exit 2 ;;
esac
"$PY" -m cytopaint.cli pareto --config config/config.yaml --sections "$table" --settings "$settings" \
  --device "$device" --out "$out" --quiet "${SAMPLERS[@]}"
