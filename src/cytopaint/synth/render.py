"""Render windows of a synthetic section: optical density of neuropil, cells and vessels -> uint8 image.

Image formation: I = B * 10^(-OD) + noise, with B the slide brightness (~234-246) and OD the
(Beer-Lambert) sum of neuropil, soma and artifact densities times a staining gain that varies over
millimetres. Every term is a pure function of global coordinates; cell contributions are accumulated
in fixed point, so a pixel has the same value whichever window it is rendered in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from .artifacts import apply_artifacts, artifact_layout, margin_px
from .cells import BLOCK_UM, KINDS, VESSEL_REACH_UM, BlockGen, cells_in_region, no_cells, segment_distance
from .cortex import Geometry, geometry
from .noise import fbm_grid, lattice_grid, tile_normal
from .spec import SectionSpec

_BUCKETS = np.array([3, 4, 6, 8, 11, 16, 22, 32, 45, 64, 90, 128, 181, 256])
_FIXED = 2.0 ** 16  # fixed-point scale of accumulated cell OD
_CHUNK = 1 << 20  # pixels evaluated per vectorised chunk (bounds memory)
# lattice-noise streams (distinct from cells.S_DENSITY and artifacts.S_*)
S_PIA, S_LAYER, S_TEXTURE, S_NISSL, S_GAIN, S_BG = 1, 2, 3, 4, 5, 6
S_PIXEL_NOISE, S_ROUGH = 7, 8


def _ramp(x: np.ndarray) -> np.ndarray:
    """Soft step from 0 (x <= -1.5) to 1 (x >= 1.5): a smoothstep approximating a blurred edge."""
    t = np.clip(0.5 + x / 3.0, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _cell_od(a: np.ndarray, b: np.ndarray, c: dict[str, np.ndarray], sig: np.ndarray, rough: np.ndarray) -> np.ndarray:
    """OD of cells at local coordinates a (axis to the pia, from the widest point) and b (across), in µm.

    rough (µm) perturbs the outline (irregular soma borders).
    """
    length, width, tb = c["length"], c["width"], c["tb"]
    ltop, lbot = length * (1 - tb), length * tb
    up = a >= 0
    s = np.clip(np.where(up, a / ltop, -a / lbot), 0, 1)
    g = (1 - s ** np.where(up, c["pt"], c["pb"])) ** np.where(up, c["qt"], c["qb"])
    ab = np.abs(b)
    soma = _ramp((np.minimum(width / 2 * g - ab, np.minimum(ltop - a, a + lbot)) + rough) / sig)
    aend = ltop + c["dend_len"]
    hwd = c["dend_w"] / 2 * np.clip(1 - a / aend, 0, 1) ** 0.6
    dend = _ramp(np.minimum(hwd - ab, np.minimum(aend - a, a)) / sig) * (c["dend_len"] > 0)
    r = np.hypot(a - c["a_c"], b)  # the nucleus sits at the centroid of the soma
    nuc = _ramp((c["nuc_r"] - r) / sig)
    nucleolus = _ramp((c["nucleolus_r"] - r) / (0.5 * sig)) * (c["nuc_r"] > 0)
    return c["od"] * (np.maximum(soma, 0.7 * dend) * (1 - c["nuc_pale"] * nuc) + 0.5 * nucleolus * soma)


def draw_cells(cells: dict[str, np.ndarray], y0: int, x0: int, h: int, w: int, ps: float,
               rough: np.ndarray | None = None) -> np.ndarray:
    """Sum of cell ODs over the pixel window (float32), order-independent (fixed-point accumulation).

    rough: optional (h, w) outline perturbation in µm (a global noise field sampled on the window).
    """
    acc = np.zeros(h * w, np.float64)
    if not len(cells["ay"]):
        return acc.reshape(h, w).astype(np.float32)
    sig_all = cells["soft"] + 0.4 * ps
    length, tb = cells["length"], cells["tb"]
    reach = np.maximum.reduce([length * (1 - tb) + cells["dend_len"], length * tb, cells["width"] / 2]) + 2 * sig_all
    rad = np.ceil(reach / ps).astype(int) + 1
    cy, cx = cells["ay"] / ps - 0.5 - y0, cells["ax"] / ps - 0.5 - x0
    hit = (cy + rad >= 0) & (cy - rad < h) & (cx + rad >= 0) & (cx - rad < w)
    bucket = _BUCKETS[np.minimum(np.searchsorted(_BUCKETS, rad), len(_BUCKETS) - 1)]
    for bsz in np.unique(bucket[hit]):
        idx = np.flatnonzero(hit & (bucket == bsz))
        p = 2 * int(bsz) + 1
        step = max(1, _CHUNK // (p * p))
        ar = np.arange(p)
        for k in range(0, len(idx), step):
            j = idx[k:k + step]
            rows = np.round(cy[j]).astype(np.int64)[:, None] - bsz + ar  # (n, p)
            cols = np.round(cx[j]).astype(np.int64)[:, None] - bsz + ar
            ry = ((rows + y0 + 0.5) * ps - cells["ay"][j, None]).astype(np.float32)[:, :, None]
            rx = ((cols + x0 + 0.5) * ps - cells["ax"][j, None]).astype(np.float32)[:, None, :]
            c = {key: cells[key][j].astype(np.float32)[:, None, None] for key in
                 ("length", "width", "tb", "pt", "qt", "pb", "qb", "dend_len", "dend_w", "nuc_r", "nuc_pale",
                  "nucleolus_r", "od", "a_c")}
            dy = cells["dy"][j].astype(np.float32)[:, None, None]
            dx = cells["dx"][j].astype(np.float32)[:, None, None]
            a = ry * dy + rx * dx
            b = rx * dy - ry * dx
            rgh = 0.0 if rough is None else rough[np.clip(rows, 0, h - 1)[:, :, None],
                                                  np.clip(cols, 0, w - 1)[:, None, :]]
            od = _cell_od(a, b, c, sig_all[j].astype(np.float32)[:, None, None], rgh)
            valid = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]) & (od > 0)
            flat = (rows[:, :, None] * w + cols[:, None, :])[valid]
            acc += np.bincount(flat, weights=np.round(od[valid].astype(np.float64) * _FIXED), minlength=h * w)
    return (acc / _FIXED).reshape(h, w).astype(np.float32)


def draw_vessels(v: dict[str, np.ndarray], y0: int, x0: int, h: int, w: int, ps: float,
                 rough: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lumen multiplier of tissue OD (1 = no vessel) and OD of vessel walls; min/max-combined (order-free).

    Lumens narrow towards both ends (the vessel leaves the section); rough (µm) makes their walls irregular.
    """
    mult = np.ones((h, w), np.float32)
    rim = np.zeros((h, w), np.float32)
    sig = 0.5 + 0.4 * ps
    for i in range(len(v["r"])):
        r, big = v["r"][i], bool(v["big"][i])
        reach = r + (8.0 if big else 2.0) + 2 * sig
        ya, yb = sorted((v["y0"][i], v["y1"][i]))
        xa, xb = sorted((v["x0"][i], v["x1"][i]))
        r0, r1 = max(0, int(math.floor((ya - reach) / ps)) - y0), min(h, int(math.ceil((yb + reach) / ps)) - y0 + 1)
        c0, c1 = max(0, int(math.floor((xa - reach) / ps)) - x0), min(w, int(math.ceil((xb + reach) / ps)) - x0 + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        py = ((np.arange(r0, r1) + y0 + 0.5) * ps)[:, None]
        px = ((np.arange(c0, c1) + x0 + 0.5) * ps)[None, :]
        one = {k: v[k][i] for k in ("y0", "x0", "y1", "x1")}
        d, t = segment_distance(py, px, one)
        length = math.hypot(one["y1"] - one["y0"], one["x1"] - one["x0"])
        r_eff = r * np.sqrt(np.clip(np.minimum(t, 1 - t) * length / (2 * r) + 0.1, 0, 1))
        d = (d - r_eff + r + rough[r0:r1, c0:c1]).astype(np.float32)
        lumen = _ramp((r - d) / sig)
        mult[r0:r1, c0:c1] = np.minimum(mult[r0:r1, c0:c1], 1 - v["strength"][i] * lumen)
        if big:
            wall = 0.06 * np.exp(-0.5 * ((d - r - 3.0) / 3.0) ** 2)
            rim[r0:r1, c0:c1] = np.maximum(rim[r0:r1, c0:c1], wall)
    return mult, rim


def _labels(spec: SectionSpec, geom: Geometry, ys: np.ndarray, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Tissue edge distance (ragged pia, µm), layer-jittered depth, layer and area maps on a pixel grid."""
    f = geom.grid(ys, xs)
    fine = 1.5 * spec.pixel_size_um
    edge = f["depth"] + fbm_grid(spec.seed, S_PIA, ys, xs, (5.0, 25.0), (0.7, 2.0), fine)
    depth_l = f["depth"] + 6.0 * lattice_grid(spec.seed, S_LAYER, ys, xs, 120.0)
    layer, _ = geom.layer_of(depth_l, f["thick"], f["aid"])
    tissue = edge > 0
    layer[~tissue] = 0
    layer[tissue & (layer == 0)] = 1
    area = np.where(tissue, geom.codes[f["aid"]], 0).astype(np.uint8)
    return {"edge": edge, "z": depth_l / np.maximum(f["thick"], 1), "aid": f["aid"], "layer": layer, "area": area}


def label_window(spec: SectionSpec, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer and area maps of a window (the same as render_window's), without rendering cells."""
    ps = spec.pixel_size_um
    lab = _labels(spec, geometry(spec), (y0 + np.arange(h) + 0.5) * ps, (x0 + np.arange(w) + 0.5) * ps)
    return lab["layer"], lab["area"]


def _clean(spec: SectionSpec, geom: Geometry, gen: BlockGen, y0: int, x0: int, h: int, w: int,
           with_cells: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Intact tissue OD (exactly 0 off the tissue), layer map, area map and the cells that touch the window."""
    ps, seed = spec.pixel_size_um, spec.seed
    ys, xs = (y0 + np.arange(h) + 0.5) * ps, (x0 + np.arange(w) + 0.5) * ps
    lab = _labels(spec, geom, ys, xs)
    fine = 1.5 * ps
    alpha = np.clip(lab["edge"] / max(1.0, ps) + 0.5, 0, 1)
    z = lab["z"]
    w_wm = np.clip((z - 0.95) / 0.15, 0, 1)
    w_l1 = np.clip((geom.bounds[:, 1][lab["aid"]] - z) / 0.02, 0, 1)
    base = 0.072 * (1 - w_wm) + 0.048 * w_wm - 0.01 * w_l1
    texture = 1 + fbm_grid(seed, S_TEXTURE, ys, xs, (2.5, 6.0, 20.0), (0.13, 0.085, 0.055), fine)
    limitans = 0.04 * np.exp(-np.maximum(lab["edge"], 0) / 3.0)
    od = alpha * (base * texture + limitans)
    rough = lattice_grid(seed, S_ROUGH, ys, xs, 2.5) if 2.5 >= fine else np.zeros((h, w), np.float32)
    if with_cells:
        cells = cells_in_region(spec, y0 * ps, x0 * ps, (y0 + h) * ps, (x0 + w) * ps, gen)
        od_cells = draw_cells(cells, y0, x0, h, w, ps, 0.5 * rough)
        od += od_cells * (1 + fbm_grid(seed, S_NISSL, ys, xs, (1.2, 3.0), (0.14, 0.07), fine))
    else:
        cells = no_cells()
    mult, rim = draw_vessels(_vessels_near(gen, ys[0], xs[0], ys[-1], xs[-1]), y0, x0, h, w, ps, rough)
    gain = geom.gain * (1 + 0.07 * lattice_grid(seed, S_GAIN, ys, xs, 1500.0)
                        + 0.03 * lattice_grid(seed, S_GAIN + 100, ys, xs, 300.0))
    od = (gain * od * mult + rim * alpha).astype(np.float32)
    return od, lab["layer"], lab["area"], cells


def _vessels_near(gen: BlockGen, y0_um: float, x0_um: float, y1_um: float, x1_um: float) -> dict[str, np.ndarray]:
    b = BLOCK_UM
    r = VESSEL_REACH_UM
    parts = [gen.vessel_block(by, bx)
             for by in range(max(0, int((y0_um - r) // b)), min(gen.nby, int((y1_um + r) // b) + 1))
             for bx in range(max(0, int((x0_um - r) // b)), min(gen.nbx, int((x1_um + r) // b) + 1))]
    keys = ("y0", "x0", "y1", "x1", "r", "strength", "big")
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in keys}


def _cell_table(cells: dict[str, np.ndarray], y0: int, x0: int, h: int, w: int, ps: float) -> pd.DataFrame:
    """Ground-truth cells whose centroid lies in the window; y, x in window pixels (pixel i centred at i)."""
    y, x = cells["y"] / ps - 0.5 - y0, cells["x"] / ps - 0.5 - x0
    ok = (y >= -0.5) & (y < h - 0.5) & (x >= -0.5) & (x < w - 0.5)
    return pd.DataFrame({
        "y": y[ok], "x": x[ok], "y_um": cells["y"][ok], "x_um": cells["x"][ok], "area_um2": cells["area_um2"][ok],
        "kind": pd.Categorical.from_codes(cells["kind"][ok].astype(int), KINDS),
        "layer": cells["layer"][ok].astype(np.uint8), "area": cells["area"][ok].astype(np.uint8),
        "length_um": cells["length"][ok], "width_um": cells["width"][ok], "od": cells["od"][ok],
        "z_um": cells["z"][ok]})


def render_window(spec: SectionSpec, y0: int, x0: int, h: int, w: int,
                  with_cells: bool = True) -> dict[str, np.ndarray | pd.DataFrame]:
    """Render pixels [y0, y0+h) x [x0, x0+w) of a section.

    Returns image (uint8, with artifacts), intact (uint8, same tissue without artifacts), mask (bool,
    artifact pixels over stained intact tissue, partly covered edge pixels included), artifact (uint8
    class: 0 none, 1 tear, 2 missing, 3 fold, 4 crystal), layer (uint8: 0 background, 1-6, 7 white
    matter), area (uint8 area-type code, see synth.AREA_TYPES) and cells (DataFrame of ground-truth
    somata with their centroid in the window: y, x in window pixels (pixel i centred at i), y_um, x_um
    in section µm, area_um2, kind, layer, area, length_um, width_um, od (peak optical density), z_um).
    Layer, area and cells describe the intact tissue. Outside the mask the image equals the intact one,
    except next to tears, whose sides are displaced by up to half the tear width.
    with_cells=False skips the cells (neuropil, vessels and artifacts only; fast, e.g. for masks).
    """
    if h < 1 or w < 1 or y0 < 0 or x0 < 0 or y0 + h > spec.shape[0] or x0 + w > spec.shape[1]:
        raise ValueError(f"window ({y0}, {x0}, {h}, {w}) is empty or outside the section {spec.shape}")
    ps = spec.pixel_size_um
    geom = geometry(spec)
    gen = BlockGen(spec, geom)
    arts = artifact_layout(spec)
    m = margin_px(spec, arts, y0, x0, h, w)
    od_ext, layer, area, cells = _clean(spec, geom, gen, y0 - m, x0 - m, h + 2 * m, w + 2 * m, with_cells)
    inner = (slice(m, m + h), slice(m, m + w))
    od_intact, layer, area = od_ext[inner], layer[inner], area[inner]
    od_img, kind = apply_artifacts(spec, arts, od_ext, m, y0, x0, h, w, od_intact > 0)
    ys, xs = (y0 + np.arange(h) + 0.5) * ps, (x0 + np.arange(w) + 0.5) * ps
    bright = geom.background + 2.0 * lattice_grid(spec.seed, S_BG, ys, xs, 3000.0)
    noise = tile_normal(spec.seed, S_PIXEL_NOISE, y0, x0, h, w) * (spec.noise_sigma / max(ps, 1.0))

    def to_u8(od: np.ndarray) -> np.ndarray:
        return np.clip(np.round(bright * np.power(10.0, -od) + noise), 0, 255).astype(np.uint8)

    mask = kind > 0
    return {"image": to_u8(od_img), "intact": to_u8(od_intact), "mask": mask,
            "artifact": kind, "layer": layer, "area": area,
            "cells": _cell_table(cells, y0, x0, h, w, ps)}


def render_section(spec: SectionSpec, with_cells: bool = True) -> dict[str, np.ndarray | pd.DataFrame]:
    """The whole section in one window (small specs only; use iter_windows for large ones)."""
    return render_window(spec, 0, 0, *spec.shape, with_cells=with_cells)


def iter_windows(spec: SectionSpec, size: int = 2048,
                 with_cells: bool = True) -> Iterator[tuple[int, int, dict[str, np.ndarray | pd.DataFrame]]]:
    """Yield (y0, x0, render_window(...)) over a grid of size x size windows covering the section.

    Memory stays bounded by the window size: windows are rendered one at a time and tile seamlessly.
    """
    hh, ww = spec.shape
    for y0 in range(0, hh, size):
        for x0 in range(0, ww, size):
            yield y0, x0, render_window(spec, y0, x0, min(size, hh - y0), min(size, ww - x0), with_cells)


def cells_in_window(spec: SectionSpec, y0: int, x0: int, h: int, w: int) -> pd.DataFrame:
    """Ground-truth cell table of a window without rendering pixels."""
    ps = spec.pixel_size_um
    cells = cells_in_region(spec, y0 * ps, x0 * ps, (y0 + h) * ps, (x0 + w) * ps)
    return _cell_table(cells, y0, x0, h, w, ps)


