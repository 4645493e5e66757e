"""Section artifacts: tears, missing tissue, folds and crystals.

Artifacts are analytic shapes in view µm, placed once per section from the seed (on a grid of about
400 x 400 points over the view) until they cover `damaged_fraction` of the tissue, so their placement
does not depend on the rendered window. Fine raggedness is added per pixel from global lattice noise.
Sizes follow DESIGN.md (tears µm-1 mm wide and mm-cm long with displaced sides, folds 0.1-2 mm wide,
missing pieces mm-cm from the tissue edge, crystals up to 100 µm), capped to the view and the budget.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .cortex import geometry
from .noise import lattice_grid, lattice_points
from .spec import ARTIFACT_KINDS, SectionSpec

TEAR, MISSING, FOLD, CRYSTAL = (ARTIFACT_KINDS.index(k) + 1 for k in ("tear", "missing", "fold", "crystal"))
_ART_STREAM = 1_000_003
S_RAG, S_ZIG = 21, 22  # lattice-noise streams of ragged edges and crack zigzags
_SHARES = {"missing": 0.36, "fold": 0.28, "tear": 0.32, "crystal": 0.04}  # of the damaged area
_FOLD_BLUR_UM = 1.5


@dataclass(frozen=True)
class Curve:
    """Open curve v = g(u) in a frame rotated by `angle` around (cy, cx); g is a sum of sines.

    An optional zigzag (1-D value noise of amplitude `zig` µm and scale `zig_wave` µm along u) roughens
    edges without bending the frame.
    """

    cy: float
    cx: float
    angle: float
    u0: float
    u1: float
    amps: tuple[float, ...]
    waves: tuple[float, ...]
    phases: tuple[float, ...]
    zig: float = 0.0
    zig_wave: float = 100.0

    def zigzag(self, u: np.ndarray) -> np.ndarray:
        if self.zig == 0:
            return np.zeros_like(u)
        knots = np.arange(math.floor(u.min()), math.ceil(u.max()) + 1, dtype=np.float64)  # global 1 µm knots
        line = np.full(knots.shape, 1e4 * self.phases[0])  # a line of the lattice field proper to this curve
        table = lattice_points(0, S_ZIG, knots, line, self.zig_wave / 2)
        return self.zig * np.interp(u, knots, table)

    def frame(self, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Along-curve coordinate u, signed normal distance r, and the unit normal (ny, nx) at each point."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dy, dx = yy - self.cy, xx - self.cx
        u, v = dx * c + dy * s, dy * c - dx * s
        g = np.zeros(np.broadcast(u, v).shape)
        gp = np.zeros_like(g)
        for a, lam, ph in zip(self.amps, self.waves, self.phases, strict=True):
            arg = 2 * np.pi * u / lam + ph
            g = g + a * np.sin(arg)
            gp = gp + a * 2 * np.pi / lam * np.cos(arg)
        k = 1 / np.sqrt(1 + gp * gp)
        return u, (v - g) * k, k * (c - gp * s), k * (-s - gp * c)

    def taper(self, u: np.ndarray, open_start: bool, power: float) -> np.ndarray:
        """Width profile along the curve: 0 outside [u0, u1]; open_start keeps it wide at u0."""
        t = np.clip((u - self.u0) / (self.u1 - self.u0), 0, 1)
        prof = (1 - t) if open_start else np.sin(np.pi * t)
        return np.where((u > self.u0) & (u < self.u1), prof, 0.0) ** power

    def bbox(self, pad: float) -> tuple[float, float, float, float]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        amp = sum(self.amps) + self.zig + pad
        ys = [self.cy + u * s + v * c for u in (self.u0, self.u1) for v in (-amp, amp)]
        xs = [self.cx + u * c - v * s for u in (self.u0, self.u1) for v in (-amp, amp)]
        return min(ys), min(xs), max(ys), max(xs)

    def scaled(self, f: float) -> Curve:
        return dataclasses.replace(self, u0=self.u0 * f, u1=self.u1 * f)


@dataclass(frozen=True)
class Tear:
    """A crack of width up to `width` µm; each side is pushed away by half the local width."""

    curve: Curve
    width: float
    from_edge: bool
    kind: int = TEAR

    @property
    def reach(self) -> float:  # distance over which the sides are displaced
        return max(3 * self.width, 150.0)

    def bbox(self) -> tuple[float, float, float, float]:
        return self.curve.bbox(self.reach)

    def scaled(self, f: float) -> Tear:
        return dataclasses.replace(self, curve=self.curve.scaled(f), width=self.width * f)

    def evaluate(self, yy: np.ndarray, xx: np.ndarray, rag: np.ndarray | float,
                 ps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gap coverage (0..1) and displacement (µm) from each observed point to its source in intact tissue."""
        u, r, ny, nx = self.curve.frame(yy, xx)
        wd = self.width * self.curve.taper(u, self.from_edge, 0.6) * (1 + 0.2 * np.sin(u / 97.0))
        half = wd / 2
        sd = half + rag * (0.1 * half + 1.0) * (half > 0) - np.abs(r - self.curve.zigzag(u))
        gap = np.clip(sd / max(ps, 0.5) + 0.5, 0, 1)
        d = self.reach
        src = np.sign(r) * np.maximum(np.abs(r) - half, 0) / (1 - half / d)
        delta = np.where(np.abs(r) < d, src - r, 0.0)
        return gap, delta * ny, delta * nx

    def region(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return self.evaluate(yy, xx, 0.0, 1.0)[0] > 0.5


@dataclass(frozen=True)
class Fold:
    """Tissue folded over itself: a darker band with a shifted, slightly blurred second layer."""

    curve: Curve
    width: float
    shift: float  # µm along the band between the two layers
    strength: float
    kind: int = FOLD

    def bbox(self) -> tuple[float, float, float, float]:
        return self.curve.bbox(self.width / 2 + 10)

    def scaled(self, f: float) -> Fold:
        return dataclasses.replace(self, curve=self.curve.scaled(f), width=self.width * f)

    def evaluate(self, yy: np.ndarray, xx: np.ndarray, rag: np.ndarray | float,
                 ps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Band coverage (0..1), crease OD, and the unit vector along the band (for the shifted layer)."""
        u, r, ny, nx = self.curve.frame(yy, xx)
        half = self.width / 2 * self.curve.taper(u, False, 0.3)
        sd = half + 2.8 * rag * (half > 0) - np.abs(r)
        band = np.clip(sd / max(ps, 0.5) + 0.5, 0, 1)
        crease = 0.25 * np.exp(-0.5 * (sd / 4.0) ** 2) * (half > 0)
        return band, crease, np.stack([-nx, ny])

    def region(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return self.evaluate(yy, xx, 0.0, 1.0)[0] > 0.5


@dataclass(frozen=True)
class Missing:
    """A ragged piece of tissue lost from the edge: star-shaped region around (cy, cx)."""

    cy: float
    cx: float
    radius: float
    aspect: float
    angle: float
    amps: tuple[float, ...]
    phases: tuple[float, ...]
    kind: int = MISSING

    def bbox(self) -> tuple[float, float, float, float]:
        r = self.radius * (1 + sum(self.amps)) + 40
        return self.cy - r, self.cx - r, self.cy + r, self.cx + r

    def scaled(self, f: float) -> Missing:
        return dataclasses.replace(self, radius=self.radius * f)

    def sd(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        dy, dx = yy - self.cy, xx - self.cx
        u, v = dx * c + dy * s, (dy * c - dx * s) / self.aspect
        th = np.arctan2(v, u)
        rad = self.radius * (1 + sum(a * np.cos(k * th + p) for k, (a, p) in enumerate(
            zip(self.amps, self.phases, strict=True), start=2)))
        return rad - np.hypot(u, v)

    def evaluate(self, yy: np.ndarray, xx: np.ndarray, rag: np.ndarray | float, ps: float) -> np.ndarray:
        return np.clip((self.sd(yy, xx) + (5.6 + 0.02 * self.radius) * rag) / max(ps, 0.5) + 0.5, 0, 1)

    def region(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return self.sd(yy, xx) > 0


@dataclass(frozen=True)
class Crystal:
    """A dark angular spot (stain precipitate) of radius up to 50 µm."""

    cy: float
    cx: float
    radius: float
    angle: float
    vertices: tuple[float, ...]  # relative radii of the polygon corners
    od: float
    kind: int = CRYSTAL

    def bbox(self) -> tuple[float, float, float, float]:
        r = self.radius * max(self.vertices) + 4
        return self.cy - r, self.cx - r, self.cy + r, self.cx + r

    def scaled(self, f: float) -> Crystal:
        return dataclasses.replace(self, radius=max(self.radius * f, 2.0))

    def sd(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        dy, dx = yy - self.cy, xx - self.cx
        n = len(self.vertices)
        th = (np.arctan2(dy, dx) - self.angle) % (2 * np.pi) / (2 * np.pi) * n
        i = np.floor(th).astype(int) % n
        f = th - np.floor(th)
        v = np.array(self.vertices)
        ang = np.pi / n  # half the angle between corners: straight edges between corners
        rel = v[i] * v[(i + 1) % n] * np.sin(2 * ang) / (v[i] * np.sin(f * 2 * ang) + v[(i + 1) % n]
                                                         * np.sin((1 - f) * 2 * ang))
        return self.radius * rel - np.hypot(dy, dx)

    def region(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return self.sd(yy, xx) > 0


Artifact = Tear | Fold | Missing | Crystal


def _curve(rng: np.random.Generator, cy: float, cx: float, angle: float, u0: float, u1: float,
           zigzag: bool) -> Curve:
    length = u1 - u0
    waves = tuple(length * rng.uniform(0.4, 1.2) / k for k in (1, 2, 3))
    amps = tuple(lam * rng.uniform(0.01, 0.05) for lam in waves)
    zig, zig_wave = (rng.uniform(3, 10), rng.uniform(40, 150)) if zigzag else (0.0, 100.0)
    return Curve(cy, cx, angle, u0, u1, amps, waves, tuple(rng.uniform(0, 2 * np.pi, 3)), zig, zig_wave)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw(kind: str, rng: np.random.Generator, budget_um2: float, ext: tuple[float, float],
          edge_pt: np.ndarray, tissue_pt: np.ndarray, inward: float) -> list[Artifact]:
    """One artifact (or a crystal cluster) of a kind, sized to at most about budget_um2 of tissue."""
    small, large = min(ext), max(ext)
    if kind == "missing":
        aspect = rng.uniform(0.5, 1.0)
        r = min(_loguniform(rng, 300, 3000), 0.35 * small, math.sqrt(2 * budget_um2 / (np.pi * aspect)))
        out = inward + np.pi  # centre pushed outwards: the piece bites into the tissue from its edge
        d = r * rng.uniform(0.0, 0.4)
        k = np.arange(2, 7)
        return [Missing(edge_pt[0] + d * math.sin(out), edge_pt[1] + d * math.cos(out), r, aspect,
                        rng.uniform(0, 2 * np.pi), tuple(rng.uniform(0, 0.5, 5) / k ** 0.7),
                        tuple(rng.uniform(0, 6.3, 5)))]
    if kind == "fold":
        length = min(_loguniform(rng, 3000, 30000), 1.5 * large)
        width = min(_loguniform(rng, 100, 2000), 0.2 * small, budget_um2 / (0.6 * min(length, 1.2 * large)))
        curve = _curve(rng, tissue_pt[0], tissue_pt[1], rng.uniform(0, np.pi), -length / 2, length / 2, False)
        return [Fold(curve, width, min(width / 2, 150.0) * rng.uniform(0.3, 1.0), rng.uniform(0.7, 1.0))]
    if kind == "tear":
        length = min(_loguniform(rng, 1000, 20000), 1.5 * large)
        width = min(_loguniform(rng, 10, 400), budget_um2 / (0.5 * min(length, 1.2 * large)))
        if rng.random() < 0.7:
            curve = _curve(rng, edge_pt[0], edge_pt[1], inward + rng.normal(0, 0.4), -100.0, length, True)
            return [Tear(curve, width, True)]
        curve = _curve(rng, tissue_pt[0], tissue_pt[1], rng.uniform(0, np.pi), -length / 2, length / 2, True)
        return [Tear(curve, width, False)]
    return crystal_cluster(rng, tissue_pt[0], tissue_pt[1], budget_um2)


def crystal_cluster(rng: np.random.Generator, cy: float, cx: float,
                    budget_um2: float = math.inf) -> list[Crystal]:
    """1-5 crystals (polygons of radius 3-50 µm, log-uniform) within 80 µm of (cy, cx) µm, ~budget_um2 in all."""
    n = int(rng.integers(1, 6))
    out: list[Crystal] = []
    for _ in range(n):
        r = min(_loguniform(rng, 3, 50), math.sqrt(budget_um2 / n / np.pi) + 2)
        off = rng.uniform(0, 80, 2) * (len(out) > 0)
        nv = int(rng.integers(4, 8))
        out.append(Crystal(cy + off[0], cx + off[1], r, rng.uniform(0, 2 * np.pi),
                           tuple(rng.uniform(0.6, 1.0, nv)), rng.uniform(1.2, 2.0)))
    return out


def _grid_slice(bbox: tuple[float, float, float, float], ys: np.ndarray, xs: np.ndarray) -> tuple[slice, slice]:
    y0, x0, y1, x1 = bbox
    return (slice(int(np.searchsorted(ys, y0)), int(np.searchsorted(ys, y1, "right"))),
            slice(int(np.searchsorted(xs, x0)), int(np.searchsorted(xs, x1, "right"))))


@functools.lru_cache(maxsize=8)
def artifact_layout(spec: SectionSpec) -> tuple[Artifact, ...]:
    """Artifacts of a section, decided globally (cheaply, on a ~400 x 400 grid) from its seed."""
    kinds = [k for k in ("missing", "fold", "tear", "crystal") if k in spec.artifact_kinds]
    if spec.damaged_fraction <= 0 or not kinds:
        return ()
    geom = geometry(spec)
    ext = spec.extent_um
    step = max(max(ext) / 400, 2.0)
    ys, xs = np.arange(step / 2, ext[0], step), np.arange(step / 2, ext[1], step)
    depth = geom.grid(ys, xs)["depth"]
    tissue = depth > 0
    target = spec.damaged_fraction * tissue.sum()
    if target < 1:
        return ()
    edge = np.argwhere(tissue & (depth < max(2 * step, 20.0)))
    inner = np.argwhere(tissue)
    if not len(edge):
        edge = inner
    rng = np.random.default_rng([spec.seed, _ART_STREAM])
    covered = np.zeros_like(tissue)
    total = 0
    arts: list[Artifact] = []
    share_sum = sum(_SHARES[k] for k in kinds)
    goal = 0.0
    for kind in kinds:
        goal += _SHARES[kind] / share_sum * target
        fails = 0
        while total < goal * 0.97 and fails < 60:
            remaining = goal - total
            e = edge[rng.integers(len(edge))]
            t = inner[rng.integers(len(inner))]
            e_pt, t_pt = np.array([ys[e[0]], xs[e[1]]]), np.array([ys[t[0]], xs[t[1]]])
            pg = geom.points(e_pt[:1], e_pt[1:])
            inward = math.atan2(pg["grad_y"][0], pg["grad_x"][0])
            cand = _draw(kind, rng, remaining * step * step, ext, e_pt, t_pt, inward)
            for _ in range(4):
                regions = []
                for a in cand:
                    sl = _grid_slice(a.bbox(), ys, xs)
                    reg = a.region(ys[sl[0], None], xs[None, sl[1]]) & tissue[sl] & ~covered[sl]
                    regions.append((sl, reg))
                new = np.zeros_like(tissue)
                for sl, reg in regions:
                    new[sl] |= reg
                inc = int(new.sum())
                if inc <= max(remaining * 1.3, 2) or inc == 0:
                    break
                cand = [a.scaled(math.sqrt(remaining / inc) * 0.9) for a in cand]
            if inc == 0 or total + inc > target * 1.08 + 2:
                fails += 1
                continue
            covered |= new
            total += inc
            arts.extend(cand)
    return tuple(arts)


def margin_px(spec: SectionSpec, arts: tuple[Artifact, ...], y0: int, x0: int, h: int, w: int) -> int:
    """Extra pixels of intact tissue around a window that displaced or folded content is sampled from."""
    ps = spec.pixel_size_um
    need = 0.0
    for a in arts:
        if isinstance(a, Tear | Fold) and _overlaps(a.bbox(), y0, x0, h, w, ps):
            need = max(need, a.width / 2 if isinstance(a, Tear) else a.shift + 3 * _FOLD_BLUR_UM)
    if need == 0:
        return 0
    tear_max = max((a.width / 2 for a in arts if isinstance(a, Tear)), default=0.0)
    return int(math.ceil((need + tear_max) / ps)) + 4


def _overlaps(bbox: tuple[float, float, float, float], y0: int, x0: int, h: int, w: int, ps: float) -> bool:
    by0, bx0, by1, bx1 = bbox
    return by1 >= y0 * ps and by0 <= (y0 + h) * ps and bx1 >= x0 * ps and bx0 <= (x0 + w) * ps


def _window_slice(bbox: tuple[float, float, float, float], y0: int, x0: int, h: int, w: int,
                  ps: float) -> tuple[slice, slice] | None:
    by0, bx0, by1, bx1 = bbox
    r0, r1 = max(0, int(math.floor(by0 / ps)) - y0), min(h, int(math.ceil(by1 / ps)) - y0 + 1)
    c0, c1 = max(0, int(math.floor(bx0 / ps)) - x0), min(w, int(math.ceil(bx1 / ps)) - x0 + 1)
    return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None


def apply_artifacts(spec: SectionSpec, arts: tuple[Artifact, ...], od_ext: np.ndarray, m: int, y0: int, x0: int,
                    h: int, w: int, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OD of the window with artifacts and the artifact class map (0 where the intact window has no tissue).

    od_ext: intact OD with an m-pixel margin; tissue: (h, w) bool, pixels with any stain in the intact window.
    Folds and crystals only lie on tissue, so outside the class map the image equals the intact one,
    except where tears push their sides apart.
    """
    ps = spec.pixel_size_um
    od = od_ext[m:m + h, m:m + w].copy()
    kind = np.zeros((h, w), np.uint8)
    ys, xs = (y0 + np.arange(h) + 0.5) * ps, (x0 + np.arange(w) + 0.5) * ps
    active = [(a, sl) for a in arts if (sl := _window_slice(a.bbox(), y0, x0, h, w, ps)) is not None]
    if not active:
        return od, kind

    def rag(sl: tuple[slice, slice]) -> np.ndarray:
        return lattice_grid(spec.seed, S_RAG, ys[sl[0]], xs[sl[1]], 8.0)

    def coords(sl: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return ys[sl[0], None], xs[None, sl[1]]

    rows = np.arange(h, dtype=np.float64)[:, None] + m
    cols = np.arange(w, dtype=np.float64)[None, :] + m
    disp_y, disp_x = np.zeros((h, w)), np.zeros((h, w))
    gaps = []
    for a, sl in active:
        if isinstance(a, Tear):
            gap, dy, dx = a.evaluate(*coords(sl), rag(sl), ps)
            disp_y[sl] += dy
            disp_x[sl] += dx
            gaps.append((sl, gap))
    moved = (disp_y != 0) | (disp_x != 0)
    if moved.any():
        src = np.stack([(rows + disp_y / ps)[moved], (cols + disp_x / ps)[moved]])
        od[moved] = ndi.map_coordinates(od_ext, src, order=1, mode="nearest")
    folds = [(a, sl) for a, sl in active if isinstance(a, Fold)]
    if folds:
        blurred = ndi.gaussian_filter(od_ext, _FOLD_BLUR_UM / ps, truncate=3.0)
        for a, sl in folds:
            band, crease, along = a.evaluate(*coords(sl), rag(sl), ps)
            src = np.stack([np.broadcast_to(rows + disp_y / ps, (h, w))[sl] + a.shift / ps * along[0],
                            np.broadcast_to(cols + disp_x / ps, (h, w))[sl] + a.shift / ps * along[1]])
            second = ndi.map_coordinates(blurred, src.reshape(2, -1), order=1, mode="nearest").reshape(band.shape)
            band *= tissue[sl]
            od[sl] += band * (a.strength * second + crease)
            kind[sl][band > 0] = FOLD
    for a, sl in active:
        if isinstance(a, Crystal):
            sd = a.sd(*coords(sl)) + 0.7 * rag(sl)
            od[sl] += a.od * np.clip(sd / max(0.4 * ps, 0.3) + 0.5, 0, 1) * tissue[sl]
            kind[sl][(sd > -2.0) & tissue[sl]] = CRYSTAL
    for a, sl in active:
        if isinstance(a, Missing):
            gone = a.evaluate(*coords(sl), rag(sl), ps)
            od[sl] *= 1 - gone
            kind[sl][gone > 0] = MISSING
    for sl, gap in gaps:
        od[sl] *= 1 - gap
        kind[sl][gap > 0] = TEAR
    kind[~tissue] = 0
    return od.astype(np.float32), kind
