"""QC of one repaired section (rule ``qc``): ``metrics.tsv``, ``summary.json`` and ``report.html``.

`qc_section` measures every planned tile (`cytopaint.qc.metrics`) on the input and the repaired
store, reading a window around each tile's core (the pixels a tile owns are ``labels/repaired``
inside its core), and writes:

- ``metrics.tsv``: one row per tile: plan identity, review status, the metrics, a severity (largest
  metric/limit ratio) and the flags with their reasons;
- ``summary.json``: the section's row of the stack summary (`cytopaint.qc.summary`);
- ``report.html``: one self-contained page (images embedded as PNG data URIs, no external
  resources): an overview of the section with artifact and repaired outlines and the tile grid,
  then the tiles to look at (flagged and regenerated first, at most ``max_tile_panels``) with
  before, after, mask and difference views, and a sortable table of every tile.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from cytopaint.blend.stage import LABEL
from cytopaint.geometry import Box
from cytopaint.io import masks, volume
from cytopaint.io.atomic import atomic_path, write_text
from cytopaint.morphology import upsample_window
from cytopaint.paths import MANIFEST, QC_METRICS, QC_REPORT, QC_SUMMARY
from cytopaint.plan.ownership import core_box, window_box
from cytopaint.plan.section import Section
from cytopaint.plan.stage import read_plan_dir
from cytopaint.plan.table import STATUS_INSUFFICIENT
from cytopaint.runtime import JobClock, code_version_string

from . import summary as stack
from .metrics import (MAX_RING_GROWTH, METRIC_COLUMNS, QCSettings, flag_tile, ring_mask, severity, tile_metrics,
                      tissue_mask, white_level)

DETECTION_CONTEXT_UM = 20.0  # image read beyond the ring, so that cells at its edge are whole
PANEL_PX = 256  # tile views are reduced to at most this many pixels a side
OVERVIEW_PX = 1400  # the overview is reduced to at most this many pixels a side
OVERVIEW_SHOW_PX, OVERVIEW_MIN_PX = 1000, 640  # its width on the page: at most / at least (small sections)
ID_COLUMNS = ("section", "tile", "row", "col", "wave", "batch", "seed", "status", "review", "review_round")
COLORS = {"artifact": (245, 130, 32), "owned": (0, 190, 215), "other": (160, 110, 220), "ring": (60, 190, 90)}


# ------------------------------------------------------------------------------ measuring


def _core_window(tile: Any, pad: int, plane: tuple[int, int]) -> Box:
    core = core_box(tile)
    return Box(max(core.y0 - pad, 0), max(core.x0 - pad, 0), min(core.y1 + pad, plane[0]), min(core.x1 + pad, plane[1]))


class _Section:
    """Readers of one section's input, artifact mask and repaired store, window by window."""

    def __init__(self, section: Section, output: str) -> None:
        self.section, self.output = section, output
        self.image_ref, self.z, self.mask_ref = section.image, section.z, section.mask
        self.info = section.info
        self.mask, self.factor = section.artifact_mask()
        self.label_ref = f"{output}#labels/{LABEL}"
        self.ps = float(np.mean(self.info.pixel_size_um))

    def window(self, box: Box) -> dict[str, np.ndarray]:
        """before, after, repaired and artifact on a level-0 window."""
        return {"before": self.section.read(box),
                "after": volume.read_region(self.output, *box.size),
                "repaired": volume.read_region(self.label_ref, *box.size) > 0,
                "artifact": upsample_window(self.mask, self.factor, *box.size)}

    def tile_arrays(self, tile: Any, box: Box) -> dict[str, np.ndarray]:
        """`window` on ``box`` plus ``owned``: the repaired pixels inside the tile's core."""
        a = self.window(box)
        core = np.zeros(box.shape, dtype=bool)
        hit = box.overlap(core_box(tile))
        if hit is not None:
            core[hit[0]] = True
        a["owned"] = a["repaired"] & core
        return a


