"""The wave scheduler: which planned tiles run together, and in which order.

A tile may be sampled once the known part of its window (pixels outside D, plus pixels owned by
tiles of earlier waves) is at least ``min_known``. Each wave takes, among the tiles that qualify,
a maximal set in which no tile's window contains pixels owned by another tile of the same wave,
preferring tiles with more known context (a greedy maximal independent set, computed in parallel
rounds, ties broken by a grid-parity class and then row-major order). Large holes are thus
peeled from the outside in. Tiles that never qualify get wave -1.

Tiles are rows of arrays over the planned tiles; a tile's neighbours are the planned tiles at
grid offsets o = (dy, dx) within ``reach`` along each axis, in row-major order of o (the centre
offset is the tile itself).
"""

from __future__ import annotations

import numpy as np

from .grid import AxisGrid

_PRIORITY_BINS = 32  # known-fraction resolution of the wave priority


def neighbourhoods(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, gy: AxisGrid,
                   gx: AxisGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tile and neighbour offset o = (dy, dx) in a (2K + 1)^2 box, row-major.

    ``counts`` are the per-segment pixel counts of `cytopaint.plan.coarse.segment_counts`.
    Returns ``neighbour`` (index of the planned tile at that offset, or -1), ``neighbour_px``
    (its coarse-dilated pixels inside this tile's window: an upper bound of the pixels it owns
    there; the centre column is the tile's own ``n_owned``) and ``conflict`` (the two may not
    share a wave: either window holds pixels the other may own).
    """
    n = len(rows)
    keys = rows * gx.n + cols
    span_x = 2 * gx.reach + 1
    n_off = (2 * gy.reach + 1) * span_x
    neighbour = np.full((n, n_off), -1, dtype=np.int32)
    neighbour_px = np.zeros((n, n_off), dtype=np.int32)
    for o in range(n_off):
        oy, ox = divmod(o, span_x)
        nrow, ncol = rows + oy - gy.reach, cols + ox - gx.reach
        key = nrow * gx.n + ncol
        pos = np.minimum(np.searchsorted(keys, key), n - 1)
        hit = np.flatnonzero((nrow >= 0) & (nrow < gy.n) & (ncol >= 0) & (ncol < gx.n) & (keys[pos] == key))
        neighbour[hit, o] = pos[hit]
        neighbour_px[hit, o] = np.einsum("ns,nst,nt->n", gy.inside[rows[hit], oy], counts[pos[hit]],
                                         gx.inside[cols[hit], ox])
    conflict = np.zeros((n, n_off), dtype=bool)
    for o in range(n_off):
        if o != n_off // 2:
            hit = np.flatnonzero(neighbour[:, o] >= 0)
            conflict[hit, o] = (neighbour_px[hit, o] > 0) | (neighbour_px[neighbour[hit, o], n_off - 1 - o] > 0)
    return neighbour, neighbour_px, conflict


def independent_set(candidates: np.ndarray, rank: np.ndarray, neighbour: np.ndarray, conflict: np.ndarray,
                    state: np.ndarray) -> np.ndarray:
    """Greedy maximal independent set of ``candidates`` in ``rank`` order, in parallel rounds.

    A round takes every undecided tile that outranks all its undecided conflicting neighbours and
    drops their neighbours; this equals the sequential greedy result. ``state`` is zero on entry
    and on return (1 undecided, 2 taken, 3 dropped).
    """
    state[candidates] = 1
    taken = []
    undecided = candidates
    while undecided.size:
        nb = neighbour[undecided]
        live = conflict[undecided] & (nb >= 0)
        nb = np.where(live, nb, 0)
        live &= state[nb] == 1
        blocked = (live & (rank[nb] < rank[undecided, None])).any(axis=1)
        winners = undecided[~blocked]
        state[winners] = 2
        state[nb[~blocked][live[~blocked]]] = 3
        taken.append(winners)
        undecided = undecided[state[undecided] == 1]
    state[candidates] = 0
    return np.sort(np.concatenate(taken))


def waves(
    neighbour: np.ndarray,
    neighbour_px: np.ndarray,
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
    n, n_off = neighbour.shape
    centre = n_off // 2
    known = area - neighbour_px.sum(axis=1, dtype=np.int64)
    wave = np.full(n, -1, dtype=np.int64)
    known_at_run = np.zeros(n, dtype=np.int64)
    relaxed = np.zeros(n, dtype=bool)
    remaining = np.ones(n, dtype=bool)
    is_candidate = known >= need
    candidates = np.flatnonzero(is_candidate)
    state = np.zeros(n, dtype=np.int8)
    rank = np.zeros(n, dtype=np.int64)
    current = 0
    while True:
        relax = False
        if candidates.size == 0:
            if floor_need is None:
                break
            rest = np.flatnonzero(remaining)
            if rest.size == 0 or known[rest].max() < floor_need:
                break
            candidates, relax = rest[known[rest] == known[rest].max()], True
        order = np.lexsort((keys[candidates], parity[candidates], -((known[candidates] * _PRIORITY_BINS) // area)))
        rank[candidates[order]] = np.arange(candidates.size)
        run = independent_set(candidates, rank, neighbour, conflict, state)
        wave[run], known_at_run[run], relaxed[run], remaining[run] = current, known[run], relax, False
        fresh = [run[:0]]
        for o in range(n_off):
            if o != centre:
                readers = neighbour[run, n_off - 1 - o]
                readers = readers[readers >= 0]
                known[readers] += neighbour_px[readers, o]
                fresh.append(readers[remaining[readers] & ~is_candidate[readers] & (known[readers] >= need)])
        candidates = candidates[remaining[candidates] & (known[candidates] >= need)]
        is_candidate[candidates] = True
        joined = np.unique(np.concatenate(fresh))
        joined = joined[~is_candidate[joined]]
        is_candidate[joined] = True
        candidates = np.concatenate([candidates, joined])
        current += 1
    return wave, np.where(wave >= 0, known_at_run, known), relaxed


def batches(wave: np.ndarray, max_batch: int, cost: np.ndarray | None = None) -> np.ndarray:
    """Batch ids for tiles sorted by (wave, row-major key), unscheduled (-1) last.

    A batch holds at most ``max_batch`` tiles of one wave, or, with ``cost`` (each tile's share of a
    whole tile's sampling time, e.g. 1/16 for a 256 px window of a 1024 px model), as many as cost
    at most ``max_batch`` whole tiles, taken greedily in order.
    """
    scheduled = wave[wave >= 0]
    if cost is None:
        counts = np.bincount(scheduled)
        base = np.concatenate([[0], np.cumsum(-(-counts // max_batch))])
        pos = np.arange(scheduled.size) - np.searchsorted(scheduled, scheduled)
        return np.concatenate([base[scheduled] + pos // max_batch, np.full(wave.size - scheduled.size, -1)])
    out = np.full(wave.size, -1, dtype=np.int64)
    batch, load, last = -1, 0.0, -1
    for i in range(scheduled.size):
        if scheduled[i] != last or load + cost[i] > max_batch + 1e-9:
            batch, load, last = batch + 1, 0.0, scheduled[i]
        out[i], load = batch, load + float(cost[i])
    return out
