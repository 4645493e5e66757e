"""Stack summary (rule ``qc_summary``): ``results/qc/summary.tsv`` and ``results/qc/index.html``.

Each section's QC writes a small ``summary.json`` (`summarize_section`): counts, areas, the worst
tile metrics, review counts and fixed-bin histograms of its tile metrics. The stack summary reads
only these, so its cost grows with the number of sections, not tiles: the index of a
7,404-section stack is one static page (the table as embedded JSON, sorted, filtered and paged
by a few lines of plain JavaScript; distributions as embedded PNG plots), usable offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cytopaint.io.atomic import atomic_path, write_text

from .metrics import QCSettings
from .outcome import JobFailure
from .pooled import pooled_cells, pooled_flags
from .templating import asset, fill

# per-tile metric histograms: (low, high, bins, title); values outside land in the end bins
HISTOGRAMS: dict[str, tuple[float, float, int, str]] = {
    "density_rel": (-1.0, 2.0, 30, "cell density, repaired / ring − 1"),
    "cell_area_rel": (-1.0, 2.0, 30, "mean cell area, repaired / ring − 1"),
    "intensity_z": (-3.0, 3.0, 24, "grey mean, (repaired − ring) / sd ring"),
    "seam": (0.0, 4.0, 32, "seam score"),
}
_LIMIT_OF = {"density_rel": "density", "cell_area_rel": "cell_area", "intensity_z": "intensity_mean", "seam": "seam"}

# columns of summary.tsv and of the index table: (key, title, kind)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("section", "section", "text"),
    ("tiles_repaired", "tiles", "int"),
    ("flagged_tiles", "flagged", "int"),
    ("tiles_unrepaired", "not repaired", "int"),
    ("repaired_um2", "repaired mm²", "mm2"),
    ("repaired_pct_tissue", "% of tissue", "pct"),
    ("worst_density_rel", "worst density Δ", "rel"),
    ("worst_cell_area_rel", "worst cell area Δ", "rel"),
    ("worst_intensity_z", "worst grey z", "z"),
    ("worst_seam", "worst seam", "z"),
    ("pooled_density_rel", "cells Δ, all repairs", "rel"),
    ("regenerated", "regenerated", "int"),
    ("accepted", "accepted", "int"),
    ("flags", "flags", "text"),
    ("report", "report", "link"),
    ("status", "status", "text"),
    ("error", "error", "text"),
)


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def histogram(values: Sequence[float] | np.ndarray, low: float, high: float, bins: int) -> list[int]:
    """Counts of the finite values in ``bins`` equal bins over [low, high], outliers in the end bins."""
    v = np.asarray(values, dtype=np.float64)
    v = np.clip(v[np.isfinite(v)], low, high)
    return np.histogram(v, bins=bins, range=(low, high))[0].astype(int).tolist()


def _worst(values: pd.Series, signed: bool) -> float | None:
    v = values[np.isfinite(values.to_numpy(dtype=np.float64))]
    if v.empty:
        return None
    return float(v.loc[v.abs().idxmax()]) if signed else float(v.max())


def summarize_section(section: str, metrics: pd.DataFrame, *, plane_shape: Sequence[int], pixel_size_um: float,
                      pixels_repaired: int, repaired_um2: float, tissue_um2: float, output_sha256: str | None,
                      settings: QCSettings) -> dict[str, Any]:
    """The section's ``summary.json`` content from its metrics table (`cytopaint.qc.measure`)."""
    flags = Counter(c for f in metrics["flags"] for c in f.split(";") if c)
    repaired = metrics["status"] != "insufficient_context"
    pooled = pooled_cells(metrics)
    return {
        "section": section,
        "plane_shape": [int(v) for v in plane_shape],
        "pixel_size_um": float(pixel_size_um),
        "tiles_repaired": int((repaired & (metrics["repaired_px"] > 0)).sum()),
        "tiles_unrepaired": int((~repaired).sum()),
        "flagged_tiles": int((metrics["flags"] != "").sum()),
        "flags": dict(sorted(flags.items())),
        "pooled": pooled,
        "section_flags": [{"code": f.code, "reason": f.reason} for f in pooled_flags(pooled, settings.thresholds)],
        "pixels_repaired": int(pixels_repaired),
        "repaired_um2": float(repaired_um2),
        "tissue_um2": float(tissue_um2),
        "repaired_pct_tissue": 100.0 * repaired_um2 / tissue_um2 if tissue_um2 > 0 else None,
        "worst": {"density_rel": _worst(metrics["density_rel"], True),
                  "cell_area_rel": _worst(metrics["cell_area_rel"], True),
                  "intensity_z": _worst(metrics["intensity_z"], True), "seam": _worst(metrics["seam"], False)},
        "review": {"regenerated": int((metrics["review"] == "regenerated").sum()),
                   "accepted": int((metrics["review"] == "accepted").sum()),
                   "rejected": int((metrics["review_round"] > 0).sum())},
        "histograms": {k: histogram(metrics[k], lo, hi, n) for k, (lo, hi, n, _) in HISTOGRAMS.items()},
        "output_sha256": output_sha256,
        "settings": settings.as_dict(),
        "report": "report.html",
    }


