"""Synthetic folded cortex: the section geometry (pia, sulci, layers, areas).

A hemisphere outline (a perturbed ellipse of about 65 x 75 mm) carries sulci: meandering
cuts from the surface, 6-16 mm deep, 12-300 µm wide, spaced 8-14 mm, some branched. The view of a
`SectionSpec` is placed (rotated) on this hemisphere so that the pia crosses it near the top at a gyral
crown or a sulcus mouth. On a coarse grid (10 µm or coarser) over the view plus a margin we compute
the signed distance to the pia (Euclidean distance transform), its gradient (radial direction),
the area instance of the nearest pial point (Voronoi patches of `area_width_mm`) and a smoothed
cortical thickness. Layers are bands of normalised depth depth/thickness. Cells and vessels in
this geometry: `cytopaint.synth.cells`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .areas import AREA_TYPES, AreaInstance, randomise
from .spec import SectionSpec

_GEOM_STREAM = 1_000_001
_AREA_STREAM = 1_000_002


@dataclass(frozen=True)
class Geometry:
    """Coarse fields over the view (plus margin); sample them with `grid` or `points`."""

    origin_um: float  # view coordinate (both axes) of the centre of coarse pixel (0, 0)
    step_um: float
    depth: np.ndarray  # float32, signed distance to the pia in µm (> 0 in tissue)
    grad_y: np.ndarray  # float32, gradient of depth (points away from the pia)
    grad_x: np.ndarray
    thick: np.ndarray  # float32, cortical thickness in µm (smoothed across area borders)
    aid: np.ndarray  # int16, index of the area instance of the nearest pial point
    areas: tuple[AreaInstance, ...]
    bounds: np.ndarray  # (K, 7) normalised depth of the layer tops I..VI and of the WM border
    codes: np.ndarray  # (K,) area type code per instance
    wm_glia_per_mm2: float
    gain: float  # section-wide staining gain
    background: float  # section-wide slide brightness (grey level)

    def _frac(self, v_um: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.clip((np.asarray(v_um, np.float64) - self.origin_um) / self.step_um, 0, n - 1.000001)
        i = np.floor(g).astype(np.intp)
        return i, g - i

    def grid(self, ys_um: np.ndarray, xs_um: np.ndarray) -> dict[str, np.ndarray]:
        """depth, thick (bilinear) and aid (nearest) on the pixel grid ys_um x xs_um."""
        iy, fy = self._frac(ys_um, self.depth.shape[0])
        ix, fx = self._frac(xs_um, self.depth.shape[1])
        r0, r1 = int(iy.min()), int(iy.max()) + 2

        def bilinear(f: np.ndarray) -> np.ndarray:
            rows = f[r0:r1, ix] * (1 - fx) + f[r0:r1, ix + 1] * fx
            return (rows[iy - r0] * (1 - fy)[:, None] + rows[iy - r0 + 1] * fy[:, None]).astype(np.float32)

        aid = self.aid[np.ix_(iy + (fy >= 0.5), ix + (fx >= 0.5))]
        return {"depth": bilinear(self.depth), "thick": bilinear(self.thick), "aid": aid}

    def points(self, y_um: np.ndarray, x_um: np.ndarray) -> dict[str, np.ndarray]:
        """depth, thick, grad_y, grad_x (bilinear) and aid (nearest) at scattered points."""
        iy, fy = self._frac(y_um, self.depth.shape[0])
        ix, fx = self._frac(x_um, self.depth.shape[1])

        def bilinear(f: np.ndarray) -> np.ndarray:
            return ((f[iy, ix] * (1 - fx) + f[iy, ix + 1] * fx) * (1 - fy)
                    + (f[iy + 1, ix] * (1 - fx) + f[iy + 1, ix + 1] * fx) * fy)

        return {"depth": bilinear(self.depth), "thick": bilinear(self.thick), "grad_y": bilinear(self.grad_y),
                "grad_x": bilinear(self.grad_x), "aid": self.aid[iy + (fy >= 0.5), ix + (fx >= 0.5)]}

    def layer_of(self, depth: np.ndarray, thick: np.ndarray, aid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layer labels (0 background, 1-6, 7 WM) and relative position within the layer (0 top .. 1 bottom)."""
        z = depth / np.maximum(thick, 1.0)
        layer = np.ones(z.shape, np.uint8)
        for j in range(1, 7):
            layer += z >= self.bounds[:, j][aid]
        top = self.bounds[aid, np.minimum(layer, 6) - 1]
        bot = self.bounds[aid, np.minimum(layer, 6)]
        t = np.clip((z - top) / np.maximum(bot - top, 1e-6), 0, 1)
        layer[depth <= 0] = 0
        return layer, t


