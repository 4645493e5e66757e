"""The section report page, ``report.html`` (rule ``qc``), from the templates under ``templates/``.

One self-contained page (images embedded as PNG data URIs, no external resources): an overview of
the section with artifact and repaired outlines and the tile grid, then the tiles to look at
(flagged and regenerated first, at most ``max_tile_panels``) with before, after, mask and
difference views, and a sortable table of every tile (``report.js`` sorts it by a clicked
header: numbers by value, blank last; text alphabetically).
"""

from __future__ import annotations

import html
import json
import math
from importlib.resources import files
from typing import Any

import pandas as pd

from cytopaint.paths import MANIFEST, QC_METRICS
from cytopaint.plan.table import STATUS_INSUFFICIENT

from .metrics import MAX_RING_GROWTH, QCSettings
from .render import COLORS
from .templating import asset, fill

OVERVIEW_SHOW_PX, OVERVIEW_MIN_PX = 1000, 640  # the overview's width on the page: at most / at least (small sections)

# the flag code that a metric raises: its value is shown in red on flagged tiles
FLAG_OF = {"density_rel": "density", "cell_area_rel": "cell_area", "intensity_z": "intensity_mean",
           "intensity_sd_rel": "intensity_sd", "seam": "seam", "texture": "texture"}

_TABLE_COLS = (("tile", "tile", "l"), ("wave", "wave", ""), ("batch", "batch", ""), ("review", "review", "l"),
               ("repaired µm²", "repaired_um2", ",.0f"), ("cells rep/ring", None, ""),
               ("density Δ", "density_rel", "+.0%"), ("cell area Δ", "cell_area_rel", "+.0%"),
               ("intensity z", "intensity_z", "+.2f"), ("sd Δ", "intensity_sd_rel", "+.0%"),
               ("seam", "seam", ".2f"), ("texture", "texture", ".2f"), ("flags", "flags", "l"))


def detector_bias(pixel_size_um: float) -> dict[str, Any] | None:
    """The measured bias of the cell detector nearest to a pixel size (`benchmarks/bench_detector.py`)."""
    path = files("cytopaint.qc").joinpath("detector_bias.json")
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    rows = data.get("by_pixel_size", {})
    if not rows:
        return None
    key = min(rows, key=lambda k: abs(math.log(float(k) / pixel_size_um)))
    return {**rows[key], "pixel_size_um": float(key), "source": data.get("source", ""),
            "measured": data.get("measured", "")}


def order_for_panels(m: pd.DataFrame) -> list[int]:
    """Flagged or regenerated tiles first, then by severity (largest first); unrepaired last."""
    if m.empty:
        return []
    key = pd.DataFrame({"first": ~((m["flags"] != "") | (m["review"] == "regenerated")),
                        "unrepaired": m["status"] == STATUS_INSUFFICIENT, "sev": -m["severity"]})
    return key.sort_values(["first", "unrepaired", "sev"], kind="stable").index.tolist()


# ------------------------------------------------------------------------------ fragments


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: float, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _num(v: float, spec: str, bad: bool = False) -> str:
    """A sortable numeric table cell."""
    data = "" if not (isinstance(v, (int, float)) and math.isfinite(v)) else f"{float(v):.6g}"
    return f'<td data-v="{data}"{" class=bad" if bad else ""}>{_fmt(v, spec)}</td>'


def _area(um2: float) -> str:
    return f"{um2 / 1e6:.3g} mm²" if um2 >= 1e4 else f"{um2:,.0f} µm²"


def _flagged(row: pd.Series, key: str) -> bool:
    return key in FLAG_OF and FLAG_OF[key] in row["flags"].split(";")


