"""Tile plan of one section: which tiles to repaint, who owns which pixel, in which wave.

Geometry (level-0 pixels, axes y then x). The plane is cut from the origin into a regular grid of
*core* cells of ``core_size`` C (the last row and column of cells clipped by the image). Tile
(row, col) reads a *window* of ``tile_size`` T centred on its core: the core plus a context
border of (T - C) // 2 before it and the rest after it. At the image border the window is
shifted, never padded, so that it stays inside the image; it still contains its core. Only an
image smaller than T along an axis gives a shorter window (the whole axis), which the sampler
must pad.

Ownership. The dilated mask D is the level-0 artifact mask (nearest upsampling of the coarse
mask; nothing outside the image plane) dilated by a Euclidean disk of ``margin_px``. A tile owns
exactly D ∩ its core. Cores partition the plane, so every pixel of D has exactly one owner,
whatever the waves. `owned_mask` and `known_mask` evaluate this on one tile's window; planner,
sampler and blender share them.

Waves. A tile may be sampled once the known part of its window (pixels outside D, plus pixels
owned by tiles of earlier waves) is at least ``min_known``. Each wave takes, among the tiles that
qualify, a maximal set in which no tile's window contains pixels owned by another tile of the
same wave, preferring tiles with more known context (a greedy maximal independent set, computed
in parallel rounds, ties broken by a grid-parity class and then row-major order). Large holes
are thus peeled from the outside in. Behind a straight front a fully damaged tile sees only its
leading border as known: (T - C) // 2 / T of the window (0.25 for C = T/2), so peeling a hole
wider than a tile needs ``min_known`` at most that, a smaller core, or ``min_known_floor``.
Tiles that never qualify are kept in the plan with status ``insufficient_context`` (wave and
batch -1): reported, never filled.

Planning reads the coarse mask in bands of core rows and is exact in its geometry but
conservative in its counts: a coarse pixel counts as wholly in D when any of its level-0 pixels
is (the coarse dilation below is exactly that set). Hence ``n_owned`` is an upper bound and
``known_fraction`` a lower bound of the level-0 values (both exact for ``factor`` 1), and a tile
is planned whenever its core may hold a pixel of D, so no pixel of D is left without a tile.
Memory is one band of the coarse mask (a few tens of MiB) plus about 0.5 KiB per planned tile,
the returned table included; the section's size only enters through the number of tiles.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import ndimage

from cytopaint.io.masks import dilate, upsample_window

STATUS_OK = "ok"
STATUS_RELAXED = "relaxed"  # sampled below min_known, under the configured min_known_floor
STATUS_INSUFFICIENT = "insufficient_context"
STATUSES = (STATUS_OK, STATUS_RELAXED, STATUS_INSUFFICIENT)

PLAN_COLUMNS: dict[str, str] = {
    "section": "str",
    "tile": "str",
    "row": "int64",
    "col": "int64",
    "y0": "int64",
    "x0": "int64",
    "height": "int64",
    "width": "int64",
    "core_y0": "int64",
    "core_x0": "int64",
    "core_height": "int64",
    "core_width": "int64",
    "wave": "int64",
    "batch": "int64",
    "seed": "int64",
    "n_owned": "int64",
    "known_fraction": "float64",
    "status": "str",
}

_PRIORITY_BINS = 32  # known-fraction resolution of the wave priority
_BAND_ELEMENTS = 1 << 22  # working-set target of one band, in array elements
_SEED_PERSON = b"cytopaint-seed-1"  # blake2b personalisation (<= 16 bytes)
_GOLDEN = 0x9E3779B97F4A7C15

Factor = int | tuple[int, int]


class MaskArray(Protocol):
    """A 2-D array that can be sliced (numpy, zarr, dask); nonzero means artifact."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...