def section_row(summary: dict[str, Any], report_link: str) -> dict[str, Any]:
    """One row of ``summary.tsv`` (keys of `COLUMNS`); a summary written before sections were pooled has none."""
    w = summary["worst"]
    section_flags = summary.get("section_flags") or []
    return {"section": summary["section"], "tiles_repaired": summary["tiles_repaired"],
            "flagged_tiles": summary["flagged_tiles"], "tiles_unrepaired": summary["tiles_unrepaired"],
            "repaired_um2": summary["repaired_um2"], "repaired_pct_tissue": summary["repaired_pct_tissue"],
            "worst_density_rel": w["density_rel"], "worst_cell_area_rel": w["cell_area_rel"],
            "worst_intensity_z": w["intensity_z"], "worst_seam": w["seam"],
            "pooled_density_rel": (summary.get("pooled") or {}).get("density_rel"),
            "regenerated": summary["review"]["regenerated"], "accepted": summary["review"]["accepted"],
            "flags": ";".join([*(f["code"] for f in section_flags),
                               *(f"{k}:{v}" for k, v in summary["flags"].items())]), "report": report_link,
            "status": "repaired", "error": ""}


def _cells_off(row: dict[str, Any]) -> bool:
    """Whether a ``summary.tsv`` row's section is flagged for the cells of all its repairs (`pooled_flags`)."""
    return "section_density" in row["flags"].split(";")


def failed_row(section: str, stage: str, error: str, link: str) -> dict[str, Any]:
    """The row of a section that was not repaired: it failed at ``stage`` (``link``: its plan or the job's log)."""
    return {**dict.fromkeys(k for k, _, _ in COLUMNS), "section": section, "tiles_repaired": 0,
            "flagged_tiles": 0, "tiles_unrepaired": 0, "repaired_um2": 0.0, "regenerated": 0, "accepted": 0,
            "flags": "", "report": link, "status": "failed", "error": f"{stage}: {error}"}


# ------------------------------------------------------------------------------ plots


def _plot_png(draw: Any, size: tuple[float, float] = (4.2, 2.6)) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=110)
    draw(ax)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots(rows: list[dict[str, Any]], hist: dict[str, np.ndarray], limits: dict[str, float]) -> list[tuple[str, str]]:
    """(title, PNG data URI) of the stack's distributions."""
    pct = np.array([r["repaired_pct_tissue"] if r["repaired_pct_tissue"] is not None else np.nan for r in rows])
    flagged = np.array([r["flagged_tiles"] for r in rows])
    out = []

    def along(ax: Any) -> None:
        x = np.arange(len(rows))
        ax.plot(x, pct, lw=0.8, color="#475569", marker="." if len(rows) < 200 else None, ms=4)
        bad = flagged > 0
        ax.scatter(x[bad], pct[bad], s=10, color="#c9184a", zorder=3, label="with flagged tiles")
        ax.set_xlabel("section (table order)")
        ax.set_ylabel("% of tissue repaired")
        if bad.any():
            ax.legend(frameon=False, fontsize=8)

    out.append(("Repaired area along the stack", _plot_png(along, (8.6, 2.6))))

    def pct_hist(ax: Any) -> None:
        ax.hist(pct[np.isfinite(pct)], bins=30, color="#0ea5e9")
        ax.set_xlabel("% of tissue repaired")
        ax.set_ylabel("sections")

    def flag_hist(ax: Any) -> None:
        top = max(int(flagged.max(initial=0)), 1)
        ax.hist(flagged, bins=np.arange(top + 2) - 0.5 if top < 40 else 40, color="#c9184a")
        ax.set_xlabel("flagged tiles per section")
        ax.set_ylabel("sections")

    out += [("Repaired share of tissue", _plot_png(pct_hist)), ("Flagged tiles", _plot_png(flag_hist))]
    for key, (lo, hi, n, title) in HISTOGRAMS.items():
        def draw(ax: Any, key: str = key, lo: float = lo, hi: float = hi, n: int = n, title: str = title) -> None:
            edges = np.linspace(lo, hi, n + 1)
            ax.bar(edges[:-1], hist[key], width=np.diff(edges), align="edge", color="#64748b")
            lim = limits[key]
            for x in ((lim,) if key == "seam" else (-lim, lim)):
                ax.axvline(x, color="#c9184a", lw=1, ls="--")
            ax.set_xlabel(title)
            ax.set_ylabel("tiles")

        out.append((f"All tiles: {title}", _plot_png(draw)))
    return out


# ------------------------------------------------------------------------------ index page