def _table(metrics: pd.DataFrame) -> str:
    """The sortable table of every tile."""
    head = "".join(f'<th class="{c if c == "l" else ""}">{_e(name)}</th>' for name, _, c in _TABLE_COLS)
    body = []
    for _, r in metrics.iterrows():
        cells = []
        for _, key, spec in _TABLE_COLS:
            if key is None:
                cells.append(f'<td data-v="{r["cells_repaired"] if math.isfinite(r["cells_repaired"]) else ""}">'
                             f'{_fmt(r["cells_repaired"], ".0f")} / {_fmt(r["cells_ring"], ".0f")}</td>')
            elif key == "tile":
                cells.append(f'<td class="l"><a href="#tile-{_e(r["tile"])}">{_e(r["tile"])}</a></td>')
            elif spec == "l":
                cells.append(f'<td class="l">{_e(r[key]) or "–"}</td>')
            elif spec == "":
                cells.append(_num(r[key], "d"))
            else:
                cells.append(_num(r[key], spec, _flagged(r, key)))
        body.append(f'<tr{" class=flagged" if r["flags"] else ""}>{"".join(cells)}</tr>')
    return (f'<div class="tablewrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _views(views: dict[str, str], small: bool) -> str:
    """A tile's figures: before, after (with its repaired border on hover), mask and difference."""
    return fill("views.html", img_px=' class="px"' if small else "", outline_class="outline px" if small else "outline",
                **views)


def _card(r: pd.Series, views: dict[str, str] | None, review: dict[str, Any], small: bool) -> str:
    """One tile's card: identity, flags and reasons, views, numbers, review lineage."""
    classes = "card" + (" flagged" if r["flags"] else "") + (" regen" if r["review"] == "regenerated" else "")
    pills = "".join(f'<span class="pill flag">{_e(c)}</span>' for c in r["flags"].split(";") if c)
    pills += f' <span class="pill {_e(r["review"])}">{_e(r["review"])}' + \
        (f" · round {r['review_round']}" if r["review_round"] else "") + "</span>"
    reasons = "".join(f"<li>{_e(x)}</li>" for x in r["flag_reasons"].split(" | ") if x)

    def n(label: str, key: str, spec: str, ref: str | None = None) -> str:
        extra = f" <span style='color:#59636e'>(ring {_fmt(r[ref], '.0f')})</span>" if ref else ""
        return f'<div{" class=bad" if _flagged(r, key) else ""}>{label}: {_fmt(r[key], spec)}{extra}</div>'

    nums = "".join([
        n("repaired µm²", "repaired_um2", ",.0f"),
        n("cells/mm²", "density_repaired", ".0f", "density_ring"),
        n("density Δ", "density_rel", "+.0%"),
        n("mean cell area µm²", "cell_area_repaired", ".0f", "cell_area_ring"),
        n("cell area Δ", "cell_area_rel", "+.0%"),
        n("grey mean", "intensity_mean_repaired", ".0f", "intensity_mean_ring"),
        n("grey mean z", "intensity_z", "+.2f"),
        n("grey sd Δ", "intensity_sd_rel", "+.0%"),
        n("seam", "seam", ".2f"),
        n("texture", "texture", ".2f"),
        n("ring width µm", "ring_width_um", ".0f")])
    rec = review.get(r["tile"])
    lineage = ""
    if rec:
        notes = "; ".join(f'{d["decision"]}{": " + d["note"] if d.get("note") else ""}' for d in rec["decisions"])
        lineage = (f'<div class="note">review: {_e(notes)}<br>seeds (round 0 → {rec["round"]}): '
                   f'{_e(" → ".join(str(x) for x in rec["seeds"]))}</div>')
    return fill("card.html", classes=classes, tile=_e(r["tile"]), wave=r["wave"], batch=r["batch"], seed=r["seed"],
                core_y0=r["core_y0"], core_x0=r["core_x0"], pills=pills,
                reasons=f"<ul class=reasons>{reasons}</ul>" if reasons else "",
                views=_views(views, small) if views else "", nums=nums, lineage=lineage,
                line=_e(f'{r["section"]}\t{r["tile"]}\treject\t<why>'))


def _overview_svg(metrics: pd.DataFrame, plane: tuple[int, int]) -> str:
    """The tile grid over the overview: one linked rectangle per tile core, classed by its state."""
    rects = []
    for _, r in metrics.iterrows():
        cls = ("none" if r["status"] == STATUS_INSUFFICIENT else "flag" if r["flags"] else
               "regen" if r["review"] == "regenerated" else "ok")
        tip = f"{r['tile']} (wave {r['wave']}, batch {r['batch']})" + (f": {r['flag_reasons']}" if r["flags"] else "")
        rects.append(f'<a href="#tile-{_e(r["tile"])}"><title>{_e(tip)}</title><rect class="{cls}" x="{r["core_x0"]}" '
                     f'y="{r["core_y0"]}" width="{r["core_width"]}" height="{r["core_height"]}"/></a>')
    return (f'<svg viewBox="0 0 {plane[1]} {plane[0]}" preserveAspectRatio="none" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rects)}</svg>')


def _stats(summ: dict[str, Any]) -> str:
    """The header's figures: tiles, flags, areas, review."""
    n_flag = summ["flagged_tiles"]
    stats = [("tiles repaired", f'{summ["tiles_repaired"]}', ""),
             ("flagged", f"{n_flag}", "bad" if n_flag else "good"),
             ("repaired", _area(summ["repaired_um2"]), ""),
             ("of tissue", f'{_fmt(summ["repaired_pct_tissue"], ".2f")} %', ""),
             ("cells in all repairs", _fmt(summ["pooled"]["density_rel"], "+.0%"),
              "bad" if summ["section_flags"] else ""),
             ("not repaired", f'{summ["tiles_unrepaired"]} tiles', "bad" if summ["tiles_unrepaired"] else ""),
             ("review", f'{summ["review"]["regenerated"]} regenerated · {summ["review"]["accepted"]} accepted', "")]
    return "".join(f'<div class="stat {c}">{_e(k)}<b>{_e(v)}</b></div>' for k, v, c in stats)


def _pooled(summ: dict[str, Any]) -> str:
    """All of the section's repairs as one sample: its cells against what the rings predict (HTML)."""
    p = summ["pooled"]
    if p["density_rel"] is None:
        return ""
    if summ["section_flags"]:
        return "".join(f'<div class="note bad"><b>Section flag</b> — {_e(f["reason"])}.</div>'
                       for f in summ["section_flags"])
    z = "" if p["density_z"] is None else f", z {p['density_z']:+.1f}"
    return (f'<div class="note"><b>All repairs together</b> — {p["cells_repaired"]} cells where the rings predict '
            f'{p["cells_expected"]:.0f} ({p["density_rel"] * 100:+.0f}%{_e(z)}); mean cell size '
            f'{_fmt(p["cell_area_rel"], "+.0%")} vs the rings: within the section limit.</div>')


def _rules(s: QCSettings) -> str:
    """The flag rules in words (plain text)."""
    t = s.thresholds
    return (f"density Δ beyond ±{t.density:.0%}, cell area Δ beyond ±{t.cell_area:.0%}, grey mean beyond "
            f"±{t.intensity_mean:g} sd of the ring, grey sd Δ beyond ±{t.intensity_sd:.0%}, seam above {t.seam:g}, "
            f"texture (steps between neighbours, vs the ring's) below {1 - t.texture:g}; each only when also "
            f"|z| ≥ {t.significance_z:g} against regions of the repaired region's shape in intact tissue nearby, "
            "where they fit (cells: by a Poisson or Welch z too), so that small repairs are not flagged for the "
            "spread real tissue shows at their size. The ring is intact tissue "
            f"{s.ring_gap_um:g}–{s.ring_gap_um + s.ring_width_um:g} µm from the repaired pixels (widened up to "
            f"{MAX_RING_GROWTH}× where intact tissue is scarce).")


def _bias_note(bias: dict[str, Any] | None) -> str:
    """The cell detector's measured bias, or how to measure it."""
    if bias is None:
        return "No detector bias measurement is installed (run <code>benchmarks/bench_detector.py --write</code>)."
    return (f'Cells are detected with <code>cytopaint.qc.cells.detect_cells</code> (optical density, '
            f'threshold, distance-transform watershed), a fixed instrument. Its bias, measured on synthetic '
            f'cortex with known cells at {bias["pixel_size_um"]:g} µm/px ({_e(bias["source"])}): '
            f'<b>counts {bias["count_ratio"]:.2f}×</b> the true number, <b>mean size '
            f'{bias["size_ratio"]:.2f}×</b> the true size (recall {bias["recall"]:.2f}, precision '
            f'{bias["precision"]:.2f}, {bias["n_true"]} true cells). Repaired region and ring are measured '
            'with the same instrument, so the bias largely cancels in the Δ columns; absolute densities and '
            'sizes carry it.')


def _tiles(ctx: dict[str, Any]) -> str:
    """The tiles part of the page: the cards of the tiles shown, then the table of every tile."""
    m: pd.DataFrame = ctx["metrics"]
    if not len(m):
        return "<h2>Tiles</h2><p>This section has no artifacts: nothing was repaired.</p>"
    cards = "".join(_card(m.loc[i], ctx["views"].get(i), ctx["review"], ctx["small_tiles"]) for i in ctx["shown"])
    hidden = len(m) - len(ctx["shown"])
    more = (f'<p class="note">{hidden} further tiles are in the table below without images '
            f'(qc.max_tile_panels = {ctx["settings"].max_tile_panels}).</p>' if hidden > 0 else "")
    return ("<h2>Tiles to look at first</h2><p>Flagged and regenerated tiles first, then by severity. "
            "Before and after are the tile's window as the sampler saw it; the mask shows "
            f'<span style="color:rgb{COLORS["artifact"]}">artifact</span>, '
            f'<span style="color:rgb{COLORS["owned"]}">pixels this tile generated</span>, '
            f'<span style="color:rgb{COLORS["other"]}">pixels other tiles generated</span> and the '
            f'<span style="color:rgb{COLORS["ring"]}">reference ring</span>; the difference is blue where '
            "the repair is darker, red where brighter, white where unchanged.</p>"
            f'<div class="cards">{cards}</div>{more}<h2>All tiles</h2>'
            f"<p>Click a column to sort.</p>{_table(m)}")


# ------------------------------------------------------------------------------ the page


def render_report(ctx: dict[str, Any]) -> str:
    """The report page from the context `cytopaint.qc.stage.qc_section` assembles."""
    summ, ov = ctx["summary"], ctx["overview"]
    plane = tuple(summ["plane_shape"])
    ov_w = int(ov["shape"][1])
    disp_w = min(max(ov_w, OVERVIEW_MIN_PX), OVERVIEW_SHOW_PX)
    return fill("report.html", css=asset("report.css"), script=asset("report.js"), section=_e(summ["section"]),
                height=plane[0], width=plane[1], pixel_size=f'{summ["pixel_size_um"]:g}',
                sha256=_e(str(summ["output_sha256"])[:16]), metrics_href=_e(ctx["metrics_name"]),
                metrics_name=QC_METRICS, manifest=MANIFEST, stats=_stats(summ), display_width=disp_w,
                img_px=" px" if disp_w > ov_w else "", after_src=ov["images"]["after"],
                before_src=ov["images"]["before"], grid=_overview_svg(ctx["metrics"], plane),
                artifact_rgb=COLORS["artifact"], owned_rgb=COLORS["owned"], level=ov["level"],
                pooled=_pooled(summ), rules=_e(_rules(ctx["settings"])), bias=_bias_note(ctx["bias"]),
                tiles=_tiles(ctx), code=_e(ctx["code"]), generated=_e(ctx["generated"]))