# --------------------------------------------------------------------------------------- seeds


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection of uint64 with full avalanche."""
    z = z.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def tile_seeds(global_seed: int, section: str, rows: np.ndarray, cols: np.ndarray, round: int = 0) -> np.ndarray:
    """Vectorised `tile_seed`: int64 seeds in [0, 2**63) for arrays of tile rows and columns."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.shape != cols.shape:
        raise ValueError("rows and cols differ in shape")
    if rows.size and (min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= 1 << 32):
        raise ValueError("tile rows and columns must lie in [0, 2**32)")
    if round < 0:
        raise ValueError(f"review round must be >= 0, got {round}")
    digest = hashlib.blake2b(f"{int(global_seed)}\x00{section}".encode(), digest_size=8, person=_SEED_PERSON)
    key = np.uint64(int.from_bytes(digest.digest(), "big"))
    # (row, col) -> 64 bits injectively, then bijective mixes: distinct tiles get distinct 64-bit
    # values; dropping one bit leaves a collision chance of about n**2 / 2**64 among n tiles
    packed = (rows.astype(np.uint64) << np.uint64(32)) | cols.astype(np.uint64)
    seeds = _mix64(_mix64(packed ^ key)) >> np.uint64(1)
    for k in range(1, round + 1):  # a review round re-derives from the previous round's seed
        seeds = _mix64(seeds ^ np.uint64((k * _GOLDEN) & ((1 << 64) - 1))) >> np.uint64(1)
    return seeds.astype(np.int64)


def tile_seed(global_seed: int, section: str, tile_row: int, tile_col: int, round: int = 0) -> int:
    """Seed of one tile: a 63-bit int, stable across processes and platforms.

    Round 0 hashes (global seed, section) with blake2b and mixes in (row, col); review round k
    derives its seed from round k-1's, so a rejected tile gets a new, reproducible seed.
    """
    return int(tile_seeds(global_seed, section, np.array([tile_row]), np.array([tile_col]), round)[0])


# ------------------------------------------------------------------------------------ geometry


def _factors(factor: Factor) -> tuple[int, int]:
    fy, fx = (factor, factor) if isinstance(factor, int) else (int(factor[0]), int(factor[1]))
    if fy < 1 or fx < 1:
        raise ValueError(f"mask factor must be >= 1, got {factor}")
    return fy, fx


def _window_starts(n: int, extent: int, tile: int, core: int) -> np.ndarray:
    """Window start of each core index along one axis (shifted inside the image)."""
    border = (tile - core) // 2
    return np.clip(np.arange(n, dtype=np.int64) * core - border, 0, max(extent - tile, 0))


@dataclass(frozen=True)
class _Axis:
    """Tile geometry along one axis, with each core cut into segments at every window edge."""

    core: int
    starts: np.ndarray  # (n,) window start per core index
    length: int  # window length
    edges: np.ndarray  # (n, S + 1) segment edges per core (padded by repeating the core's end)
    reach: int  # K: windows reach cores at index offsets -K..K
    inside: np.ndarray  # (n, 2K + 1, S) 1 where segment s of core i + d - K lies in window i

    @property
    def n(self) -> int:
        return len(self.starts)