def measure_tile(sec: _Section, tile: Any, settings: QCSettings) -> dict[str, float]:
    """Metrics of one plan row, on a window around its core that holds the ring and its cells."""
    if tile.status == STATUS_INSUFFICIENT:
        return {**dict.fromkeys(METRIC_COLUMNS, math.nan), "repaired_px": 0, "repaired_um2": 0.0}

    def measure(width_um: float) -> dict[str, float]:
        pad = math.ceil((settings.ring_gap_um + width_um + DETECTION_CONTEXT_UM) / sec.ps)
        a = sec.tile_arrays(tile, _core_window(tile, pad, sec.info.plane_shape))
        return tile_metrics(a["before"], a["after"], a["owned"], a["repaired"], a["artifact"], sec.ps, settings)

    m = measure(settings.ring_width_um)
    if m["ring_width_um"] > settings.ring_width_um:  # the ring widened: again, on a window that holds it
        m = measure(m["ring_width_um"])
    return m


def _review_columns(review: dict[str, Any], tile: str) -> tuple[str, int]:
    rec = review.get(tile)
    return (rec["status"], int(rec["round"])) if rec else ("unreviewed", 0)


def measure_section(sec: _Section, plan: pd.DataFrame, review: dict[str, Any], settings: QCSettings,
                    progress: bool = True) -> pd.DataFrame:
    """The metrics table of a section: one row per planned tile (`ID_COLUMNS`, metrics, flags)."""
    rows = []
    for tile in tqdm(plan.itertuples(index=False), total=len(plan), desc=f"qc {plan['section'].iat[0]}"
                     if len(plan) else "qc", unit="tile", disable=not progress):
        m = measure_tile(sec, tile, settings)
        flags = flag_tile(m, settings.thresholds, tile.status)
        status, rnd = _review_columns(review, tile.tile)
        rows.append({"section": tile.section, "tile": tile.tile, "row": tile.row, "col": tile.col,
                     "wave": tile.wave, "batch": tile.batch, "seed": tile.seed, "status": tile.status,
                     "review": status, "review_round": rnd, "core_y0": tile.core_y0, "core_x0": tile.core_x0,
                     "core_height": tile.core_height, "core_width": tile.core_width, **m,
                     "severity": severity(m, settings.thresholds),
                     "flags": ";".join(f.code for f in flags), "flag_reasons": " | ".join(f.reason for f in flags)})
    columns = [*ID_COLUMNS, "core_y0", "core_x0", "core_height", "core_width", *METRIC_COLUMNS, "severity", "flags",
               "flag_reasons"]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------------ images


def _png(rgb: np.ndarray) -> str:
    """A data URI of an (h, w) grey, (h, w, 3) RGB or (h, w, 4) RGBA uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _reduce(a: np.ndarray, f: int, how: str) -> np.ndarray:
    """Block mean (grey) or block any (masks) by an integer factor; edge blocks are partial."""
    if f <= 1:
        return a
    h, w = -(-a.shape[0] // f) * f, -(-a.shape[1] // f) * f
    if how == "any":
        p = np.zeros((h, w), dtype=bool)
        p[:a.shape[0], :a.shape[1]] = a
        return p.reshape(h // f, f, w // f, f).any(axis=(1, 3))
    p = np.pad(a.astype(np.float32), ((0, h - a.shape[0]), (0, w - a.shape[1])), mode="edge")
    return p.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _to_u8(a: np.ndarray, white: float) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float32) * (255.0 / white), 0, 255).astype(np.uint8)


def _outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The inner border of a mask, ``width`` pixels thick."""
    if not mask.any():
        return mask
    return mask & ~ndi.binary_erosion(mask, iterations=width, border_value=1)


def _paint(rgb: np.ndarray, where: np.ndarray, color: tuple[int, int, int], alpha: float = 1.0) -> None:
    rgb[where] = (1 - alpha) * rgb[where] + alpha * np.asarray(color, dtype=np.float32)


def _grey_rgb(grey_u8: np.ndarray) -> np.ndarray:
    return np.repeat(grey_u8[..., None], 3, axis=2).astype(np.float32)


def _diverging(d: np.ndarray, limit: float) -> np.ndarray:
    """Blue (darker after) - white (unchanged) - red (brighter after)."""
    t = np.clip(d / limit, -1, 1)[..., None]
    white = np.array([247, 247, 247], dtype=np.float32)
    red, blue = np.array([178, 24, 43], dtype=np.float32), np.array([33, 102, 172], dtype=np.float32)
    return np.where(t >= 0, white + t * (red - white), white - t * (blue - white)).astype(np.uint8)


