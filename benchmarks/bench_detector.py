"""Bias of the QC cell detector on synthetic cortex with known cells (count and size error).

    python benchmarks/bench_detector.py [--seeds 8] [--extent-um 1000] [--pixel-sizes 1 2] [--write]

For each seed, an intact synthetic section (`cytopaint.synth`, no artifacts) of extent x extent µm
is rendered at each pixel size; `cytopaint.qc.cells.detector_bias` compares the detections with
the ground-truth somata in the cortex (layers I-VI and white matter). Pooled over seeds: count
ratio (detected / true), size ratio (mean detected area / mean true area), recall and precision.
``--write`` stores the pooled figures in ``src/cytopaint/qc/detector_bias.json``, which the QC
report states next to its cell statistics.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np

from cytopaint.runtime import code_version_string
from cytopaint.qc.cells import detector_bias
from cytopaint.synth import SectionSpec, render_section

OUT = Path(__file__).resolve().parents[1] / "src" / "cytopaint" / "qc" / "detector_bias.json"


def measure(seed: int, extent_um: float, pixel_size_um: float) -> dict[str, float]:
    spec = SectionSpec(seed=seed, shape=(int(extent_um / pixel_size_um),) * 2, pixel_size_um=pixel_size_um,
                       damaged_fraction=0.0)
    out = render_section(spec)
    b = detector_bias(out["intact"], out["cells"], pixel_size_um, region=out["layer"] > 0)
    return {**b.as_dict(), "matched": b.recall * b.n_true}


def pooled(rows: list[dict[str, float]]) -> dict[str, float]:
    """Ratios over all seeds: counts summed, sizes as a count-weighted mean of per-seed ratios."""
    n_true = sum(r["n_true"] for r in rows)
    n_det = sum(r["n_detected"] for r in rows)
    matched = sum(r["matched"] for r in rows)
    size = float(np.average([r["size_ratio"] for r in rows], weights=[r["n_true"] for r in rows]))
    return {"n_true": int(n_true), "n_detected": int(n_det), "count_ratio": n_det / n_true, "size_ratio": size,
            "recall": matched / n_true, "precision": matched / n_det}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--extent-um", type=float, default=1000.0)
    parser.add_argument("--pixel-sizes", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--write", action="store_true", help=f"store the pooled figures in {OUT}")
    args = parser.parse_args()
    result = {}
    print(f"{'µm/px':>6} {'seed':>5} {'true':>6} {'found':>6} {'count':>6} {'size':>6} {'recall':>7} {'prec.':>6}"
          f" {'s':>6}")
    for ps in args.pixel_sizes:
        rows = []
        for seed in range(args.seeds):
            t = time.perf_counter()
            r = measure(seed, args.extent_um, ps)
            rows.append(r)
            print(f"{ps:6g} {seed:5d} {r['n_true']:6d} {r['n_detected']:6d} {r['count_ratio']:6.3f} "
                  f"{r['size_ratio']:6.3f} {r['recall']:7.3f} {r['precision']:6.3f} {time.perf_counter() - t:6.1f}")
        p = pooled(rows)
        result[f"{ps:g}"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()}
        print(f"{ps:6g} {'all':>5} {p['n_true']:6d} {p['n_detected']:6d} {p['count_ratio']:6.3f} "
              f"{p['size_ratio']:6.3f} {p['recall']:7.3f} {p['precision']:6.3f}")
    if args.write:
        OUT.write_text(json.dumps({
            "source": f"benchmarks/bench_detector.py, {args.seeds} synthetic sections of {args.extent_um:g} µm",
            "measured": f"{date.today().isoformat()}, cytopaint {code_version_string()}",
            "by_pixel_size": result}, indent=1) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