_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def render_index(rows: list[dict[str, Any]], figures: list[tuple[str, str]], limits: dict[str, float],
                 generated: str) -> str:
    """The stack index page: totals, the sortable and filterable section table, the distributions.

    The page is ``templates/index.html``; its script (``index.js``) keeps the table state as the
    filtered, sorted row indices, and only one page of rows is ever in the DOM.
    """
    data = {"columns": [list(c) for c in COLUMNS], "rows": [[r[k] for k, _, _ in COLUMNS] for r in rows],
            "limits": limits}
    # JSON in a <script> element: "<", ">" and "&" as \u escapes, so no string from the inputs can end or reopen it
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).translate(_SCRIPT_SAFE)
    repaired = sum(r["repaired_um2"] for r in rows) / 1e6
    flagged = sum(1 for r in rows if r["flagged_tiles"])
    cells_off = sum(map(_cells_off, rows))
    stats = [("sections", f"{len(rows):,}"), ("repaired", f"{repaired:.4g} mm²"),
             ("tiles", f"{sum(r['tiles_repaired'] for r in rows):,}"),
             ("flagged tiles", f"{sum(r['flagged_tiles'] for r in rows):,} in {flagged:,} sections"),
             ("cells off in all repairs", f"{cells_off:,} sections"),
             ("not repaired", f"{sum(r['tiles_unrepaired'] for r in rows):,} tiles"),
             ("regenerated", f"{sum(r['regenerated'] for r in rows):,} tiles")]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        stats.insert(1, ("failed", f"{len(failed):,} sections"))
    stat_html = "".join(f'<div class="stat{" bad" if k == "failed" else ""}">{html.escape(k)}<b>{html.escape(v)}</b>'
                        "</div>" for k, v in stats)
    failures = "" if not failed else (
        f'<div class="failed"><b>{len(failed):,} section(s) failed and were not repaired</b> (their inputs were '
        "refused, or a job of theirs failed; fix the cause and run again):<ul>" + "".join(
            f'<li><a href="{html.escape(r["report"])}">{html.escape(r["section"])}</a>: {html.escape(r["error"])}</li>'
            for r in failed[:200]) + ("<li>…</li>" if len(failed) > 200 else "") + "</ul></div>")
    figs = "".join(f'<figure><img src="{uri}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}</figcaption>'
                   "</figure>" for t, uri in figures)
    return fill("index.html", css=asset("index.css"), script=asset("index.js"), n_sections=f"{len(rows):,}",
                generated=html.escape(generated), stats=stat_html, failures=failures, figures=figs, data=payload)


def write_stack_summary(outcomes: Sequence[str | os.PathLike[str] | JobFailure], out_dir: Path, *,
                        progress: bool = True) -> dict[str, Any]:
    """Write ``summary.tsv`` and ``index.html`` from each section's outcome, in stack order.

    An outcome is the section's ``qc/summary.json``, or, for a section whose inputs were refused at
    planning, its ``plan.json`` (with ``failed``), or, for a section a later job of which failed
    (the workflow's ``onerror``), a `JobFailure`; the failed ones are listed with the reason, link
    their plan or the failed job's log, and count nothing repaired.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, limits = [], None
    hist = {k: np.zeros(n, dtype=np.int64) for k, (_, _, n, _) in HISTOGRAMS.items()}
    for outcome in tqdm(outcomes, desc="qc summary", unit="section", disable=not progress):
        if isinstance(outcome, JobFailure):
            rows.append(failed_row(outcome.section, outcome.stage, outcome.error, _link(outcome.log, out_dir)))
            continue
        path = Path(outcome)
        if not path.is_file():
            raise FileNotFoundError(f"section QC summary {path} does not exist")
        s = json.loads(path.read_text())
        if "failed" in s:
            rows.append(failed_row(s["section"], s["failed"]["stage"], s["failed"]["error"], _link(path, out_dir)))
            continue
        rows.append(section_row(s, _link(path.parent / s["report"], out_dir)))
        for k in hist:
            hist[k] += np.asarray(s["histograms"][k], dtype=np.int64)
        limits = limits or s["settings"]["thresholds"]
    t = limits or QCSettings().as_dict()["thresholds"]
    metric_limits = {k: float(t[v]) for k, v in _LIMIT_OF.items()}
    table_limits = {**{f"worst_{k}": v for k, v in metric_limits.items()},
                    "pooled_density_rel": float(t["section_density"])}
    frame = pd.DataFrame(rows, columns=[k for k, _, _ in COLUMNS])
    with atomic_path(out_dir / "summary.tsv") as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    clean = [{k: (_finite(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    page = render_index(clean, plots(clean, hist, metric_limits), table_limits,
                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_text(out_dir / "index.html", page)
    return {"sections": len(rows), "flagged_sections": sum(1 for r in rows if r["flagged_tiles"] or _cells_off(r)),
            "failed_sections": sum(1 for r in rows if r["status"] == "failed")}


def _link(path: str | os.PathLike[str], out_dir: Path) -> str:
    """``path`` relative to the page's folder, as a URL path."""
    return Path(os.path.relpath(path, out_dir)).as_posix()