def tile_views(a: dict[str, np.ndarray], ring: np.ndarray, white: float) -> dict[str, str]:
    """PNG data URIs of a tile window: before, after, the owned outline, mask and difference."""
    f = max(1, math.ceil(max(a["before"].shape) / PANEL_PX))
    before, after = _reduce(a["before"], f, "mean"), _reduce(a["after"], f, "mean")
    owned, artifact = _reduce(a["owned"], f, "any"), _reduce(a["artifact"], f, "any")
    other, ring_r = _reduce(a["repaired"] & ~a["owned"], f, "any"), _reduce(ring, f, "any")
    outline = np.zeros((*owned.shape, 4), dtype=np.uint8)
    outline[_outline(owned)] = (*COLORS["owned"], 255)
    mask = 0.55 * _grey_rgb(_to_u8(after, white)) + 0.45 * 255
    for region, key, alpha in ((ring_r, "ring", 0.3), (artifact, "artifact", 0.55), (other, "other", 0.6),
                               (owned, "owned", 0.6)):
        _paint(mask, region, COLORS[key], alpha)
    _paint(mask, _outline(artifact), COLORS["artifact"])
    diff = _reduce(a["after"].astype(np.float32) - a["before"].astype(np.float32), f, "mean")
    return {"before": _png(_to_u8(before, white)), "after": _png(_to_u8(after, white)), "outline": _png(outline),
            "mask": _png(mask.astype(np.uint8)), "difference": _png(_diverging(diff, white / 2))}


