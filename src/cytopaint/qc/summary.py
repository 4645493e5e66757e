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

from .metrics import QCSettings

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
    ("regenerated", "regenerated", "int"),
    ("accepted", "accepted", "int"),
    ("flags", "flags", "text"),
    ("report", "report", "link"),
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
    """The section's ``summary.json`` content from its metrics table (`cytopaint.qc.report`)."""
    flags = Counter(c for f in metrics["flags"] for c in f.split(";") if c)
    repaired = metrics["status"] != "insufficient_context"
    return {
        "section": section,
        "plane_shape": [int(v) for v in plane_shape],
        "pixel_size_um": float(pixel_size_um),
        "tiles_repaired": int((repaired & (metrics["repaired_px"] > 0)).sum()),
        "tiles_unrepaired": int((~repaired).sum()),
        "flagged_tiles": int((metrics["flags"] != "").sum()),
        "flags": dict(sorted(flags.items())),
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
    """One row of ``summary.tsv`` (keys of `COLUMNS`)."""
    w = summary["worst"]
    return {"section": summary["section"], "tiles_repaired": summary["tiles_repaired"],
            "flagged_tiles": summary["flagged_tiles"], "tiles_unrepaired": summary["tiles_unrepaired"],
            "repaired_um2": summary["repaired_um2"], "repaired_pct_tissue": summary["repaired_pct_tissue"],
            "worst_density_rel": w["density_rel"], "worst_cell_area_rel": w["cell_area_rel"],
            "worst_intensity_z": w["intensity_z"], "worst_seam": w["seam"],
            "regenerated": summary["review"]["regenerated"], "accepted": summary["review"]["accepted"],
            "flags": ";".join(f"{k}:{v}" for k, v in summary["flags"].items()), "report": report_link}


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

_INDEX_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328}
header{background:#0f172a;color:#e2e8f0;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}.stat{background:#1e293b;border-radius:6px;
padding:6px 12px}.stat b{display:block;font-size:18px;color:#fff}main{padding:18px 28px}
h2{font-size:17px;margin:24px 0 10px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
.controls{display:flex;gap:16px;align-items:center;flex-wrap:wrap;margin-bottom:10px}
.controls input[type=search]{padding:5px 8px;width:280px;border:1px solid #c4ccd5;border-radius:5px}
button{padding:3px 10px;border:1px solid #c4ccd5;background:#fff;border-radius:5px;cursor:pointer}
button:disabled{opacity:.4;cursor:default}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #e5e9ee;
text-align:right;white-space:nowrap}th{background:#f6f8fa;cursor:pointer;position:sticky;top:0;user-select:none}
th.text,td.text,th.link,td.link{text-align:left}th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}tr:hover td{background:#f8fafc}td.bad{color:#c9184a;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:14px}.plots figure{margin:0;font-size:12px;color:#59636e}
.plots img{display:block;border:1px solid #e5e9ee}#count{color:#59636e}
"""

# Table state: filtered, sorted row indices; only one page of rows is ever in the DOM.
_INDEX_JS = """
(function(){
var D=JSON.parse(document.getElementById("data").textContent),C=D.columns,R=D.rows,L=D.limits,I={};
C.forEach(function(c,i){I[c[0]]=i});
var PAGE=100,page=0,sortCol=I.flagged_tiles,asc=false,view=[];
var q=document.getElementById("q"),fo=document.getElementById("flagged"),ro=document.getElementById("reviewed");
var body=document.querySelector("#stack tbody"),head=document.querySelector("#stack thead tr");
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return{"&":"&amp;","<":"&lt;",">":"&gt;",
  '"':"&quot;"}[c]})}
function fmt(v,k){if(v===null||v===undefined||v==="")return"–";
  if(k==="int")return v.toLocaleString("en");if(k==="mm2")return(v/1e6).toFixed(3);
  if(k==="pct")return v.toFixed(2);if(k==="rel")return(v>0?"+":"")+(100*v).toFixed(0)+"%";
  if(k==="z")return v.toFixed(2);return esc(v)}
function bad(key,v){if(v===null||v===undefined)return false;var l=L[key];
  return l!==undefined&&(key==="worst_seam"?v>l:Math.abs(v)>l)}
C.forEach(function(c,i){var th=document.createElement("th");th.textContent=c[1];th.className=c[2];
  th.addEventListener("click",function(){if(sortCol===i)asc=!asc;else{sortCol=i;asc=c[2]==="text"}update()});
  head.appendChild(th)});
function update(){
  var terms=q.value.toLowerCase().split(/[\\s,]+/).filter(Boolean),f=fo.checked,r=ro.checked;
  view=[];for(var i=0;i<R.length;i++){var row=R[i],s=row[0].toLowerCase(),ok=!terms.length;
    for(var t=0;t<terms.length&&!ok;t++)if(s.indexOf(terms[t])>=0)ok=true;
    if(ok&&f&&!(row[I.flagged_tiles]>0))ok=false;
    if(ok&&r&&!(row[I.regenerated]>0||row[I.accepted]>0))ok=false;if(ok)view.push(i)}
  var k=sortCol,text=C[k][2]==="text"||C[k][2]==="link",dir=asc?1:-1,abs=C[k][2]==="rel"||C[k][0]==="worst_intensity_z";
  view.sort(function(a,b){var x=R[a][k],y=R[b][k];if(x===null&&y===null)return a-b;if(x===null)return 1;
    if(y===null)return -1;if(text)return dir*String(x).localeCompare(String(y))||a-b;
    if(abs){x=Math.abs(x);y=Math.abs(y)}return dir*(x-y)||a-b});
  page=Math.min(page,Math.max(0,Math.ceil(view.length/PAGE)-1));render()}
function render(){
  Array.prototype.forEach.call(head.children,function(th,i){if(i===sortCol)th.setAttribute("aria-sort",
    asc?"ascending":"descending");else th.removeAttribute("aria-sort")});
  var h=[],end=Math.min(view.length,(page+1)*PAGE);
  for(var j=page*PAGE;j<end;j++){var row=R[view[j]],cells=[];
    for(var c=0;c<C.length;c++){var k=C[c][2],v=row[c];
      if(k==="link")cells.push('<td class="link"><a href="'+esc(v)+'">report</a></td>');
      else if(c===0)cells.push('<td class="text"><a href="'+esc(row[I.report])+'">'+esc(v)+"</a></td>");
      else cells.push('<td class="'+k+(bad(C[c][0],v)||(C[c][0]==="flagged_tiles"&&v>0)?" bad":"")+'">'+
        fmt(v,k)+"</td>")}
    h.push("<tr>"+cells.join("")+"</tr>")}
  body.innerHTML=h.join("");
  document.getElementById("count").textContent=view.length?("rows "+(page*PAGE+1)+"–"+end+" of "+
    view.length.toLocaleString("en")+(view.length<R.length?" (filtered from "+R.length.toLocaleString("en")+")":"")):
    "no section matches";
  document.getElementById("prev").disabled=page===0;document.getElementById("next").disabled=end>=view.length}
document.getElementById("prev").addEventListener("click",function(){page--;render()});
document.getElementById("next").addEventListener("click",function(){page++;render()});
[q,fo,ro].forEach(function(el){el.addEventListener("input",function(){page=0;update()})});
update();})();
"""


def render_index(rows: list[dict[str, Any]], figures: list[tuple[str, str]], limits: dict[str, float],
                 generated: str) -> str:
    """The stack index page: totals, the sortable and filterable section table, the distributions."""
    data = {"columns": [list(c) for c in COLUMNS], "rows": [[r[k] for k, _, _ in COLUMNS] for r in rows],
            "limits": limits}
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    repaired = sum(r["repaired_um2"] for r in rows) / 1e6
    flagged = sum(1 for r in rows if r["flagged_tiles"])
    stats = [("sections", f"{len(rows):,}"), ("repaired", f"{repaired:.4g} mm²"),
             ("tiles", f"{sum(r['tiles_repaired'] for r in rows):,}"),
             ("flagged tiles", f"{sum(r['flagged_tiles'] for r in rows):,} in {flagged:,} sections"),
             ("not repaired", f"{sum(r['tiles_unrepaired'] for r in rows):,} tiles"),
             ("regenerated", f"{sum(r['regenerated'] for r in rows):,} tiles")]
    stat_html = "".join(f'<div class="stat">{html.escape(k)}<b>{html.escape(v)}</b></div>' for k, v in stats)
    figs = "".join(f'<figure><img src="{uri}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}</figcaption>'
                   "</figure>" for t, uri in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>cytopaint QC · {len(rows):,} sections</title><style>{_INDEX_CSS}</style></head>
<body><header><h1>cytopaint QC: stack summary</h1><div>generated {html.escape(generated)} ·
<a style="color:#93c5fd" href="summary.tsv">summary.tsv</a></div><div class="stats">{stat_html}</div></header>
<main><h2>Sections</h2>
<div class="controls"><input type="search" id="q" placeholder="filter sections: ids or parts of ids"
aria-label="filter sections"><label><input type="checkbox" id="flagged"> with flagged tiles</label>
<label><input type="checkbox" id="reviewed"> with review decisions</label>
<span><button id="prev">‹ prev</button> <button id="next">next ›</button></span> <span id="count"></span></div>
<table id="stack"><thead><tr></tr></thead><tbody></tbody></table>
<p style="color:#59636e;font-size:12px">Click a column to sort (Δ and z columns by magnitude); worst = the tile
furthest from its ring, red beyond the flag limits.</p>
<h2>Distributions</h2><div class="plots">{figs}</div></main>
<script type="application/json" id="data">{payload}</script>
<script>{_INDEX_JS}</script></body></html>
"""


def write_stack_summary(summary_paths: Sequence[str | os.PathLike[str]], out_dir: Path, *,
                        progress: bool = True) -> dict[str, Any]:
    """Read the sections' ``summary.json`` files (in stack order); write ``summary.tsv`` and ``index.html``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, limits = [], None
    hist = {k: np.zeros(n, dtype=np.int64) for k, (_, _, n, _) in HISTOGRAMS.items()}
    for path in tqdm(summary_paths, desc="qc summary", unit="section", disable=not progress):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"section QC summary {path} does not exist")
        s = json.loads(path.read_text())
        link = Path(os.path.relpath(path.parent / s["report"], out_dir)).as_posix()
        rows.append(section_row(s, link))
        for k in hist:
            hist[k] += np.asarray(s["histograms"][k], dtype=np.int64)
        limits = limits or s["settings"]["thresholds"]
    t = limits or QCSettings().as_dict()["thresholds"]
    metric_limits = {k: float(t[v]) for k, v in _LIMIT_OF.items()}
    table_limits = {f"worst_{k}": v for k, v in metric_limits.items()}
    frame = pd.DataFrame(rows, columns=[k for k, _, _ in COLUMNS])
    tmp = out_dir / "summary.tsv.tmp"
    frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    tmp.replace(out_dir / "summary.tsv")
    clean = [{k: (_finite(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    page = render_index(clean, plots(clean, hist, metric_limits), table_limits,
                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tmp = out_dir / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_dir / "index.html")
    return {"sections": len(rows), "flagged_sections": sum(1 for r in rows if r["flagged_tiles"])}