def _hemisphere(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Outline polygon (N, 2) in brain µm (y, x), sulci [(polygon, centreline)], sulcus mouth arc positions."""
    ay, ax = rng.uniform(32e3, 40e3), rng.uniform(26e3, 34e3)
    theta = np.linspace(0, 2 * np.pi, 8192, endpoint=False)
    rad = 1 / np.sqrt((np.sin(theta) / ay) ** 2 + (np.cos(theta) / ax) ** 2)
    for k in range(2, 7):
        rad *= 1 + rng.normal(0, 0.03 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    pts = np.stack([rad * np.sin(theta), rad * np.cos(theta)], 1)
    seg = np.linalg.norm(np.diff(pts, axis=0, append=pts[:1]), axis=1)
    arc = np.concatenate([[0], np.cumsum(seg)[:-1]])
    perimeter = seg.sum()
    mouths = []
    s = rng.uniform(0, 10e3)
    while s < perimeter - 8e3:
        mouths.append(s)
        s += rng.uniform(8e3, 14e3)
    mouths = np.array(mouths)
    for m in mouths:  # rounded gyral shoulders: the surface dips towards each sulcus mouth
        d = np.abs(arc - m)
        d = np.minimum(d, perimeter - d)
        rad -= rng.uniform(0.8e3, 2.0e3) * np.exp(-0.5 * (d / rng.uniform(1.5e3, 2.5e3)) ** 2)
    outline = np.stack([rad * np.sin(theta), rad * np.cos(theta)], 1)
    rmin = 0.35 * min(ay, ax)
    sulci = []
    for m in mouths:
        i = int(np.searchsorted(arc, m)) % len(theta)
        inward = -outline[i] / np.linalg.norm(outline[i])
        start = outline[i] - 800 * inward
        heading = math.atan2(inward[0], inward[1]) + rng.normal(0, 0.2)
        length = rng.uniform(6e3, 16e3) + 800
        sulci.append(_sulcus(rng, start, heading, length, rng.uniform(60, 300), rng.uniform(12, 40), rmin))
        if rng.random() < 0.35:  # side branch
            path = sulci[-1][1]
            j = int(len(path) * rng.uniform(0.35, 0.7))
            if j >= 2:
                d = path[j] - path[j - 1]
                h = math.atan2(d[0], d[1]) + rng.choice([-1, 1]) * rng.uniform(0.6, 1.3)
                sulci.append(_sulcus(rng, path[j], h, length * rng.uniform(0.2, 0.45), rng.uniform(20, 60),
                                     rng.uniform(10, 30), rmin))
    return outline, sulci, mouths / perimeter * 2 * np.pi


def _sulcus(rng: np.random.Generator, start: np.ndarray, heading: float, length: float, w0: float, wmin: float,
            rmin: float) -> tuple[np.ndarray, np.ndarray]:
    """A meandering sulcus: (polygon of its CSF gap, centreline), 50 µm steps, narrowing with depth."""
    ds = 50.0
    n = max(2, int(length / ds))
    s = np.arange(n) * ds
    wobble = sum(rng.uniform(0.1, 0.35) * np.sin(2 * np.pi * s / rng.uniform(3e3, 12e3) + rng.uniform(0, 6.3))
                 for _ in range(3))
    h = heading + wobble - wobble[0]
    steps = np.stack([np.sin(h), np.cos(h)], 1) * ds
    path = start + np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], 0)])
    inside = np.hypot(path[:, 0], path[:, 1]) > rmin
    n = max(2, int(np.argmin(inside)) if not inside.all() else n)
    path, h, s = path[:n], h[:n], s[:n]
    w = wmin + (w0 - wmin) * np.exp(-s / 1500.0)
    w[-3:] *= np.array([0.8, 0.6, 0.4])[-min(3, n):]
    nrm = np.stack([np.cos(h), -np.sin(h)], 1)
    poly = np.concatenate([path + nrm * w[:, None] / 2, (path - nrm * w[:, None] / 2)[::-1]])
    return poly, path


def _fill_polygon(rc: np.ndarray, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray]:
    """Pixels (centres at integer coordinates) inside a polygon (even-odd rule), by scanline crossings.

    Returns the bounding-box slices within `shape` and the mask inside them.
    """
    r, c = rc[:, 0], rc[:, 1]
    r0, r1 = int(np.clip(np.ceil(r.min()), 0, shape[0])), int(np.clip(np.ceil(r.max()), 0, shape[0]))
    c0, c1 = int(np.clip(np.ceil(c.min()), 0, shape[1])), int(np.clip(np.ceil(c.max()), 0, shape[1]))
    r2, c2 = np.roll(r, -1), np.roll(c, -1)
    k0 = np.clip(np.ceil(np.minimum(r, r2)), r0, r1).astype(np.int64)
    k1 = np.clip(np.ceil(np.maximum(r, r2)), r0, r1).astype(np.int64)  # rows k0 .. k1-1 cross the edge
    n = k1 - k0
    e = np.repeat(np.arange(len(r)), n)
    k = np.repeat(k0, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    x = c[e] + (k - r[e]) * (c2[e] - c[e]) / (r2[e] - r[e])
    col = np.clip(np.ceil(x), c0, c1).astype(np.int64) - c0
    cnt = np.zeros((r1 - r0, c1 - c0 + 1), np.int32)
    np.add.at(cnt, (k - r0, col), 1)
    return (slice(r0, r1), slice(c0, c1)), (np.cumsum(cnt[:, :-1], axis=1) % 2).astype(bool)


@functools.lru_cache(maxsize=4)
def _geometry(seed: int, extent: tuple[float, float], areas: tuple[str, ...], area_width_mm: float, anchor: str,
              surface_frac: float) -> Geometry:
    rng = np.random.default_rng([seed, _GEOM_STREAM])
    outline, sulci, mouth_angles = _hemisphere(rng)
    # view transform: anchor point on the outline, outward normal pointing up (-y)
    k = int(rng.integers(len(mouth_angles)))
    if anchor == "sulcus":
        theta_a = mouth_angles[k]
    else:
        nxt = mouth_angles[(k + 1) % len(mouth_angles)] + (2 * np.pi if k + 1 == len(mouth_angles) else 0)
        theta_a = 0.5 * (mouth_angles[k] + nxt) % (2 * np.pi)
    n_out = len(outline)
    i = int(round(theta_a / (2 * np.pi) * n_out)) % n_out
    p_a = outline[i]
    tangent = outline[(i + 200) % n_out] - outline[(i - 200) % n_out]
    normal = np.array([-tangent[1], tangent[0]])  # outward for a counter-clockwise (y = r sin) outline
    if normal @ p_a < 0:
        normal = -normal
    beta = -np.pi / 2 - math.atan2(normal[0], normal[1])
    cb, sb = math.cos(beta), math.sin(beta)
    ey, ex = extent
    shift = np.array([surface_frac * ey, 0.5 * ex])

    def to_view(p: np.ndarray) -> np.ndarray:
        d = p - p_a
        return np.stack([d[:, 1] * sb + d[:, 0] * cb, d[:, 1] * cb - d[:, 0] * sb], 1) + shift

    margin = max(AREA_TYPES[a].thickness_mm for a in areas) * 1e3 * 1.2 + 300  # deepest pia that matters
    step = max(10.0, (max(ey, ex) + 2 * margin) / 2048)
    origin = -margin
    shape = (int(math.ceil((ey + 2 * margin) / step)) + 1, int(math.ceil((ex + 2 * margin) / step)) + 1)

    def to_grid(p: np.ndarray) -> np.ndarray:
        return (to_view(p) - origin) / step

    tissue = np.zeros(shape, bool)
    sl, inside = _fill_polygon(to_grid(outline), shape)
    tissue[sl] = inside
    for poly, path in sulci:
        sl, inside = _fill_polygon(to_grid(poly), shape)
        tissue[sl] &= ~inside
        c = to_grid(path)
        t = np.linspace(0, len(c) - 1, int(np.hypot(*np.diff(c, axis=0).T).sum() * 2) + 2)
        cy = np.interp(t, np.arange(len(c)), c[:, 0]).round().astype(int)
        cx = np.interp(t, np.arange(len(c)), c[:, 1]).round().astype(int)
        ok = (cy >= 0) & (cy < shape[0]) & (cx >= 0) & (cx < shape[1])
        tissue[cy[ok], cx[ok]] = False
    if tissue.all() or not tissue.any():
        raise ValueError("degenerate section geometry (no pia in view)")
    d_in, idx_in = ndi.distance_transform_edt(tissue, sampling=step, return_indices=True)
    d_out, idx_out = ndi.distance_transform_edt(~tissue, sampling=step, return_indices=True)
    depth = np.where(tissue, d_in - step / 2, -(d_out - step / 2)).astype(np.float32)
    near = np.where(tissue[None], idx_in, idx_out)  # grid index of the nearest pixel across the pia
    del d_in, d_out, idx_in, idx_out
    # area patches: Voronoi cells of seeds, evaluated at the nearest pial point (constant along the radius)
    arng = np.random.default_rng([seed, _AREA_STREAM])
    n_seeds = int(np.pi * 40e3 * 34e3 / (area_width_mm * 1e3) ** 2) + 1
    seeds = np.stack([arng.uniform(-42e3, 42e3, n_seeds), arng.uniform(-36e3, 36e3, n_seeds)], 1)
    kinds = [areas[j % len(areas)] for j in arng.permutation(n_seeds)]
    instances = tuple(randomise(AREA_TYPES[kname], np.random.default_rng([seed, _AREA_STREAM, j]))
                      for j, kname in enumerate(kinds))
    pia = np.argwhere(np.abs(depth) < step)  # every nearest pial pixel is one of these
    _, lab = cKDTree(to_view(seeds)).query(pia * step + origin)
    at_pia = np.zeros(shape, np.int16)
    at_pia[pia[:, 0], pia[:, 1]] = lab
    aid = at_pia[near[0], near[1]]
    del near, at_pia
    thick = np.array([a.thickness_um for a in instances], np.float32)[aid[::4, ::4]]
    thick = ndi.zoom(ndi.gaussian_filter(thick, 100.0 / step), 4, order=1)
    thick = np.pad(thick, [(0, max(0, s - t)) for s, t in zip(shape, thick.shape)], mode="edge")
    thick = np.ascontiguousarray(thick[:shape[0], :shape[1]], np.float32)
    smooth = ndi.gaussian_filter(depth, 1.5)
    grad_y, grad_x = (np.gradient(smooth, step)[i].astype(np.float32) for i in (0, 1))
    return Geometry(origin, step, depth, grad_y, grad_x, thick, aid, instances,
                    np.array([a.bounds for a in instances]), np.array([a.type.code for a in instances], np.uint8),
                    1600.0 * rng.uniform(0.7, 1.3), rng.uniform(0.85, 1.15), rng.uniform(234.0, 244.0))


def geometry(spec: SectionSpec) -> Geometry:
    """The (cached) coarse geometry of a section; depends on the seed and physical extent, not the pixel size."""
    ey, ex = spec.extent_um
    return _geometry(spec.seed, (round(ey, 3), round(ex, 3)), spec.areas, spec.area_width_mm, spec.anchor,
                     spec.surface_frac)