def _level_for_overview(info: volume.ImageInfo) -> int:
    """The coarsest pyramid level whose longer side still has OVERVIEW_PX / 2 pixels (or level 0)."""
    best = 0
    for lv, shape in enumerate(info.level_shapes):
        if max(shape[-2:]) >= min(OVERVIEW_PX // 2, max(info.plane_shape)):
            best = lv
    return best


def _mask_at(mask_ref: str, info: volume.ImageInfo, z: int | None, factor: tuple[float, float],
             shape: tuple[int, int]) -> np.ndarray:
    """The artifact mask on a grid ``factor`` times coarser than level 0 (any-pooling)."""
    minfo = volume.read_info(mask_ref)
    level, mfac = 0, (1, 1)
    for lv in range(minfo.n_levels):
        _, f = masks.load_mask(mask_ref, info, z=z, level=lv)
        if f[0] <= factor[0] + 1e-6 and f[1] <= factor[1] + 1e-6:
            level, mfac = lv, f
    m = np.asarray(masks.load_mask(mask_ref, info, z=z, level=level)[0])
    ry, rx = factor[0] / mfac[0], factor[1] / mfac[1]
    if math.isclose(ry, round(ry)) and math.isclose(rx, round(rx)) and round(ry) == round(rx):
        m = _reduce(m, int(round(ry)), "any")
    else:  # non-integer ratio: nearest
        m = m[np.minimum((np.arange(shape[0]) * ry).astype(int), m.shape[0] - 1)][
            :, np.minimum((np.arange(shape[1]) * rx).astype(int), m.shape[1] - 1)]
    out = np.zeros(shape, dtype=bool)
    out[:min(shape[0], m.shape[0]), :min(shape[1], m.shape[1])] = m[:shape[0], :shape[1]]
    return out


def overview(sec: _Section) -> dict[str, Any]:
    """Overview images (input and repaired, outlined), their size, and tissue and repaired areas."""
    info = sec.info
    lv = _level_for_overview(info)
    fy, fx = info.downscale[lv]
    before = np.asarray(volume.open_level(sec.image_ref, lv, sec.z))
    after = np.asarray(volume.open_level(sec.output, lv))
    repaired = np.asarray(volume.open_level(sec.label_ref, lv)) > 0
    artifact = _mask_at(sec.mask_ref, info, sec.z, (fy, fx), before.shape)
    ps_ov = sec.ps * float(np.mean([fy, fx]))
    tissue = tissue_mask(after, ps_ov) | repaired
    f = max(1, math.ceil(max(before.shape) / OVERVIEW_PX))
    white = white_level(info.dtype)
    art_r, rep_r = _reduce(artifact, f, "any"), _reduce(repaired, f, "any")
    width = 2 if max(art_r.shape) >= 600 else 1
    images = {}
    for name, img in (("before", before), ("after", after)):
        rgb = _grey_rgb(_to_u8(_reduce(img, f, "mean"), white))
        _paint(rgb, _outline(art_r, width), COLORS["artifact"])
        _paint(rgb, _outline(rep_r, width), COLORS["owned"])
        images[name] = _png(rgb.astype(np.uint8))
    return {"images": images, "shape": art_r.shape, "tissue_um2": float(tissue.sum()) * ps_ov ** 2, "level": lv}


# ------------------------------------------------------------------------------ detector bias


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


# ------------------------------------------------------------------------------ HTML

_CSS = """
:root{--ink:#1f2328;--mute:#59636e;--line:#d8dee4;--bg:#f6f8fa;--flag:#c9184a;--ok:#1a7f37;--amber:#b45309}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink)}
header{background:#0f172a;color:#e2e8f0;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header .sub{color:#94a3b8}header a{color:#93c5fd}main{padding:18px 28px;max-width:1500px}
h2{font-size:17px;margin:26px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}
.stat{background:#1e293b;border-radius:6px;padding:6px 12px}.stat b{display:block;font-size:18px;color:#fff}
.stat.bad b{color:#fb7185}.stat.good b{color:#86efac}
.ovwrap{display:flex;gap:22px;align-items:flex-start;flex-wrap:wrap}
.ov{position:relative;display:inline-block;line-height:0;border:1px solid var(--line)}
.ov img{display:block;width:100%;height:auto}.ov img.px{image-rendering:pixelated}
.ov svg{position:absolute;inset:0;width:100%;height:100%}
.ov svg rect{fill:transparent;stroke-width:1.2;vector-effect:non-scaling-stroke}
.ov svg a:hover rect{fill:rgba(255,255,255,.25);stroke-width:2.5}
.ov svg .ok{stroke:rgba(0,190,215,.55)}.ov svg .flag{stroke:#ff2d55;stroke-width:2.2}
.ov svg .regen{stroke:#ffb000;stroke-width:2.2;stroke-dasharray:4 2}.ov svg .none{stroke:#ff2d55;stroke-dasharray:2 2}
#show-before:checked~.ovwrap .img-after,#show-after:checked~.ovwrap .img-before{display:none}
.toggle label{margin-right:14px;cursor:pointer}
.legend{font-size:13px;color:var(--mute);min-width:240px}.legend div{margin:3px 0}
.sw{display:inline-block;width:18px;height:10px;margin-right:6px;vertical-align:middle;border-radius:2px}
.sw.line{height:3px}
.note{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:10px 0;
max-width:1000px}
.cards{display:flex;flex-direction:column;gap:14px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;scroll-margin-top:10px}
.card:target{outline:3px solid #0ea5e9}.card.flagged{border-left:5px solid var(--flag)}
.card.regen{border-left:5px solid #f59e0b}
.card h3{margin:0 0 6px;font-size:15px;display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.card h3 .meta{font-weight:normal;color:var(--mute);font-size:13px}
.views{display:flex;gap:10px;flex-wrap:wrap}.views figure{margin:0;text-align:center;font-size:12px;
color:var(--mute)}.views img{width:200px;height:auto;border:1px solid var(--line);display:block}
.views img.px{image-rendering:pixelated}.stack{position:relative}.stack img.outline{position:absolute;top:0;
left:0;opacity:0;transition:opacity .15s;border-color:transparent}.stack:hover img.outline{opacity:1}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;background:#eef2f6;color:#334155}
.pill.flag{background:#ffe4ea;color:var(--flag)}.pill.regenerated{background:#fff3d6;color:var(--amber)}
.pill.accepted{background:#dcfce7;color:var(--ok)}
.reasons{margin:6px 0 0 0;padding-left:18px;color:var(--flag)}
.nums{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:2px 18px;font-size:13px;
margin-top:8px}.nums .bad{color:var(--flag);font-weight:600}
code.line{font-size:12px;background:var(--bg);padding:1px 6px;border-radius:4px}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid var(--line);
text-align:right;white-space:nowrap}th{background:var(--bg);cursor:pointer;position:sticky;top:0;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.l,th.l{text-align:left}td.bad{color:var(--flag);font-weight:600}tr.flagged td:first-child{
box-shadow:inset 4px 0 var(--flag)}.tablewrap{max-height:70vh;overflow:auto;border:1px solid var(--line)}
footer{color:var(--mute);font-size:12px;padding:20px 28px}
"""

# Sort a table by a clicked header: numbers by value (blank last), text alphabetically.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function(t){
  t.querySelectorAll("th").forEach(function(th,i){th.addEventListener("click",function(){
    var asc=th.getAttribute("aria-sort")!=="ascending";
    t.querySelectorAll("th").forEach(function(h){h.removeAttribute("aria-sort")});
    th.setAttribute("aria-sort",asc?"ascending":"descending");
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
      var p=parseFloat(x),q=parseFloat(y),nx=isNaN(p),ny=isNaN(q);
      if(x===undefined){x=a.cells[i].textContent;y=b.cells[i].textContent;
        return asc?x.localeCompare(y):y.localeCompare(x)}
      if(nx||ny)return nx-ny;return asc?p-q:q-p});
    rows.forEach(function(r){body.appendChild(r)});});});});
