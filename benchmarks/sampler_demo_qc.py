"""Sampler settings judged by the QC on `make demo`'s stack: the workflow once per setting, the flags side by side.

    python benchmarks/sampler_demo_qc.py --sampler NAME=STEPS:J:R[,method=M,resample_start=F] ...
        [--out /tmp/sampler-demo-qc] [--cores 1] [--config config/config.yaml]

Each setting repairs the demo stack (the same sections, masks, plan and tile seeds) into
``OUT/NAME/results`` with only the ``repaint`` sampler keys overridden; a finished folder is reused
(snakemake reruns nothing). Printed and written to ``OUT/sampler_demo_qc.tsv``, per setting: NFE per
tile, tiles flagged and by reason, the median seam, texture and grey-spread metrics of the repaired
tiles (a perfect repair: about 1, 1 and 0), and per section all repairs pooled (cells against what
the rings predict) with the section flag. `benchmarks/qc_false_flags.py --results OUT/NAME/results`
puts one setting beside the synthetic truth.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import yaml

from cytopaint.diffusion.sampling import SamplerSettings
from cytopaint.qc.metrics import QCSettings
from cytopaint.qc.pooled import pooled_cells, pooled_flags

REPO = Path(__file__).resolve().parents[1]


def qc_row(results: Path, settings: QCSettings) -> dict[str, object]:
    """The QC of one finished results folder: NFE per tile (from the manifests), flags, median metrics and each
    section's pooled cells."""
    nfe = {t["nfe"] for p in results.glob("sections/*/manifest.json") for t in json.loads(p.read_text())["tiles"]
           if t["nfe"] is not None}
    frames = {p.parents[1].name: pd.read_csv(p, sep="\t").query("repaired_px > 0")
              for p in sorted(results.glob("sections/*/qc/metrics.tsv"))}
    if not frames:
        raise FileNotFoundError(f"no sections/*/qc/metrics.tsv under {results}")
    m = pd.concat(frames.values(), ignore_index=True)
    flags = m["flags"].fillna("")
    reasons = Counter(c for f in flags for c in f.split(";") if c)
    row: dict[str, object] = {
        "nfe": ",".join(map(str, sorted(nfe))), "tiles": len(m), "flagged": int((flags != "").sum()), "flagged_pct": round(100 * (flags != "").mean(), 1),
        "by_reason": ";".join(f"{k}:{v}" for k, v in sorted(reasons.items())),
        **{f"median_{k}": round(float(m[k].median()), 3) for k in ("seam", "texture", "intensity_sd_rel")}}
    for section, f in frames.items():
        p = pooled_cells(f)
        row[f"{section}_cells_rel"] = round(p["density_rel"], 3) if p["density_rel"] is not None else None
        row[f"{section}_flagged"] = bool(pooled_flags(p, settings.thresholds))
    return row


def run_setting(name: str, setting: SamplerSettings, config: Path, out: Path, cores: int) -> Path:
    """The demo workflow with ``setting`` as the sampler, into ``out/name/results``; returns that folder."""
    results = out / name / "results"
    override = out / name / "override.yaml"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(yaml.safe_dump({"results": str(results), "repaint": asdict(setting)}))
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(REPO),
                    "--configfile", str(config), str(override), "--cores", str(cores), "--quiet"], check=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sampler", action="append", required=True, help="NAME=STEPS:J:R[,KEY=VALUE...]")
    ap.add_argument("--out", type=Path, default=Path("/tmp/sampler-demo-qc"))
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--cores", type=int, default=1)
    args = ap.parse_args()
    config = yaml.safe_load(args.config.read_text())
    settings = QCSettings.from_config(config.get("qc"))
    rows = []
    for item in args.sampler:
        name, _, spec = item.partition("=")
        setting = SamplerSettings.parse(spec)
        results = run_setting(name, setting, args.config.resolve(), args.out.resolve(), args.cores)
        rows.append({"setting": name, "spec": spec, **qc_row(results, settings)})
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "sampler_demo_qc.tsv", sep="\t", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
