"""Synthetic cortex cells and vessels, generated per block of the section view.

Each block of BLOCK_UM x BLOCK_UM (view µm) draws its cells from
np.random.default_rng([seed, block_y, block_x]): somata are sampled in 3-D in a slab around the
section (inhomogeneous Poisson by thinning, volumetric densities of the area and layer), so that cut
cells appear as smaller, paler caps and the areal density follows N_A = N_V (t + D).
Vessels come from np.random.default_rng([seed, block_y, block_x, 1]). The geometry they live in
is `cytopaint.synth.cortex`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import beta as beta_fn

from .cortex import Geometry, geometry
from .areas import AREA_TYPES, WM
from .noise import lattice_points
from .spec import SectionSpec

BLOCK_UM = 256.0
CELL_REACH_UM = 200.0  # furthest a cell (soma + apical dendrite + column shift) reaches from its anchor
VESSEL_REACH_UM = 360.0  # furthest a vessel reaches from its block
KINDS = ("pyramidal", "granule", "interneuron", "fusiform", "betz", "glia", "endothelial")
PYR, GRAN, INTER, FUSI, BETZ, GLIA, ENDO = range(7)

S_DENSITY = 11  # lattice-noise stream of local density fluctuations (streams are unique package-wide)
MINICOLUMN_UM = 35.0

# kind mix (pyramidal, granule, interneuron, fusiform) per layer 0..7
_MIX = np.array([
    [0, 0, 1, 0],          # (unused: background)
    [0, 0, 1, 0],          # I
    [0.45, 0.55, 0, 0],    # II
    [0.8, 0, 0.2, 0],      # III
    [0.15, 0.85, 0, 0],    # IV
    [0.75, 0, 0.25, 0],    # V
    [0.35, 0, 0.2, 0.45],  # VI
    [0, 0, 0, 1],          # WM (interstitial neurons)
])
_WM_NEURONS_PER_MM3 = 400.0


def _profile_moments(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integrals of (1 - s^p)^q and s (1 - s^p)^q over s in [0, 1]."""
    return beta_fn(1 / p, q + 1) / p, beta_fn(2 / p, q + 1) / p


