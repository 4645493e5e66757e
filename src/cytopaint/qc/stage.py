"""QC of one repaired section (rule ``qc``): ``metrics.tsv``, ``summary.json`` and ``report.html``.

`qc_section` measures every planned tile (`cytopaint.qc.measure`) on the input and the repaired
store, and writes:

- ``metrics.tsv``: one row per tile: plan identity, review status, the metrics, a severity and the
  flags with their reasons;
- ``summary.json``: the section's row of the stack summary (`cytopaint.qc.summary`);
- ``report.html``: one self-contained page (`cytopaint.qc.report`, images from `cytopaint.qc.render`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from cytopaint.io.atomic import atomic_path, write_text
from cytopaint.paths import QC_METRICS, QC_REPORT, QC_SUMMARY
from cytopaint.plan.ownership import window_box
from cytopaint.plan.section import Section
from cytopaint.plan.stage import read_plan_dir
from cytopaint.runtime import JobClock, code_version_string

from . import summary as stack
from .measure import SectionWindows, measure_section
from .metrics import QCSettings, ring_mask, tissue_mask, white_level
from .render import overview, tile_views
from .report import detector_bias, order_for_panels, render_report


def qc_section(section: Section, plan_dir: Path, receipt_path: Path, out_dir: Path,
               settings: QCSettings | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Measure, summarise and report one repaired section.

    Parameters
    ----------
    section
        The section, as the sections table gives it.
    plan_dir, receipt_path
        Its plan folder and blend receipt (which names the repaired store).
    out_dir
        The QC folder: ``metrics.tsv``, ``summary.json`` and ``report.html`` are written there.
    settings
        The ``qc`` block of the config (thresholds, ring).

    Returns
    -------
    dict
        The content of ``summary.json``: the section's row of the stack summary.
    """
    settings = settings or QCSettings()
    clock = JobClock()
    plan, plan_info = read_plan_dir(plan_dir)
    if plan_info["section"] != section.id:
        raise ValueError(f"{plan_dir} is the plan of section {plan_info['section']}, not {section.id}")
    receipt = json.loads(Path(receipt_path).read_text())
    sec = SectionWindows(section, receipt["output"])
    review = (plan_info.get("review") or {}).get("tiles", {})
    metrics = measure_section(sec, plan, review, settings, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / QC_METRICS) as tmp:
        metrics.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    ov = overview(sec)
    repaired_um2 = float(receipt["pixels_repaired"]) * sec.ps ** 2
    summ = stack.summarize_section(section.id, metrics, plane_shape=sec.info.plane_shape, pixel_size_um=sec.ps,
                                   pixels_repaired=int(receipt["pixels_repaired"]), repaired_um2=repaired_um2,
                                   tissue_um2=ov["tissue_um2"], output_sha256=receipt.get("sha256_level0"),
                                   settings=settings)
    shown = order_for_panels(metrics)[: settings.max_tile_panels]
    views = {}
    white = white_level(sec.info.dtype)
    for i in tqdm(shown, desc=f"qc {section} views", unit="tile", disable=not progress or not shown):
        r = metrics.loc[i]
        tile = plan.iloc[i]
        a = sec.tile_arrays(tile, window_box(tile))
        intact = ~a["repaired"] & ~a["artifact"] & tissue_mask(a["before"], sec.ps, min_od=settings.tissue_min_od,
                                                                smooth_um=settings.tissue_smooth_um)
        width = r["ring_width_um"] if math.isfinite(r["ring_width_um"]) else settings.ring_width_um
        ring = ring_mask(a["owned"], intact, settings.ring_gap_um / sec.ps, width / sec.ps)
        views[i] = tile_views(a, ring, white)
    small = bool(len(plan)) and int(plan["height"].max()) < 200
    summ["job"] = clock.record()
    page = render_report({"metrics": metrics, "settings": settings, "summary": summ, "overview": ov,
                          "bias": detector_bias(sec.ps), "views": views, "shown": shown, "review": review,
                          "small_tiles": small, "metrics_name": QC_METRICS, "code": code_version_string(),
                          "generated": summ["job"]["ended"]})
    write_text(out_dir / QC_REPORT, page)
    write_text(out_dir / QC_SUMMARY, json.dumps(summ, indent=1) + "\n")
    return summ