def _axis(extent: int, tile: int, core: int) -> _Axis:
    n = -(-extent // core)
    starts = _window_starts(n, extent, tile, core)
    length = min(tile, extent)
    idx = np.arange(n)
    reach = int(max(np.max(idx - starts // core), np.max((starts + length - 1) // core - idx)))
    core_edges = np.minimum(np.arange(n + 1, dtype=np.int64) * core, extent)
    cuts = np.unique(np.concatenate([core_edges, starts, starts + length]))
    lo = np.searchsorted(cuts, core_edges[:-1])
    hi = np.searchsorted(cuts, core_edges[1:], side="right")  # one past the core's end edge
    n_seg = int(np.max(hi - lo)) - 1
    edges = cuts[np.minimum(lo[:, None] + np.arange(n_seg + 1), hi[:, None] - 1)]
    inside = np.zeros((n, 2 * reach + 1, n_seg), dtype=np.int64)
    for k in range(2 * reach + 1):
        j = idx + k - reach
        ok = (j >= 0) & (j < n)
        e = edges[np.clip(j, 0, n - 1)]
        inside[:, k] = ok[:, None] & (e[:, :-1] >= starts[:, None]) & (e[:, 1:] <= (starts + length)[:, None])
    return _Axis(core, starts, length, edges, reach, inside)


# ------------------------------------------------------------------------------ coarse masks


def coarse_structure(margin_px: int, factor: Factor) -> np.ndarray:
    """Structuring element of the exact coarse counterpart of a level-0 disk dilation.

    Coarse pixel q is in the dilation of a coarse mask by this element iff one of q's level-0
    pixels lies within ``margin_px`` (Euclidean) of a level-0 pixel of the upsampled mask: blocks
    d apart along an axis have their nearest pixels (|d| - 1) * f + 1 apart.
    """
    if margin_px < 0:
        raise ValueError(f"margin must be >= 0, got {margin_px}")
    gaps = []
    for f in _factors(factor):
        k = 0 if margin_px == 0 else (margin_px - 1) // f + 1
        d = np.abs(np.arange(-k, k + 1))
        gaps.append(np.where(d == 0, 0, (d - 1) * f + 1))
    return gaps[0][:, None] ** 2 + gaps[1][None, :] ** 2 <= margin_px**2


def _check_mask(mask: MaskArray, fy: int, fx: int, shape: tuple[int, int]) -> None:
    if len(mask.shape) != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    for n, f, extent, axis in zip(mask.shape, (fy, fx), shape, "yx", strict=True):
        if abs(n * f - extent) > f:
            raise ValueError(f"mask {axis} extent {n} x {f} px disagrees with the plane's {extent} px")


def _coarse_rows(mask: MaskArray, a: int, b: int, fy: int, fx: int, shape: tuple[int, int]) -> np.ndarray:
    """Coarse rows [a, b) over the image's coarse extent, False outside the mask and the image."""
    hp, wp = -(-shape[0] // fy), -(-shape[1] // fx)
    out = np.zeros((b - a, wp), dtype=bool)
    lo, hi = max(a, 0), min(b, mask.shape[0], hp)
    if lo < hi:
        block = np.asarray(mask[lo:hi, : min(mask.shape[1], wp)])
        out[lo - a : hi - a, : block.shape[1]] = block != 0
    return out


def _dilated_rows(
    mask: MaskArray, fy: int, fx: int, shape: tuple[int, int], margin_px: int, a: int, b: int
) -> np.ndarray:
    """Rows [a, b) of `coarse_dilation`, reading only those rows plus a halo."""
    st = coarse_structure(margin_px, (fy, fx))
    ky, kx = st.shape[0] // 2, st.shape[1] // 2
    rows = _coarse_rows(mask, a - ky, b + ky, fy, fx, shape)
    out = np.zeros((b - a, rows.shape[1]), dtype=bool)
    if not rows.any():
        return out
    # the element is a stack of centred runs: dilate along x once per run length, shift in y
    half = np.array([np.flatnonzero(r).max() - kx for r in st])
    for k in np.unique(half):
        run = rows if k == 0 else ndimage.maximum_filter1d(rows.view(np.uint8), 2 * k + 1, axis=1, mode="constant")
        run = run.view(bool)
        for dy in np.flatnonzero(half == k):
            out |= run[dy : dy + b - a]
    return out


def coarse_dilation(mask: MaskArray, factor: Factor, shape: tuple[int, int], margin_px: int) -> np.ndarray:
    """Coarse pixels holding at least one level-0 pixel of the dilated mask (exactly those).

    ``mask`` is the coarse artifact mask, ``factor`` level-0 pixels per mask pixel, ``shape`` the
    level-0 plane; the result has the plane's coarse extent, ceil(shape / factor).
    """
    fy, fx = _factors(factor)
    _check_mask(mask, fy, fx, shape)
    return _dilated_rows(mask, fy, fx, shape, margin_px, 0, -(-shape[0] // fy))


def dilated_window(
    mask: MaskArray, factor: Factor, shape: tuple[int, int], margin_px: int, y0: int, x0: int, h: int, w: int
) -> np.ndarray:
    """Level-0 dilated mask D on the window (y0, x0, h, w), read with a halo of ``margin_px``."""
    fy, fx = _factors(factor)
    _check_mask(mask, fy, fx, shape)
    m = int(margin_px)
    if m < 0:
        raise ValueError(f"margin must be >= 0, got {margin_px}")
    up = upsample_window(mask, (fy, fx), y0 - m, x0 - m, h + 2 * m, w + 2 * m)
    up[: max(m - y0, 0)] = False  # the mask exists only on the image plane
    up[max(shape[0] - y0 + m, 0) :] = False
    up[:, : max(m - x0, 0)] = False
    up[:, max(shape[1] - x0 + m, 0) :] = False
    return np.asarray(dilate(up, m))[m : m + h, m : m + w]


def _window(tile: Mapping[str, Any]) -> tuple[int, int, int, int]:
    return int(tile["y0"]), int(tile["x0"]), int(tile["height"]), int(tile["width"])


def _paste_core(out: np.ndarray, tile: Mapping[str, Any], src: np.ndarray, y0: int, x0: int) -> None:
    """out |= src on the part of the tile's core inside the window at (y0, x0)."""
    ya = max(int(tile["core_y0"]) - y0, 0)
    yb = min(int(tile["core_y0"]) + int(tile["core_height"]) - y0, out.shape[0])
    xa = max(int(tile["core_x0"]) - x0, 0)
    xb = min(int(tile["core_x0"]) + int(tile["core_width"]) - x0, out.shape[1])
    if ya < yb and xa < xb:
        out[ya:yb, xa:xb] |= src[ya:yb, xa:xb]


def owned_mask(tile: Mapping[str, Any], dilated: np.ndarray) -> np.ndarray:
    """Pixels of a tile's window that the tile owns: D inside its core.

    ``tile`` is a plan row (or any mapping with the plan's window and core columns), ``dilated``
    the level-0 dilated mask on its window, e.g. from `dilated_window`.
    """
    y0, x0, h, w = _window(tile)
    if dilated.shape != (h, w):
        raise ValueError(f"dilated window has shape {dilated.shape}, tile window is {(h, w)}")
    out = np.zeros((h, w), dtype=bool)
    _paste_core(out, tile, np.asarray(dilated, dtype=bool), y0, x0)
    return out


def known_mask(plan: pd.DataFrame, tile: Mapping[str, Any], dilated: np.ndarray) -> np.ndarray:
    """Pixels of a tile's window known when it is sampled: outside D, or owned by an earlier wave.

    Everything else in the window (its own pixels and those of later waves or of tiles without
    enough context) is to be generated; only its own pixels are kept.
    """
    y0, x0, h, w = _window(tile)
    wave = int(tile["wave"])
    if wave < 0:
        raise ValueError(f"tile {tile['tile']} is not scheduled (status {tile['status']})")
    if dilated.shape != (h, w):
        raise ValueError(f"dilated window has shape {dilated.shape}, tile window is {(h, w)}")
    dilated = np.asarray(dilated, dtype=bool)
    near = plan[
        (plan["wave"] >= 0)
        & (plan["wave"] < wave)
        & (plan["core_y0"] < y0 + h)
        & (plan["core_y0"] + plan["core_height"] > y0)
        & (plan["core_x0"] < x0 + w)
        & (plan["core_x0"] + plan["core_width"] > x0)
    ]
    known = ~dilated
    for _, other in near.iterrows():
        _paste_core(known, other, dilated, y0, x0)
    return known


# ------------------------------------------------------------------------------------ planning


def _owned_upper_bounds(
    mask: MaskArray, fy: int, fx: int, shape: tuple[int, int], margin_px: int, ay: _Axis, ax: _Axis
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cores that may own pixels, and per core segment the level-0 count of coarse-dilated pixels.

    Returns rows, cols (row-major order) and u of shape (N, Sy, Sx). Works in bands of core rows:
    along each axis a count over [e0, e1) is a difference of level-0 prefix sums, and the prefix
    sum at e is f * (sum of whole blocks before e) + (e mod f) * (block containing e).
    """
    sy, sx = ay.edges.shape[1] - 1, ax.edges.shape[1] - 1
    wp = -(-shape[1] // fx)
    per_row = (-(-ay.core // fy) + 2 + 2 * sy) * wp + sy * ax.n * (sx + 1) * 3
    step = max(1, _BAND_ELEMENTS // per_row)
    qx, rx = ax.edges // fx, ax.edges % fx
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for ra in range(0, ay.n, step):
        rb = min(ra + step, ay.n)
        i0, i1 = ra * ay.core // fy, -(-min(rb * ay.core, shape[0]) // fy)
        dc = _dilated_rows(mask, fy, fx, shape, margin_px, i0, i1)
        if not dc.any():
            continue
        block = np.zeros((i1 - i0 + 1, wp), dtype=np.int64)  # one zero row past the band
        block[:-1] = dc
        prefix = np.zeros_like(block)
        np.cumsum(block[:-1], axis=0, out=prefix[1:])
        e = ay.edges[ra:rb]
        q, r = e // fy - i0, e % fy
        cum_y = fy * prefix[q] + r[..., None] * block[q]  # (nb, Sy + 1, wp)
        zy = np.zeros((rb - ra, sy, wp + 1), dtype=np.int64)  # rows of each y-segment per column
        zy[..., :-1] = np.diff(cum_y, axis=1)
        px = np.zeros_like(zy)
        np.cumsum(zy[..., :-1], axis=2, out=px[..., 1:])
        cum_x = fx * px[:, :, qx] + rx * zy[:, :, qx]  # (nb, Sy, ncols, Sx + 1)
        u = np.diff(cum_x, axis=3).transpose(0, 2, 1, 3)  # (nb, ncols, Sy, Sx)
        rr, cc = np.nonzero(u.any(axis=(2, 3)))
        found.append((rr + ra, cc, u[rr, cc].astype(np.int32)))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, sy, sx), np.int32)
    rows, cols, u = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return rows.astype(np.int64), cols.astype(np.int64), u


def _independent_set(
    cand: np.ndarray, rank: np.ndarray, nbr: np.ndarray, conflict: np.ndarray, state: np.ndarray
) -> np.ndarray:
    """Greedy maximal independent set of ``cand`` in ``rank`` order, in parallel rounds.

    A round takes every undecided tile that outranks all its undecided conflicting neighbours and
    drops their neighbours; this equals the sequential greedy result. ``state`` is zero on entry
    and on return (1 undecided, 2 taken, 3 dropped).
    """
    state[cand] = 1
    taken = []
    undecided = cand
    while undecided.size:
        nb = nbr[undecided]
        live = conflict[undecided] & (nb >= 0)
        nb = np.where(live, nb, 0)
        live &= state[nb] == 1
        blocked = (live & (rank[nb] < rank[undecided, None])).any(axis=1)
        win = undecided[~blocked]
        state[win] = 2
        state[nb[~blocked][live[~blocked]]] = 3
        taken.append(win)
        undecided = undecided[state[undecided] == 1]
    state[cand] = 0
    return np.sort(np.concatenate(taken))


def _neighbourhoods(rows: np.ndarray, cols: np.ndarray, u: np.ndarray, ay: _Axis, ax: _Axis) -> tuple[np.ndarray, ...]:
    """Per tile and neighbour offset o = (dy, dx) in a (2K + 1)^2 box, row-major.

    Returns ``nbr`` (index of the planned tile at that offset, or -1), ``a`` (its coarse-dilated
    pixels inside this tile's window: an upper bound of the pixels it owns there; the centre
    column is the tile's own ``n_owned``) and ``conflict`` (the two may not share a wave: either
    window holds pixels the other may own).
    """
    n = len(rows)
    keys = rows * ax.n + cols
    span_x = 2 * ax.reach + 1
    n_off = (2 * ay.reach + 1) * span_x
    nbr = np.full((n, n_off), -1, dtype=np.int32)
    a = np.zeros((n, n_off), dtype=np.int32)
    for o in range(n_off):
        oy, ox = divmod(o, span_x)
        r, c = rows + oy - ay.reach, cols + ox - ax.reach
        k = r * ax.n + c
        pos = np.minimum(np.searchsorted(keys, k), n - 1)
        hit = np.flatnonzero((r >= 0) & (r < ay.n) & (c >= 0) & (c < ax.n) & (keys[pos] == k))
        nbr[hit, o] = pos[hit]
        a[hit, o] = np.einsum("ns,nst,nt->n", ay.inside[rows[hit], oy], u[pos[hit]], ax.inside[cols[hit], ox])
    conflict = np.zeros((n, n_off), dtype=bool)
    for o in range(n_off):
        if o != n_off // 2:
            hit = np.flatnonzero(nbr[:, o] >= 0)
            conflict[hit, o] = (a[hit, o] > 0) | (a[nbr[hit, o], n_off - 1 - o] > 0)
    return nbr, a, conflict


def _waves(
    nbr: np.ndarray,
    a: np.ndarray,
    conflict: np.ndarray,
    keys: np.ndarray,
    parity: np.ndarray,
    area: int,
    need: int,
    floor_need: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assign waves; returns wave (-1: never), known pixels when run (or at the end), relaxed.

    ``need``: known pixels (of a window of ``area``) a tile needs; ``floor_need``: the relaxed
    fallback's minimum. Among qualifying tiles: more known context first, then ``parity`` class,
    then row-major ``keys``. A tile's known count only grows, so candidates are kept
    incrementally: only readers of the tiles just run can join.
    """
    n, n_off = nbr.shape
    centre = n_off // 2
    known = area - a.sum(axis=1, dtype=np.int64)
    wave = np.full(n, -1, dtype=np.int64)
    known_at_run = np.zeros(n, dtype=np.int64)
    relaxed = np.zeros(n, dtype=bool)
    remaining = np.ones(n, dtype=bool)
    in_cand = known >= need
    cand = np.flatnonzero(in_cand)
    state = np.zeros(n, dtype=np.int8)
    rank = np.zeros(n, dtype=np.int64)
    w = 0
    while True:
        relax = False
        if cand.size == 0:
            if floor_need is None:
                break
            rest = np.flatnonzero(remaining)
            if rest.size == 0 or known[rest].max() < floor_need:
                break
            cand, relax = rest[known[rest] == known[rest].max()], True
        order = np.lexsort((keys[cand], parity[cand], -((known[cand] * _PRIORITY_BINS) // area)))
        rank[cand[order]] = np.arange(cand.size)
        run = _independent_set(cand, rank, nbr, conflict, state)
        wave[run], known_at_run[run], relaxed[run], remaining[run] = w, known[run], relax, False
        fresh = [run[:0]]
        for o in range(n_off):
            if o != centre:
                t = nbr[run, n_off - 1 - o]
                t = t[t >= 0]
                known[t] += a[t, o]
                fresh.append(t[remaining[t] & ~in_cand[t] & (known[t] >= need)])
        cand = cand[remaining[cand] & (known[cand] >= need)]
        in_cand[cand] = True
        joined = np.unique(np.concatenate(fresh))
        joined = joined[~in_cand[joined]]
        in_cand[joined] = True
        cand = np.concatenate([cand, joined])
        w += 1
    return wave, np.where(wave >= 0, known_at_run, known), relaxed


def _batches(wave: np.ndarray, max_batch: int) -> np.ndarray:
    """Batch ids for tiles sorted by (wave, row-major key), unscheduled (-1) last."""
    ws = wave[wave >= 0]
    counts = np.bincount(ws)
    base = np.concatenate([[0], np.cumsum(-(-counts // max_batch))])
    pos = np.arange(ws.size) - np.searchsorted(ws, ws)
    return np.concatenate([base[ws] + pos // max_batch, np.full(wave.size - ws.size, -1)])


def plan_tiles(
    mask: MaskArray,
    *,
    factor: Factor,
    shape: tuple[int, int],
    tile_size: int,
    section: str,
    seed: int,
    core_size: int | None = None,
    margin_px: int = 0,
    min_known: float = 0.5,
    min_known_floor: float | None = None,
    max_batch: int = 8,
) -> pd.DataFrame:
    """Plan the repaint of one section: tiles, owners, outside-in waves, batches and seeds.

    ``mask``: coarse artifact mask (nonzero = artifact), one pixel per ``factor`` level-0 pixels
    (an int or (fy, fx)); ``shape``: level-0 plane (height, width); ``core_size`` defaults to
    ``tile_size // 2``; ``margin_px``: level-0 dilation radius of the mask. A wave takes tiles
    whose window is at least ``min_known`` known. With ``min_known_floor`` set, a plan that would
    stall instead runs the remaining tiles with the most known context, if that reaches the
    floor (status ``relaxed``), and then goes on at ``min_known``. Tiles that stay short of
    context get status ``insufficient_context``. Batches hold at most ``max_batch`` tiles of one
    wave, in row-major order, numbered across the section. Rows are sorted by wave, batch, row
    and col, unscheduled tiles last; a mask without artifacts gives an empty plan. Counts come
    from the coarse mask: ``n_owned`` is an upper bound and ``known_fraction`` (when the tile
    runs, or at the end for unscheduled tiles) a lower bound, both exact for ``factor`` 1. They
    loosen as ``factor`` nears ``core_size``: take a mask level with factor at most about C / 4.
    """
    fy, fx = _factors(factor)
    height, width = (int(v) for v in shape)
    core = tile_size // 2 if core_size is None else int(core_size)
    if height < 1 or width < 1:
        raise ValueError(f"plane shape must be positive, got {shape}")
    if not 1 <= core <= tile_size:
        raise ValueError(f"need 1 <= core_size <= tile_size, got {core} and {tile_size}")
    if not 0.0 <= min_known <= 1.0:
        raise ValueError(f"min_known must be in [0, 1], got {min_known}")
    if min_known_floor is not None and not 0.0 <= min_known_floor <= min_known:
        raise ValueError(f"min_known_floor must be in [0, min_known], got {min_known_floor}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    _check_mask(mask, fy, fx, (height, width))
    ay, ax = _axis(height, tile_size, core), _axis(width, tile_size, core)
    rows, cols, u = _owned_upper_bounds(mask, fy, fx, (height, width), margin_px, ay, ax)
    n = len(rows)
    if n == 0:
        return _frame({name: np.zeros(0, dtype=object if t == "str" else t) for name, t in PLAN_COLUMNS.items()})

    nbr, a, conflict = _neighbourhoods(rows, cols, u, ay, ax)
    del u
    area = ay.length * ax.length
    need = math.ceil(min_known * area - 1e-9 * area)
    floor_need = None if min_known_floor is None else math.ceil(min_known_floor * area - 1e-9 * area)
    parity = (rows % (ay.reach + 1)) * (ax.reach + 1) + cols % (ax.reach + 1)
    keys = rows * ax.n + cols
    wave, known, relaxed = _waves(nbr, a, conflict, keys, parity, area, need, floor_need)
    scheduled = wave >= 0
    order = np.lexsort((keys, np.where(scheduled, wave, n)))
    batch = np.full(n, -1, dtype=np.int64)
    batch[order] = _batches(wave[order], max_batch)

    frac = known / area
    status = np.array(STATUSES, dtype=object)[np.where(scheduled, relaxed.astype(int), 2)]  # ok, relaxed, short
    r, c = rows[order], cols[order]
    columns = {
        "section": np.full(n, section, dtype=object),
        "tile": [f"r{y:05d}c{x:05d}" for y, x in zip(r.tolist(), c.tolist(), strict=True)],
        "row": r,
        "col": c,
        "y0": ay.starts[r],
        "x0": ax.starts[c],
        "height": np.full(n, ay.length),
        "width": np.full(n, ax.length),
        "core_y0": r * core,
        "core_x0": c * core,
        "core_height": np.minimum(core, height - r * core),
        "core_width": np.minimum(core, width - c * core),
        "wave": wave[order],
        "batch": batch[order],
        "seed": tile_seeds(seed, section, r, c),
        "n_owned": a[order, a.shape[1] // 2],
        "known_fraction": frac[order],
        "status": status[order],
    }
    return _frame(columns)


def _frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """The plan table: canonical column order and dtypes."""
    return pd.DataFrame({name: columns[name] for name in PLAN_COLUMNS}).astype(PLAN_COLUMNS)


# ------------------------------------------------------------------------------------ plan I/O


def validate_plan(df: pd.DataFrame) -> pd.DataFrame:
    """Check a plan's columns, dtypes and invariants; return it with canonical dtypes.

    Raises ValueError naming the first problem found.
    """
    if list(df.columns) != list(PLAN_COLUMNS):
        raise ValueError(f"plan columns {list(df.columns)} differ from {list(PLAN_COLUMNS)}")
    out = {}
    for name, dtype in PLAN_COLUMNS.items():
        col = df[name]
        if dtype == "str":
            if len(col) and not col.map(lambda v: isinstance(v, str) and v != "").all():
                raise ValueError(f"plan column {name!r} must hold non-empty strings")
            out[name] = col.astype(str)
            continue
        values = pd.to_numeric(col, errors="coerce")
        if values.isna().any():
            raise ValueError(f"plan column {name!r} has missing or non-numeric values")
        if dtype == "int64" and len(values) and not pd.api.types.is_integer_dtype(values):
            raise ValueError(f"plan column {name!r} must hold integers")
        out[name] = values.astype(dtype)
    plan = pd.DataFrame(out)
    if not plan["status"].isin(STATUSES).all():
        raise ValueError(f"plan status must be one of {STATUSES}")
    unscheduled = plan["status"] == STATUS_INSUFFICIENT
    if ((plan["wave"] < 0) != unscheduled).any() or ((plan["batch"] < 0) != unscheduled).any():
        raise ValueError("wave and batch must be -1 exactly for tiles with insufficient context")
    if plan.duplicated(["section", "row", "col"]).any():
        raise ValueError("plan has duplicate tiles")
    if (plan[["height", "width", "core_height", "core_width"]] <= 0).any(axis=None):
        raise ValueError("plan has empty windows or cores")
    if (
        (plan["core_y0"] < plan["y0"])
        | (plan["core_x0"] < plan["x0"])
        | (plan["core_y0"] + plan["core_height"] > plan["y0"] + plan["height"])
        | (plan["core_x0"] + plan["core_width"] > plan["x0"] + plan["width"])
    ).any():
        raise ValueError("plan has a core outside its window")
    if (plan["seed"] < 0).any() or (plan["n_owned"] < 0).any():
        raise ValueError("plan seeds and n_owned must be >= 0")
    if ((plan["known_fraction"] < 0) | (plan["known_fraction"] > 1)).any():
        raise ValueError("plan known_fraction must lie in [0, 1]")
    return plan


def write_plan(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Validate and write a plan as TSV (atomically: a temporary file, then a rename)."""
    plan = validate_plan(df)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    plan.to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)


def read_plan(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a plan TSV written by `write_plan`."""
    text_cols = [name for name, dtype in PLAN_COLUMNS.items() if dtype == "str"]
    df = pd.read_csv(path, sep="\t", dtype=dict.fromkeys(text_cols, str), keep_default_na=False, na_values={})
    return validate_plan(df)