def _finish(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add profile area (µm^2), centroid (y, x) and its offset a_c along the axis from the anchor (ay, ax)."""
    m0b, m1b = _profile_moments(c["pb"], c["qb"])
    m0t, m1t = _profile_moments(c["pt"], c["qt"])
    tb, length, width = c["tb"], c["length"], c["width"]
    area = width * length * (tb * m0b + (1 - tb) * m0t)
    a_c = width * length ** 2 * ((1 - tb) ** 2 * m1t - tb ** 2 * m1b) / np.maximum(area, 1e-9)
    c["area_um2"] = area
    c["a_c"] = a_c
    c["y"] = c["ay"] + a_c * c["dy"]
    c["x"] = c["ax"] + a_c * c["dx"]
    return c


COLUMNS = ("ay", "ax", "dy", "dx", "length", "width", "tb", "pt", "qt", "pb", "qb", "dend_len", "dend_w",
           "nuc_r", "nuc_pale", "nucleolus_r", "od", "soft", "kind", "layer", "area", "z")


def _empty() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, np.float64) for k in COLUMNS}


def _shape_params(kind: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Profile parameters: base (b) and apex (t) of the soma follow hw = W/2 (1 - s^p)^q."""
    n = len(kind)
    pyr = (kind == PYR) | (kind == BETZ)
    spindle = (kind == FUSI) | (kind == ENDO)
    tb = np.where(pyr, rng.uniform(0.18, 0.3, n), 0.5)
    pb = np.where(pyr, rng.uniform(2.5, 5.0, n), 2.0)  # flat base with rounded corners
    qb = np.where(spindle, 1.0, 0.5)
    pt = np.where(pyr, 1.0, 2.0)
    qt = np.where(pyr, rng.uniform(0.75, 1.15, n), np.where(spindle, 1.0, 0.5))  # near-straight sides
    return {"tb": tb, "pb": pb, "qb": qb, "pt": pt, "qt": qt}


def _neuron_sizes(kind: np.ndarray, layer: np.ndarray, tin: np.ndarray, code: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Soma length (along the axis to the pia) and width in µm, per kind and layer (DESIGN.md soma sizes)."""
    n = len(kind)
    u = rng.uniform(0, 1, n)
    gran_d = np.where((code == AREA_TYPES["v1"].code) & (layer == 4), 5.0 + 3.0 * u, 6.0 + 5.0 * u)
    gran_d = np.clip(gran_d * rng.uniform(0.85, 1.15, n), 4.0, 12.0)
    inter_d = rng.normal(11.0, 2.0, n).clip(7, 16)
    pyr_len = np.select(
        [layer == 2, layer == 3, layer == 4, layer == 5],
        [rng.uniform(10, 16, n), (11 + 20 * tin ** 1.5) * rng.uniform(0.8, 1.35, n), rng.uniform(10, 16, n),
         rng.uniform(15, 32, n) * (1 + 0.15 * tin)],
        rng.uniform(12, 24, n))
    pyr_len *= np.where((layer == 3) & (rng.random(n) < 0.05), 1.4, 1.0)  # a few giants (IIIc: up to 60 µm)
    pyr_len *= np.where((code == AREA_TYPES["v1"].code) & (layer <= 4), 0.65, 1.0)  # small pyramids in V1
    pyr_w = np.where(layer == 5, np.clip(pyr_len * rng.uniform(0.55, 0.85, n), 15, 25),
                     np.minimum(pyr_len * rng.uniform(0.55, 0.8, n), 22.0))
    fus_len = rng.uniform(12, 25, n)
    betz_len = rng.uniform(60, 120, n)
    length = np.select([kind == GRAN, kind == INTER, kind == PYR, kind == FUSI, kind == BETZ],
                       [np.minimum(gran_d * rng.uniform(1.0, 1.25, n), 15.0), inter_d * rng.uniform(1.0, 1.35, n),
                        pyr_len, fus_len, betz_len])
    width = np.select([kind == GRAN, kind == INTER, kind == PYR, kind == FUSI, kind == BETZ],
                      [gran_d, inter_d, pyr_w, fus_len * rng.uniform(0.35, 0.55, n),
                       np.clip(betz_len * rng.uniform(0.35, 0.5, n), 30, 60)])
    return length, width


def _orient(gy: np.ndarray, gx: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Unit axis pointing to the pia (minus the depth gradient) rotated by N(0, sigma) radians."""
    ang = np.arctan2(-gy, -gx) + rng.normal(0, 1, len(gy)) * sigma
    return np.sin(ang), np.cos(ang)


def _cut(length: np.ndarray, width: np.ndarray, z: np.ndarray, section_um: float) -> tuple[np.ndarray, ...]:
    """Profile scale and OD factor of somata whose centre lies at z (µm) relative to the section mid-plane."""
    r = (length + width) / 4
    dz = np.abs(z) - section_um / 2
    scale = np.sqrt(np.clip(1 - (np.maximum(dz, 0) / r) ** 2, 0, 1))
    path = np.clip(np.minimum(z + r, section_um / 2) - np.maximum(z - r, -section_um / 2), 0, None)
    odf = (path / np.minimum(2 * r, section_um)) ** 0.6
    return scale, odf


class BlockGen:
    """Per-render cache of vessel blocks; generates cell blocks."""

    def __init__(self, spec: SectionSpec, geom: Geometry) -> None:
        self.spec, self.geom = spec, geom
        self.vessels: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        ey, ex = spec.extent_um
        self.nby, self.nbx = int(math.ceil(ey / BLOCK_UM)), int(math.ceil(ex / BLOCK_UM))

    def _block_info(self, by: int, bx: int) -> tuple[np.ndarray, bool, bool]:
        g = self.geom
        lo = np.floor((np.array([by, bx]) * BLOCK_UM - g.origin_um) / g.step_um).astype(int) - 1
        hi = np.ceil(((np.array([by, bx]) + 1) * BLOCK_UM - g.origin_um) / g.step_um).astype(int) + 2
        sl = (slice(max(lo[0], 0), hi[0]), slice(max(lo[1], 0), hi[1]))
        depth = g.depth[sl]
        present = np.unique(g.aid[sl])
        z = depth / np.maximum(g.thick[sl], 1)
        return present, bool((depth > 0).any()), bool((z > 0.9).any())

    # -- vessels ---------------------------------------------------------------------------------------------
    def vessel_block(self, by: int, bx: int) -> dict[str, np.ndarray]:
        """Vessel segments (y0, x0, y1, x1, r, strength, big) and their endothelial nuclei of one block."""
        key = (by, bx)
        if key in self.vessels:
            return self.vessels[key]
        rng = np.random.default_rng([self.spec.seed, by, bx, 1])
        area_mm2 = (BLOCK_UM * 1e-3) ** 2
        n_cap, n_big = rng.poisson(120 * area_mm2), rng.poisson(1.5 * area_mm2)
        n = n_cap + n_big
        big = np.arange(n) >= n_cap
        cy = by * BLOCK_UM + rng.uniform(0, BLOCK_UM, n)
        cx = bx * BLOCK_UM + rng.uniform(0, BLOCK_UM, n)
        diam = np.where(big, np.exp(rng.normal(np.log(25), 0.45, n)).clip(15, 100), rng.uniform(5, 8, n))
        cross = rng.random(n) < 0.5
        length = np.where(big, np.where(cross, diam * rng.uniform(0, 0.6, n), rng.uniform(80, 500, n)),
                          rng.uniform(15, 60, n))
        ang_rand = rng.uniform(0, 2 * np.pi, n)
        jitter = rng.normal(0, 0.12, n)
        keep_u = rng.random(n)
        strength = np.where(big, rng.uniform(0.75, 0.95, n), rng.uniform(0.1, 0.3, n))
        g = self.geom.points(cy, cx)
        layer, _ = self.geom.layer_of(g["depth"], g["thick"], g["aid"])
        radial = np.arctan2(-g["grad_y"], -g["grad_x"])
        ang = np.where(big, np.where(layer == WM, radial + np.pi / 2, radial) + jitter, ang_rand)
        ok = (layer > 0) & ((layer < WM) | big | (keep_u < 0.5))
        half = length / 2
        v = {"y0": cy - half * np.sin(ang), "x0": cx - half * np.cos(ang), "y1": cy + half * np.sin(ang),
             "x1": cx + half * np.cos(ang), "r": diam / 2, "strength": strength, "big": big}
        v = {k: a[ok] for k, a in v.items()}
        # endothelial nuclei along the walls: one on 60% of capillaries, one per 30 µm per side on big vessels
        reps = np.where(v["big"], np.maximum(1, (np.hypot(v["y1"] - v["y0"], v["x1"] - v["x0"]) / 30).astype(int)),
                        (rng.random(len(v["r"])) < 0.6).astype(int))
        idx = np.repeat(np.arange(len(reps)), reps)
        m = len(idx)
        t = rng.uniform(0, 1, m)
        side = rng.choice([-1.0, 1.0], m)
        vy, vx = v["y1"] - v["y0"], v["x1"] - v["x0"]
        norm = np.maximum(np.hypot(vy, vx), 1e-6)
        uy, ux = np.where(norm > 1e-3, vy / norm, 1.0), np.where(norm > 1e-3, vx / norm, 0.0)
        length_n, width_n = rng.uniform(8, 14, m), rng.uniform(3, 4.5, m)
        off = v["r"][idx] + width_n / 2 * 0.8
        endo = {"ay": v["y0"][idx] + t * vy[idx] - side * ux[idx] * off,
                "ax": v["x0"][idx] + t * vx[idx] + side * uy[idx] * off,
                "dy": uy[idx], "dx": ux[idx], "length": length_n, "width": width_n,
                "od": rng.uniform(0.35, 0.6, m), "z": rng.uniform(-8, 8, m)}
        v["endo"] = endo
        self.vessels[key] = v
        return v

    def vessels_near(self, by: int, bx: int) -> dict[str, np.ndarray]:
        """All vessel segments of blocks whose vessels can reach block (by, bx)."""
        k = int(math.ceil(VESSEL_REACH_UM / BLOCK_UM))
        parts = [self.vessel_block(j, i) for j in range(max(0, by - k), min(self.nby, by + k + 1))
                 for i in range(max(0, bx - k), min(self.nbx, bx + k + 1))]
        keys = ("y0", "x0", "y1", "x1", "r", "strength", "big")
        return {key: np.concatenate([p[key] for p in parts]) for key in keys}

    # -- cells -----------------------------------------------------------------------------------------------
    def cell_block(self, by: int, bx: int) -> dict[str, np.ndarray]:
        """All cells of one block (anchors inside the block, up to minicolumn shifts)."""
        spec, g = self.spec, self.geom
        present, has_tissue, has_wm = self._block_info(by, bx)
        if not has_tissue:
            return _empty()
        rng = np.random.default_rng([spec.seed, by, bx])
        y_lo, x_lo = by * BLOCK_UM, bx * BLOCK_UM
        t2 = spec.section_um / 2
        vol = BLOCK_UM ** 2 * 1e-9  # mm^3 per µm of slab thickness
        parts = []
        # neurons: 3-D Poisson by thinning
        dens_max = max(max(d for layer in g.areas[k].density for _, d in layer) for k in present)
        dens_max = max(dens_max, _WM_NEURONS_PER_MM3) * 1.25
        h = t2 + 28.0
        n = rng.poisson(dens_max * vol * 2 * h)
        y = y_lo + rng.uniform(0, BLOCK_UM, n)
        x = x_lo + rng.uniform(0, BLOCK_UM, n)
        z = rng.uniform(-h, h, n)
        accept_u = rng.uniform(0, 1, n)
        # minicolumns: pull cells towards radial lines ~35 µm apart (frame of the block centre)
        c = g.points(np.array([y_lo + BLOCK_UM / 2]), np.array([x_lo + BLOCK_UM / 2]))
        gn = math.hypot(c["grad_y"][0], c["grad_x"][0])
        if gn > 0.5:
            ty, tx = c["grad_x"][0] / gn, -c["grad_y"][0] / gn  # tangential unit vector
            u = (y - y_lo) * ty + (x - x_lo) * tx - rng.uniform(0, MINICOLUMN_UM)
            shift = (np.round(u / MINICOLUMN_UM) * MINICOLUMN_UM - u) * 0.45 + rng.normal(0, 3.5, n)
            y, x = y + shift * ty, x + shift * tx
        p = g.points(y, x)
        layer, tin = g.layer_of(p["depth"], p["thick"], p["aid"])
        dens = np.zeros(n)
        zn = p["depth"] / np.maximum(p["thick"], 1)
        for k in np.unique(p["aid"]):
            sel = (p["aid"] == k) & (layer >= 1) & (layer <= 6)
            edges, vals = g.areas[k].profile()
            dens[sel] = vals[np.clip(np.searchsorted(edges, zn[sel], "right") - 1, 0, len(vals) - 1)]
        dens[layer == WM] = _WM_NEURONS_PER_MM3
        dens *= 1 + 0.14 * np.clip(lattice_points(spec.seed, S_DENSITY, y, x, 120.0), -1.7, 1.7)
        keep = accept_u * dens_max < dens
        y, x, z, layer, tin = y[keep], x[keep], z[keep], layer[keep], tin[keep]
        p = {key: a[keep] for key, a in p.items()}
        m = len(y)
        cum = np.cumsum(_MIX[layer], 1)
        kind = np.array([PYR, GRAN, INTER, FUSI])[(rng.uniform(0, 1, m)[:, None] > cum).sum(1).clip(0, 3)]
        code = g.codes[p["aid"]]
        length, width = _neuron_sizes(kind, layer, tin, code, rng)
        sigma = np.select([kind == PYR, kind == FUSI], [0.12, 0.15], 3.0)
        dy, dx = _orient(p["grad_y"], p["grad_x"], sigma, rng)
        od = np.select([kind == PYR, kind == GRAN, kind == FUSI], [rng.uniform(0.4, 0.7, m),
                       rng.uniform(0.35, 0.6, m), rng.uniform(0.4, 0.65, m)], rng.uniform(0.3, 0.55, m))
        parts.append(self._cells(rng, y, x, z, dy, dx, length, width, kind, layer, code, od, p["depth"]))
        # Betz cells: giant pyramids in the lower half of layer V of motor areas (density given in-section)
        betz_max = max(g.areas[k].betz_per_mm2 for k in present)
        if betz_max > 0:
            nb = rng.poisson(betz_max / 0.55 * 1.3 * BLOCK_UM ** 2 * 1e-6)
            y, x = y_lo + rng.uniform(0, BLOCK_UM, nb), x_lo + rng.uniform(0, BLOCK_UM, nb)
            acc = rng.uniform(0, 1, nb)
            p = g.points(y, x)
            layer, tin = g.layer_of(p["depth"], p["thick"], p["aid"])
            lam = np.array([g.areas[k].betz_per_mm2 for k in p["aid"]]) / 0.55 * ((layer == 5) & (tin > 0.45))
            ok = acc * betz_max / 0.55 * 1.3 < lam
            y, x, layer, p = y[ok], x[ok], layer[ok], {key: a[ok] for key, a in p.items()}
            kind = np.full(len(y), BETZ)
            length, width = _neuron_sizes(kind, layer, tin[ok], g.codes[p["aid"]], rng)
            dy, dx = _orient(p["grad_y"], p["grad_x"], np.full(len(y), 0.08), rng)
            z = rng.uniform(-t2, t2, len(y))
            parts.append(self._cells(rng, y, x, z, dy, dx, length, width, kind, layer, g.codes[p["aid"]],
                                     rng.uniform(0.45, 0.75, len(y)), p["depth"]))
        neurons = _concat(parts)
        # grey-matter glia, some of them satellites touching larger neurons
        glia_max = max(g.areas[k].glia_per_mm3 for k in present)
        hg = t2 + 5.0
        ng = rng.poisson(glia_max * vol * 2 * hg)
        y, x = y_lo + rng.uniform(0, BLOCK_UM, ng), x_lo + rng.uniform(0, BLOCK_UM, ng)
        z, acc = rng.uniform(-hg, hg, ng), rng.uniform(0, 1, ng)
        d = rng.normal(6.5, 1.2, ng).clip(5, 9)
        big = np.flatnonzero(neurons["width"] > 10)
        sat = (rng.random(ng) < 0.15) & (len(big) > 0)
        if sat.any():
            host = big[rng.integers(0, len(big), int(sat.sum()))]
            ang = rng.uniform(0, 2 * np.pi, int(sat.sum()))
            rad = neurons["width"][host] / 2 + d[sat] / 2
            y[sat] = neurons["ay"][host] + rad * np.sin(ang)
            x[sat] = neurons["ax"][host] + rad * np.cos(ang)
            z[sat] = neurons["z"][host]
        p = g.points(y, x)
        layer, _ = g.layer_of(p["depth"], p["thick"], p["aid"])
        lam = np.array([g.areas[k].glia_per_mm3 for k in p["aid"]]) * ((layer >= 1) & (layer <= 6))
        ok = acc * glia_max < lam
        parts = [neurons, self._glia(rng, y[ok], x[ok], z[ok], d[ok], layer[ok], g.codes[p["aid"][ok]],
                                     p["depth"][ok])]
        # white-matter glia: 70% in rows along the fibres (perpendicular to the depth gradient), 30% scattered
        if has_wm:
            lam_wm = g.wm_glia_per_mm2 * BLOCK_UM ** 2 * 1e-6
            nrow = rng.poisson(lam_wm * 0.7 / 5.5)
            ry, rx = y_lo + rng.uniform(0, BLOCK_UM, nrow), x_lo + rng.uniform(0, BLOCK_UM, nrow)
            pr = g.points(ry, rx)
            ang = np.arctan2(pr["grad_x"], -pr["grad_y"]) + rng.normal(0, 0.15, nrow)
            cnt = rng.integers(3, 9, nrow)
            idx = np.repeat(np.arange(nrow), cnt)
            pos = np.concatenate([np.arange(c) for c in cnt]) if nrow else np.zeros(0)
            sp = rng.uniform(7.5, 11, len(idx)) * pos
            jit = rng.normal(0, 1.5, len(idx))
            y = ry[idx] + sp * np.sin(ang[idx]) + jit * np.cos(ang[idx])
            x = rx[idx] + sp * np.cos(ang[idx]) - jit * np.sin(ang[idx])
            niso = rng.poisson(lam_wm * 0.3)
            y = np.concatenate([y, y_lo + rng.uniform(0, BLOCK_UM, niso)])
            x = np.concatenate([x, x_lo + rng.uniform(0, BLOCK_UM, niso)])
            p = g.points(y, x)
            layer, _ = g.layer_of(p["depth"], p["thick"], p["aid"])
            ok = layer == WM
            d = rng.normal(6.5, 1.0, len(y)).clip(5, 9)
            z = rng.uniform(-t2, t2, len(y))
            parts.append(self._glia(rng, y[ok], x[ok], z[ok], d[ok], layer[ok], g.codes[p["aid"][ok]],
                                    p["depth"][ok]))
        cells = _concat(parts)
        # nothing inside vessel lumens; add the block's own endothelial nuclei
        v = self.vessels_near(by, bx)
        if len(v["r"]) and len(cells["ay"]):
            dist, _ = segment_distance(cells["ay"][:, None], cells["ax"][:, None], v)
            inside = (dist < v["r"][None, :] + 1.0).any(1)
            cells = {k: a[~inside] for k, a in cells.items()}
        e = self.vessel_block(by, bx)["endo"]
        if len(e["ay"]):
            pe = g.points(e["ay"], e["ax"])
            layer, _ = g.layer_of(pe["depth"], pe["thick"], pe["aid"])
            ok = layer > 0
            ne = int(ok.sum())
            endo = {k: a[ok] for k, a in e.items()}
            endo.update(_shape_params(np.full(ne, ENDO), rng), dend_len=np.zeros(ne), dend_w=np.zeros(ne),
                        nuc_r=np.zeros(ne), nuc_pale=np.zeros(ne), nucleolus_r=np.zeros(ne),
                        soft=0.3 + 0.05 * np.abs(endo["z"]), kind=np.full(ne, ENDO), layer=layer[ok],
                        area=g.codes[pe["aid"][ok]])
            cells = _concat([cells, endo])
        return cells

    def _cells(self, rng: np.random.Generator, y: np.ndarray, x: np.ndarray, z: np.ndarray, dy: np.ndarray,
               dx: np.ndarray, length: np.ndarray, width: np.ndarray, kind: np.ndarray, layer: np.ndarray,
               code: np.ndarray, od: np.ndarray, depth: np.ndarray) -> dict[str, np.ndarray]:
        """Neuron table: 3-D cut, apical dendrites, pale nucleus with a dark nucleolus in larger somata."""
        n = len(y)
        scale, odf = _cut(length, width, z, self.spec.section_um)
        pyr = (kind == PYR) | (kind == BETZ)
        cells = {"ay": y, "ax": x, "dy": dy, "dx": dx, "length": length * scale, "width": width * scale,
                 "dend_len": np.where(pyr, np.minimum(length * rng.uniform(0.3, 0.8, n), 40), 0.0) * scale ** 2,
                 "dend_w": np.clip(width * rng.uniform(0.14, 0.22, n), 1.5, 5.0),
                 "nuc_r": np.where(pyr & (width * scale >= 12), np.minimum(0.3 * width * rng.uniform(0.85, 1.1, n), 9),
                                   0),
                 "nuc_pale": rng.uniform(0.15, 0.35, n), "nucleolus_r": rng.uniform(0.7, 1.1, n),
                 "od": od * odf, "soft": 0.5 + 0.06 * np.abs(z), "kind": kind, "layer": layer, "area": code, "z": z}
        cells.update(_shape_params(kind, rng))
        ok = (cells["width"] >= 3.0) & (depth > 0.3 * cells["width"])
        return {k: a[ok] for k, a in cells.items()}

    def _glia(self, rng: np.random.Generator, y: np.ndarray, x: np.ndarray, z: np.ndarray, d: np.ndarray,
              layer: np.ndarray, code: np.ndarray, depth: np.ndarray) -> dict[str, np.ndarray]:
        """Glia nuclei: small, round, dark."""
        n = len(y)
        ang = rng.uniform(0, 2 * np.pi, n)
        length, width = np.minimum(d * rng.uniform(1.0, 1.25, n), 10.0), d
        scale, odf = _cut(length, width, z, self.spec.section_um)
        cells = {"ay": y, "ax": x, "dy": np.sin(ang), "dx": np.cos(ang), "length": length * scale,
                 "width": width * scale, "dend_len": np.zeros(n), "dend_w": np.zeros(n), "nuc_r": np.zeros(n),
                 "nuc_pale": np.zeros(n), "nucleolus_r": np.zeros(n), "od": rng.uniform(0.3, 0.75, n) * odf,
                 "soft": 0.4 + 0.05 * np.abs(z), "kind": np.full(n, GLIA), "layer": layer, "area": code, "z": z}
        cells.update(_shape_params(cells["kind"], rng))
        ok = (cells["width"] >= 2.5) & (depth > 0.3 * cells["width"])
        return {k: a[ok] for k, a in cells.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(p["ay"])]
    if not parts:
        return _empty()
    return {k: np.concatenate([np.asarray(p[k], np.float64) for p in parts]) for k in COLUMNS}


def segment_distance(py: np.ndarray, px: np.ndarray, v: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to vessel centre segments and the position t (0..1) along them (broadcasting)."""
    vy, vx = v["y1"] - v["y0"], v["x1"] - v["x0"]
    ll = np.maximum(vy * vy + vx * vx, 1e-9)
    t = np.clip(((py - v["y0"]) * vy + (px - v["x0"]) * vx) / ll, 0, 1)
    return np.hypot(py - v["y0"] - t * vy, px - v["x0"] - t * vx), t


def cells_in_region(spec: SectionSpec, y0_um: float, x0_um: float, y1_um: float, x1_um: float,
                    gen: BlockGen | None = None) -> dict[str, np.ndarray]:
    """Cells of all blocks whose cells can reach the region [y0, y1) x [x0, x1) (view µm)."""
    gen = gen or BlockGen(spec, geometry(spec))
    parts = [gen.cell_block(by, bx)
             for by in range(max(0, _block(y0_um - CELL_REACH_UM)), min(gen.nby, _block(y1_um + CELL_REACH_UM) + 1))
             for bx in range(max(0, _block(x0_um - CELL_REACH_UM)), min(gen.nbx, _block(x1_um + CELL_REACH_UM) + 1))]
    return _finish(_concat(parts))


def no_cells() -> dict[str, np.ndarray]:
    """An empty cell table with all columns."""
    return _finish(_empty())


def _block(v_um: float) -> int:
    return int(math.floor(v_um / BLOCK_UM))
