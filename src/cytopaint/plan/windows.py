"""Smaller windows for tiles that own little: the sampler's cost follows the window, not the artifact.

A grid tile reads a full model tile (T x T) whatever it owns, so an isolated crystal of a few µm
costs as much as a tile deep in a fold. A tile whose owned pixels fit in the central
``core_fraction`` of a smaller window, of height and width each an allowed side (the network's
halvings of T, `cytopaint.diffusion.unet.UNetConfig.sides`) or T, is given the smallest such
window instead (a thin tear along a tile gets an oblong one), centred on what it owns within its
whole window, and its core is cut to the window. The ownership contract is kept:
the pixels of D in the old core all lie in the new one (the bounding box is taken from the coarse
mask, which covers D), so every pixel of D still has exactly one owner, and the window is still at
least ``min_known`` known (outside D, or owned by an earlier wave): isolated small artifacts, those
that a neighbour's artifact pushed into a later wave, and the rims of large holes shrink; the inside
of a large hole keeps whole tiles. At T = 1024 a 256 px window costs 1/16 of a tile per network
evaluation, a 256 x 1024 px one 1/4.

A tile whose owned pixels are scattered (crystals strewn over its core) is instead split into
*parts* when that costs less: clusters of its owned pixels, each the core of a plan row of its
own (``part`` 1, 2, ...) with its own smallest window. Clusters are grown until their boxes are
disjoint and no part's window meets another part's box, so the parts partition the tile's pixels
of D and none reads what a sibling of its wave generates.

A tile whose owned pixels are sparse in their box (a tear crossing the core diagonally has a square
bounding box, so no smaller window holds it) is instead cut into *cells* when that costs less: the
box is cut into a grid of cells no larger than a smaller window's core, and each cell takes the
smallest window of its own pixels. Neighbouring cells' windows overlap each other's pixels, so
cells run in *sub-waves*: a cell takes the first sub-wave that no cell whose box its
window meets (or whose window meets its box) holds, reads the cells of earlier sub-waves as known
and nothing that a cell of its own sub-wave generates. The plan's rows are then layered into
waves anew, in the order of (wave, sub-wave) (`_layered_waves`): a cell's later sub-waves delay only
the rows whose windows meet it, and what every row knows when it runs is unchanged.

Everything here reads the coarse mask of `cytopaint.plan.coarse`: bounding boxes are upper bounds
and known fractions lower bounds of the level-0 values, exact for a mask at level 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from cytopaint.geometry import Box

from .coarse import MaskArray, dilated_rows
from .ownership import Owners, core_box, window_box
from .table import STATUS_OK, frame


def _overlap(first: int, n: int, f: int, lo: int, hi: int) -> np.ndarray:
    """Level-0 length of each of ``n`` coarse pixels from ``first`` inside [lo, hi)."""
    starts = (first + np.arange(n)) * f
    return np.clip(np.minimum(starts + f, hi) - np.maximum(starts, lo), 0, None)


@dataclass(frozen=True)
class _CoarseWindow:
    """The coarse pixels of D over one tile's window, read once; level-0 boxes are asked of it."""

    d: np.ndarray
    first: tuple[int, int]  # coarse row and column of d[0, 0]
    factor: tuple[int, int]

    @classmethod
    def read(cls, mask: MaskArray, factor: tuple[int, int], shape: tuple[int, int], margin_px: int,
             win: Box) -> _CoarseWindow:
        (fy, fx), (a, c) = factor, (win.y0 // factor[0], win.x0 // factor[1])
        d = dilated_rows(mask, fy, fx, shape, margin_px, a, -(-win.y1 // fy), cols=(c, -(-win.x1 // fx)))
        return cls(d, (a, c), factor)

    def on(self, box: Box) -> tuple[np.ndarray, int, int]:
        """Coarse pixels meeting the level-0 ``box`` (inside the window), and their first coarse row and column."""
        (fy, fx), (a0, c0) = self.factor, self.first
        a, c = box.y0 // fy, box.x0 // fx
        return self.d[a - a0 : -(-box.y1 // fy) - a0, c - c0 : -(-box.x1 // fx) - c0], a, c

    def area(self, box: Box) -> int:
        """Level-0 pixels of ``box`` in coarse pixels of D: an upper bound of its pixels of D.

        Additive: the areas of boxes that partition a box sum to its area.
        """
        sub, a, c = self.on(box)
        (fy, fx) = self.factor
        return int(_overlap(a, sub.shape[0], fy, box.y0, box.y1) @ sub @ _overlap(c, sub.shape[1], fx, box.x0, box.x1))

    def extent(self, sub: np.ndarray, a: int, c: int, clip: Box) -> Box | None:
        """Level-0 bounding box of the coarse pixels ``sub`` (first row and column ``a``, ``c``), cut to ``clip``."""
        rows, cols = np.flatnonzero(sub.any(axis=1)).tolist(), np.flatnonzero(sub.any(axis=0)).tolist()
        if not rows:
            return None
        (fy, fx) = self.factor
        box = Box((a + rows[0]) * fy, (c + cols[0]) * fx, (a + rows[-1] + 1) * fy, (c + cols[-1] + 1) * fx)
        box = box.intersection(clip)
        return box if box else None


@dataclass(frozen=True)
class _Fit:
    """A window for a box of owned pixels: the window and its known fraction (a lower bound)."""

    window: Box
    known: float


@dataclass(frozen=True)
class _Context:
    """What one tile's candidate windows are judged on: its coarse D, its window and wave, the earlier owners."""

    cw: _CoarseWindow
    win: Box
    wave: int
    owners: Owners

    def known(self, box: Box, siblings: Sequence[Box] = ()) -> float:
        """Known fraction of ``box`` (in the window): a lower bound, exact for a mask at level 0.

        The grid cores of the plan partition the plane, so (by additivity) D's area in ``box`` less
        that in the cores of earlier waves bounds the pixels of D that no earlier wave owns.
        ``siblings`` are boxes of this tile's core whose D is known too (cells of earlier sub-waves).
        """
        earlier = [o.core for o in self.owners.before(box, self.wave)] + [b for b in siblings if b.meets(box)]
        unknown = self.cw.area(box) - sum(self.cw.area(core.intersection(box)) for core in earlier)
        return 1.0 - unknown / (box.height * box.width)


def _shapes(win: Box, sides: Sequence[int]) -> list[tuple[int, int]]:
    """Window shapes smaller than ``win``: height and width each an allowed side below the tile's or
    the tile's own, smallest area first (then the squarer)."""
    hs = sorted({s for s in sides if s < win.height} | {win.height})
    ws = sorted({s for s in sides if s < win.width} | {win.width})
    shapes = [(h, w) for h in hs for w in ws if (h, w) != win.shape]
    return sorted(shapes, key=lambda hw: (hw[0] * hw[1], abs(hw[0] - hw[1]), hw[0]))


def _fit(ctx: _Context, owned: Box, sides: Sequence[int], core_fraction: float, min_known: float) -> _Fit | None:
    """The smallest allowed window whose central ``core_fraction`` holds ``owned``, inside the tile's, known enough."""
    win = ctx.win
    for h, w in _shapes(win, sides):
        if owned.height > core_fraction * h or owned.width > core_fraction * w:
            continue
        y0 = min(max((owned.y0 + owned.y1 - h) // 2, win.y0), win.y1 - h)
        x0 = min(max((owned.x0 + owned.x1 - w) // 2, win.x0), win.x1 - w)
        box = Box.of_size(y0, x0, h, w)
        known = ctx.known(box)
        if known >= min_known:
            return _Fit(box, known)
    return None


def _pixels(fits: Sequence[_Fit]) -> int:
    """Window pixels of ``fits``: what sampling them costs per network evaluation."""
    return sum(f.window.height * f.window.width for f in fits)


def _union(a: Box, b: Box) -> Box:
    return Box(min(a.y0, b.y0), min(a.x0, b.x0), max(a.y1, b.y1), max(a.x1, b.x1))


def _parts(ctx: _Context, core: Box, sides: Sequence[int], core_fraction: float,
           min_known: float) -> list[tuple[Box, _Fit]] | None:
    """The tile's owned pixels as disjoint clusters, each with its window; None when they stay one.

    Starts from the 8-connected components of coarse D in the core and merges two clusters while
    their boxes meet or one's window meets the other's box; gives up (None) when a cluster fits no
    smaller window.
    """
    cw = ctx.cw
    sub, a, c = cw.on(core)
    labels, n = ndimage.label(sub, structure=np.ones((3, 3), dtype=bool))
    if n < 2:
        return None
    boxes = [cw.extent(labels[s] == k, a + s[0].start, c + s[1].start, core)
             for k, s in enumerate(ndimage.find_objects(labels), 1)]
    clusters = [b for b in boxes if b is not None]
    fits: dict[Box, _Fit | None] = {}
    while len(clusters) > 1:
        for box in clusters:
            if box not in fits:
                fits[box] = _fit(ctx, box, sides, core_fraction, min_known)
            if fits[box] is None:
                return None
        pair = next(((i, j) for i in range(len(clusters)) for j in range(i + 1, len(clusters))
                     if clusters[i].meets(clusters[j]) or fits[clusters[i]].window.meets(clusters[j])
                     or fits[clusters[j]].window.meets(clusters[i])), None)
        if pair is None:
            return [(box, fits[box]) for box in clusters]
        i, j = pair
        clusters[i] = _union(clusters[i], clusters.pop(j))
    return None


_SPARSE = 0.75  # cut into cells only a box that D fills less than this (a disk fills pi / 4 of its box)


def _grid(box: Box, side: int) -> list[Box]:
    """``box`` cut into a grid of equal cells at most ``side`` px high and wide, row-major."""
    ny, nx = -(-box.height // side), -(-box.width // side)
    ys = [box.y0 + box.height * k // ny for k in range(ny + 1)]
    xs = [box.x0 + box.width * k // nx for k in range(nx + 1)]
    return [Box(ys[i], xs[j], ys[i + 1], xs[j + 1]) for i in range(ny) for j in range(nx)]


def _cells(ctx: _Context, owned: Box, sides: Sequence[int], core_fraction: float,
           min_known: float) -> tuple[int, list[tuple[Box, _Fit]]] | None:
    """The cheapest cut of ``owned`` (the box of a tile's owned pixels) into cells, with their windows.

    Only a sparse box (D fills less than `_SPARSE` of it: a band, not a blob) is cut. For each
    allowed window side s whose core (``core_fraction`` s) is smaller than ``owned``, the box is cut
    into a grid of equal cells no larger than that core, and each cell holding pixels of D takes the
    smallest window of the box of its pixels (`_fit`). Returns (window pixels, cells) for the cut that
    costs fewest, or None when no cut has a window for every cell.
    """
    cw, best = ctx.cw, None
    if cw.area(owned) >= _SPARSE * owned.height * owned.width:
        return None
    for side in sorted({int(core_fraction * s) for s in sides if int(core_fraction * s) >= 1}):
        if owned.height <= side and owned.width <= side:
            continue
        cells, cost = [], 0
        for cell in _grid(owned, side):
            box = cw.extent(*cw.on(cell), cell)
            fit = None if box is None else _fit(ctx, box, sides, core_fraction, min_known)
            if box is not None and fit is None:
                break
            if box is not None:
                cells.append((box, fit))
                cost += _pixels([fit])
        else:
            if best is None or cost < best[0]:
                best = cost, cells
    return best


def _sub_waves(ctx: _Context, cells: list[tuple[Box, _Fit]]) -> list[tuple[Box, _Fit, int]]:
    """Each cell with its sub-wave (the first one no conflicting earlier cell holds) and its known
    fraction once the cells of earlier sub-waves are known."""
    out: list[tuple[Box, _Fit, int]] = []
    for box, fit in cells:
        taken = {s for b, f, s in out if f.window.meets(box) or fit.window.meets(b)}
        sub = next(s for s in range(len(cells)) if s not in taken)
        out.append((box, fit, sub))
    return [(box, _Fit(fit.window, ctx.known(fit.window, [b for b, _, s in out if s < sub])), sub)
            for box, fit, sub in out]


def _layered_waves(plan: pd.DataFrame, sub: np.ndarray) -> pd.DataFrame:
    """The plan in the fewest waves that keep the order of (wave, sub-wave) between any two rows of
    which one's core meets the other's window, sorted by wave (unscheduled last; the order within a
    wave kept).

    Rows are layered in that order: each takes the wave after the latest of the earlier rows it
    meets so, and wave 0 if none. Two rows that read each other's pixels thus keep their order
    (what a row knows when it runs is unchanged), and a cell's sub-waves delay only the rows whose
    windows meet it, not its whole wave.
    """
    wave = plan["wave"].to_numpy()
    key = wave * (int(sub.max()) + 1) + sub
    rows = list(plan.itertuples(index=False))
    wins, cores = [window_box(t) for t in rows], [core_box(t) for t in rows]
    side = max(max(b.height, b.width) for b in wins)
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    new = np.full(wave.size, -1, dtype=np.int64)
    for i in sorted(np.flatnonzero(wave >= 0).tolist(), key=lambda i: key[i]):
        win, core = wins[i], cores[i]
        near = {j for by in range(win.y0 // side - 1, (win.y1 - 1) // side + 2)
                for bx in range(win.x0 // side - 1, (win.x1 - 1) // side + 2) for j in buckets.get((by, bx), ())}
        new[i] = max((new[j] + 1 for j in near if key[j] < key[i] and (cores[j].meets(win) or wins[j].meets(core))),
                     default=0)
        buckets[(win.y0 // side, win.x0 // side)].append(i)
    out = plan.assign(wave=new)
    order = np.argsort(np.where(wave >= 0, new, new.max() + 1), kind="stable")
    return out.iloc[order].reset_index(drop=True)


_PLACE = ["y0", "x0", "height", "width", "core_y0", "core_x0", "core_height", "core_width", "known_fraction"]


def _placed(window: Box, core: Box, known: float) -> list[float]:
    return [*window.size, *core.size, known]


def shrink_windows(plan: pd.DataFrame, mask: MaskArray, factor: tuple[int, int], shape: tuple[int, int],
                   margin_px: int, sides: Sequence[int], core_fraction: float, min_known: float) -> pd.DataFrame:
    """The plan with a smaller window (and core cut to it) for every tile that owns little.

    ``sides`` are the window sides allowed below the tile's own; a scheduled tile of status ok
    takes the smallest window (heights and widths of ``sides`` or its own) whose central
    ``core_fraction`` holds the bounding box of its owned pixels and which, centred on that box and
    shifted inside the tile's own window, is at least ``min_known`` known (outside D or owned by an
    earlier wave), or is split into parts or cells (see the module) when their windows hold fewer
    pixels. Inside its own window, it reads nothing the wave's scheduling did not allow it (no pixel
    that a tile of the same wave generates). Parts follow their tile in the plan, named after it
    (``r00012c00034p1``); with cells, the rows are layered into waves anew (`_layered_waves`).
    Batches and seeds are left to the caller.
    """
    out, owners = plan.copy(), Owners(plan)
    place = out.columns.get_indexer(_PLACE)
    pieces: dict[int, list[dict[str, object]]] = {}
    for i, tile in enumerate(plan.itertuples(index=False)):
        if tile.status != STATUS_OK:
            continue
        win, core = window_box(tile), core_box(tile)
        cw = _CoarseWindow.read(mask, factor, shape, margin_px, win)
        owned = cw.extent(*cw.on(core), core)
        if owned is None:
            continue
        ctx = _Context(cw, win, int(tile.wave), owners)
        single = _fit(ctx, owned, sides, core_fraction, min_known)
        cost = _pixels([single]) if single else win.height * win.width
        split: list[tuple[Box, _Fit, int]] = []
        clusters = _parts(ctx, core, sides, core_fraction, min_known)
        if clusters and _pixels([f for _, f in clusters]) < cost:
            split, cost = [(box, f, 0) for box, f in clusters], _pixels([f for _, f in clusters])
        cells = _cells(ctx, owned, sides, core_fraction, min_known)
        if cells and len(cells[1]) > 1 and cells[0] < cost:
            split = _sub_waves(ctx, cells[1])
        if split:
            pieces[i] = [dict(zip(_PLACE, _placed(f.window, box, f.known), strict=True))
                         | {"part": k, "tile": f"{tile.tile}p{k}", "n_owned": cw.area(box), "sub": sub}
                         for k, (box, f, sub) in enumerate(split, 1)]
        elif single:
            out.iloc[i, place] = _placed(single.window, core.intersection(single.window), single.known)
    if not pieces:
        return out
    records = out.to_dict("records")
    rows = pd.DataFrame([r | p for i, r in enumerate(records) for p in pieces.get(i, [{}])])
    sub = rows.pop("sub").fillna(0).to_numpy(dtype=np.int64)
    return frame(_layered_waves(rows, sub) if sub.any() else rows)