"""


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


# the flag code that a metric raises: its value is shown in red on flagged tiles
FLAG_OF = {"density_rel": "density", "cell_area_rel": "cell_area", "intensity_z": "intensity_mean",
           "intensity_sd_rel": "intensity_sd", "seam": "seam"}


def _flagged(row: pd.Series, key: str) -> bool:
    return key in FLAG_OF and FLAG_OF[key] in row["flags"].split(";")


_TABLE_COLS = (("tile", "tile", "l"), ("wave", "wave", ""), ("batch", "batch", ""), ("review", "review", "l"),
               ("repaired µm²", "repaired_um2", ",.0f"), ("cells rep/ring", None, ""),
               ("density Δ", "density_rel", "+.0%"), ("cell area Δ", "cell_area_rel", "+.0%"),
               ("intensity z", "intensity_z", "+.2f"), ("sd Δ", "intensity_sd_rel", "+.0%"),
               ("seam", "seam", ".2f"), ("flags", "flags", "l"))


def _table(metrics: pd.DataFrame) -> str:
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


def _card(r: pd.Series, views: dict[str, str] | None, review: dict[str, Any], small: bool) -> str:
    classes = "card" + (" flagged" if r["flags"] else "") + (" regen" if r["review"] == "regenerated" else "")
    pills = "".join(f'<span class="pill flag">{_e(c)}</span>' for c in r["flags"].split(";") if c)
    pills += f' <span class="pill {_e(r["review"])}">{_e(r["review"])}' + \
        (f" · round {r['review_round']}" if r["review_round"] else "") + "</span>"
    reasons = "".join(f"<li>{_e(x)}</li>" for x in r["flag_reasons"].split(" | ") if x)
    px = ' class="px"' if small else ""
    figs = ""
    if views:
        figs = (f'<div class="views"><figure><img{px} src="{views["before"]}" alt="before"><figcaption>before'
                f'</figcaption></figure><figure><div class="stack"><img{px} src="{views["after"]}" alt="after">'
                f'<img class="outline{" px" if small else ""}" src="{views["outline"]}" alt="repaired border">'
                f'</div><figcaption>after (hover: repaired border)</figcaption></figure>'
                f'<figure><img{px} src="{views["mask"]}" alt="mask"><figcaption>mask</figcaption></figure>'
                f'<figure><img{px} src="{views["difference"]}" alt="difference"><figcaption>after − before'
                f'</figcaption></figure></div>')

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
        n("ring width µm", "ring_width_um", ".0f")])
    rec = review.get(r["tile"])
    lineage = ""
    if rec:
        notes = "; ".join(f'{d["decision"]}{": " + d["note"] if d.get("note") else ""}' for d in rec["decisions"])
        lineage = (f'<div class="note">review: {_e(notes)}<br>seeds (round 0 → {rec["round"]}): '
                   f'{_e(" → ".join(str(x) for x in rec["seeds"]))}</div>')
    line = f'{r["section"]}\t{r["tile"]}\treject\t<why>'
    return (f'<section class="{classes}" id="tile-{_e(r["tile"])}"><h3>{_e(r["tile"])} '
            f'<span class="meta">wave {r["wave"]} · '
            f'batch {r["batch"]} · seed {r["seed"]} · core y {r["core_y0"]}, x {r["core_x0"]}</span> {pills}</h3>'
            f'{"<ul class=reasons>" + reasons + "</ul>" if reasons else ""}{figs}<div class="nums">{nums}</div>'
            f'{lineage}<div style="margin-top:6px;font-size:12px;color:#59636e">to reject: add '
            f'<code class="line">{_e(line)}</code> to the review table</div></section>')


def _overview_svg(metrics: pd.DataFrame, plane: tuple[int, int]) -> str:
    rects = []
    for _, r in metrics.iterrows():
        cls = ("none" if r["status"] == STATUS_INSUFFICIENT else "flag" if r["flags"] else
               "regen" if r["review"] == "regenerated" else "ok")
        tip = f"{r['tile']} (wave {r['wave']}, batch {r['batch']})" + (f": {r['flag_reasons']}" if r["flags"] else "")
        rects.append(f'<a href="#tile-{_e(r["tile"])}"><title>{_e(tip)}</title><rect class="{cls}" x="{r["core_x0"]}" '
                     f'y="{r["core_y0"]}" width="{r["core_width"]}" height="{r["core_height"]}"/></a>')
    return (f'<svg viewBox="0 0 {plane[1]} {plane[0]}" preserveAspectRatio="none" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rects)}</svg>')


def render_report(ctx: dict[str, Any]) -> str:
    """The report page from the context `qc_section` assembles."""
    m: pd.DataFrame = ctx["metrics"]
    s: QCSettings = ctx["settings"]
    summ = ctx["summary"]
    t = s.thresholds
    ov = ctx["overview"]
    n_flag = summ["flagged_tiles"]
    stats = [("tiles repaired", f'{summ["tiles_repaired"]}', ""),
             ("flagged", f"{n_flag}", "bad" if n_flag else "good"),
             ("repaired", _area(summ["repaired_um2"]), ""),
             ("of tissue", f'{_fmt(summ["repaired_pct_tissue"], ".2f")} %', ""),
             ("not repaired", f'{summ["tiles_unrepaired"]} tiles', "bad" if summ["tiles_unrepaired"] else ""),
             ("review", f'{summ["review"]["regenerated"]} regenerated · {summ["review"]["accepted"]} accepted', "")]
    stat_html = "".join(f'<div class="stat {c}">{_e(k)}<b>{_e(v)}</b></div>' for k, v, c in stats)
    plane = tuple(summ["plane_shape"])
    legend = (f'<div class="legend"><div><span class="sw line" style="background:rgb{COLORS["artifact"]}"></span>'
              'artifact (input mask)</div><div><span class="sw line" style="background:rgb'
              f'{COLORS["owned"]}"></span>repaired pixels</div><div><span class="sw" style="border:2px solid '
              'rgba(0,190,215,.55)"></span>tile core</div><div><span class="sw" style="border:2px solid #ff2d55">'
              '</span>flagged tile</div><div><span class="sw" style="border:2px dashed #ffb000"></span>'
              'regenerated after review</div><div style="margin-top:8px">Click a tile to jump to it.</div>'
              f'<div style="margin-top:14px">Overview at pyramid level {ov["level"]}.</div></div>')
    bias = ctx["bias"]
    bias_html = ("No detector bias measurement is installed (run <code>benchmarks/bench_detector.py "
                 "--write</code>)." if bias is None else
                 f'Cells are detected with <code>cytopaint.qc.cells.detect_cells</code> (optical density, '
                 f'threshold, distance-transform watershed), a fixed instrument. Its bias, measured on synthetic '
                 f'cortex with known cells at {bias["pixel_size_um"]:g} µm/px ({_e(bias["source"])}): '
                 f'<b>counts {bias["count_ratio"]:.2f}×</b> the true number, <b>mean size '
                 f'{bias["size_ratio"]:.2f}×</b> the true size (recall {bias["recall"]:.2f}, precision '
                 f'{bias["precision"]:.2f}, {bias["n_true"]} true cells). Repaired region and ring are measured '
                 'with the same instrument, so the bias largely cancels in the Δ columns; absolute densities and '
                 'sizes carry it.')
    rules = (f"density Δ beyond ±{t.density:.0%} and cell area Δ beyond ±{t.cell_area:.0%} (each only when "
             f"|z| ≥ {t.significance_z:g}), grey mean beyond ±{t.intensity_mean:g} sd of the ring, grey sd Δ beyond "
             f"±{t.intensity_sd:.0%}, seam above {t.seam:g}. The ring is intact tissue {s.ring_gap_um:g}–"
             f"{s.ring_gap_um + s.ring_width_um:g} µm from the repaired pixels (widened up to {MAX_RING_GROWTH}× "
             "where intact tissue is scarce).")
    cards = "".join(_card(m.loc[i], ctx["views"].get(i), ctx["review"], ctx["small_tiles"])
                    for i in ctx["shown"])
    hidden = len(m) - len(ctx["shown"])
    more = (f'<p class="note">{hidden} further tiles are in the table below without images '
            f"(qc.max_tile_panels = {s.max_tile_panels}).</p>" if hidden > 0 else "")
    tiles_html = (f"<h2>Tiles to look at first</h2><p>Flagged and regenerated tiles first, then by severity. "
                  f"Before and after are the tile's window as the sampler saw it; the mask shows "
                  f'<span style="color:rgb{COLORS["artifact"]}">artifact</span>, '
                  f'<span style="color:rgb{COLORS["owned"]}">pixels this tile generated</span>, '
                  f'<span style="color:rgb{COLORS["other"]}">pixels other tiles generated</span> and the '
                  f'<span style="color:rgb{COLORS["ring"]}">reference ring</span>; the difference is blue where '
                  "the repair is darker, red where brighter, white where unchanged.</p>"
                  f'<div class="cards">{cards}</div>{more}<h2>All tiles</h2>'
                  f"<p>Click a column to sort.</p>{_table(m)}") if len(m) else \
        "<h2>Tiles</h2><p>This section has no artifacts: nothing was repaired.</p>"
    ov_w = int(ov["shape"][1])
    disp_w = min(max(ov_w, OVERVIEW_MIN_PX), OVERVIEW_SHOW_PX)
    px = " px" if disp_w > ov_w else ""
    links = (f'<a href="{_e(ctx["metrics_name"])}">{QC_METRICS}</a> · <a href="../{MANIFEST}">{MANIFEST}</a>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>QC {_e(summ["section"])} · cytopaint</title><style>{_CSS}</style></head>
<body><header><h1>Section {_e(summ["section"])}</h1>
<div class="sub">cytopaint QC · {plane[0]} × {plane[1]} px at {summ["pixel_size_um"]:g} µm · output sha256
{_e(str(summ["output_sha256"])[:16])}… · {links}</div><div class="stats">{stat_html}</div></header>
<main><h2>Overview</h2>
<input type="radio" name="ov" id="show-after" checked hidden><input type="radio" name="ov" id="show-before" hidden>
<div class="toggle">Show: <label for="show-after">▣ repaired</label><label for="show-before">▢ input</label></div>
<div class="ovwrap"><div class="ov" style="width:{disp_w}px"><img class="img-after{px}" src="{ov["images"]["after"]}"
alt="repaired section"><img class="img-before{px}" src="{ov["images"]["before"]}" alt="input section">
{_overview_svg(m, plane)}</div>
{legend}</div>
<div class="note"><b>Flags</b> — {_e(rules)}</div>
<div class="note"><b>Cell detector</b> — {bias_html}</div>
{tiles_html}</main>
<footer>cytopaint {_e(ctx["code"])} · generated {_e(ctx["generated"])} · the review table decides what is
regenerated: one row per decision (section, tile, accept|reject, note).</footer>
<script>{_SORT_JS}</script></body></html>
"""


# ------------------------------------------------------------------------------ the section


def _order_for_panels(m: pd.DataFrame) -> list[int]:
    """Flagged or regenerated tiles first, then by severity (largest first); unrepaired last."""
    if m.empty:
        return []
    key = pd.DataFrame({"first": ~((m["flags"] != "") | (m["review"] == "regenerated")),
                        "unrepaired": m["status"] == STATUS_INSUFFICIENT, "sev": -m["severity"]})
    return key.sort_values(["first", "unrepaired", "sev"], kind="stable").index.tolist()


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
    sec = _Section(section, receipt["output"])
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
    shown = _order_for_panels(metrics)[: settings.max_tile_panels]
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
