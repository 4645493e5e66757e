"""How often does the QC flag a perfect repair, and how often a bad one? Flags of each tile on several stores.

    python benchmarks/qc_false_flags.py [--results results] [--truth results/demo/data/truth]
        [--config config/config.yaml] [--sections results/demo/data/sections.tsv]

Re-measures every planned tile of every repaired section in ``--results`` with the workflow's own QC
(`cytopaint.qc.measure`), the same tiles, owned pixels, rings and thresholds, on:

- ``repaired``: the repaired store, as the ``qc`` rule does;
- ``truth``: the synthetic truth (``cytopaint synth`` writes it beside the damaged stack) in its place:
  what a perfect repair would paint, so its flags are false alarms, the rate a model cannot go below;
- bad repairs made from the truth in the repaired pixels: ``blurred`` (Gaussian, sigma 3 µm: cells
  smeared into the neuropil), ``flat`` (the window's median truth grey: no cells, no texture) and
  ``brighter`` (+25 grey levels). Their flag rates are the QC's sensitivity.

Prints the flag rates per section and store, the flags by reason, and each section's repairs pooled
(`cytopaint.qc.pooled`: cells against what the rings predict, and whether the section is flagged).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import ndimage as ndi

from cytopaint.geometry import Box
from cytopaint.io import volume
from cytopaint.plan.section import Section
from cytopaint.plan.stage import read_plan_dir
from cytopaint.qc.measure import SectionWindows, measure_section
from cytopaint.qc.metrics import QCSettings, Thresholds
from cytopaint.qc.pooled import pooled_cells, pooled_flags


class TruthWindows(SectionWindows):
    """A section's windows with the synthetic truth read where the repaired store would be."""

    def __init__(self, section: Section, output: str, truth: str) -> None:
        super().__init__(section, output)
        self.truth = truth

    def window(self, box: Box) -> dict:
        a = super().window(box)
        a["after"] = volume.read_region(self.truth, *box.size)
        return a


class BadWindows(TruthWindows):
    """A section's windows with a bad repair in the repaired pixels, made from the truth (see the module)."""

    def __init__(self, section: Section, output: str, truth: str, kind: str) -> None:
        super().__init__(section, output, truth)
        self.kind = kind

    def window(self, box: Box) -> dict:
        a = super().window(box)
        truth, rep = a["after"], a["repaired"]
        if self.kind == "blurred":
            bad = ndi.gaussian_filter(truth.astype(np.float32), 3.0 / self.ps)
        elif self.kind == "flat":
            bad = np.full(truth.shape, np.median(truth[rep]) if rep.any() else 0, dtype=np.float32)
        else:
            bad = truth.astype(np.float32) + 25
        a["after"] = np.where(rep, np.clip(np.rint(bad), 0, np.iinfo(truth.dtype).max), truth).astype(truth.dtype)
        return a


BAD = ("blurred", "flat", "brighter")


METRICS = {"intensity_sd": "intensity_sd_rel", "seam": "seam", "texture": "texture", "intensity_mean": "intensity_z",
           "density": "density_rel", "cell_area": "cell_area_rel"}


def measured(results: Path, table: str, truth_dir: Path, settings: QCSettings) -> pd.DataFrame:
    """Metrics of every repaired tile of every section in ``results``, on each store of the module's list."""
    frames = []
    for receipt_path in sorted(results.glob("sections/*/blend.json")):
        section = Section.from_table(table, receipt_path.parent.name)
        plan, _ = read_plan_dir(receipt_path.parent / "plan")
        output = json.loads(receipt_path.read_text())["output"]
        truth = str(truth_dir / Path(section.image.split("#")[0]).name)
        stores = [("repaired", SectionWindows(section, output)), ("truth", TruthWindows(section, output, truth)),
                  *((kind, BadWindows(section, output, truth, kind)) for kind in BAD)]
        for name, windows in stores:
            m = measure_section(windows, plan, {}, settings, progress=False)
            frames.append(m[m["repaired_px"] > 0].assign(store=name))
    return pd.concat(frames, ignore_index=True)


def report(m: pd.DataFrame, thresholds: Thresholds) -> str:
    """Flagged tiles per section and store, flags by reason, the metrics' spread and the pooled sections, as text."""
    m = m.assign(flagged=m["flags"].fillna("") != "", small=m["repaired_px"] < m["repaired_px"].median())
    lines = [m.pivot_table(index="section", columns="store", values="flagged", aggfunc=["sum", "count"])
             .to_string(), ""]
    for store, g in m.groupby("store"):
        codes = Counter(c for f in g["flags"].fillna("") for c in f.split(";") if c)
        lines.append(f"{store:>9}: {int(g['flagged'].sum())} of {len(g)} tiles flagged ({g['flagged'].mean():.0%}; "
                     f"{g.loc[g['small'], 'flagged'].mean():.0%} of the smaller half by repaired pixels, "
                     f"{g.loc[~g['small'], 'flagged'].mean():.0%} of the larger); "
                     f"by reason: {dict(sorted(codes.items()))}")
    lines += ["", f"|metric| per tile (median repaired region {int(m['repaired_px'].median())} px): "
              "median / 90th percentile"]
    for code, col in METRICS.items():
        parts = [f"{store} {g[col].abs().median():.2f} / {g[col].abs().quantile(0.9):.2f}"
                 for store, g in m.groupby("store")]
        lines.append(f"  {code:<15} ({col}): " + ", ".join(parts))
    lines += ["", "all of a section's repairs pooled: cells vs the rings' prediction (z), section flag"]
    for store, g in m.groupby("store"):
        parts = []
        for section, s in g.groupby("section"):
            p = pooled_cells(s)
            flagged = "flagged" if pooled_flags(p, thresholds) else "ok"
            parts.append(f"{section} {p['cells_repaired']} / {p['cells_expected']:.0f} = {p['density_rel']:+.0%} "
                         f"(z {p['density_z']:+.1f}) {flagged}")
        lines.append(f"  {store:>9}: " + ", ".join(parts))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--truth", default=None, help="folder of the truth stores (default: RESULTS/demo/data/truth)")
    ap.add_argument("--sections", default=None, help="sections table (default: RESULTS/demo/data/sections.tsv)")
    ap.add_argument("--config", default="config/config.yaml", help="its qc block sets rings and thresholds")
    args = ap.parse_args()
    results = Path(args.results)
    truth_dir = Path(args.truth or results / "demo" / "data" / "truth")
    table = args.sections or str(results / "demo" / "data" / "sections.tsv")
    settings = QCSettings.from_config(yaml.safe_load(Path(args.config).read_text()).get("qc"))
    print(report(measured(results, table, truth_dir, settings), settings.thresholds))


if __name__ == "__main__":
    main()
