"""The tile grid along one axis: cores, windows, and each core cut into segments at window edges.

The plane is cut from the origin into a regular grid of *cores* of side C (the last row and
column clipped by the image). Tile (row, col) reads a *window* of side T centred on its core: the
core plus a context border of (T - C) // 2 before it and the rest after it. At the image border
the window is shifted, never padded, so that it stays inside the image; it still contains its
core. Only an image smaller than T along an axis gives a shorter window (the whole axis).

The planner counts pixels per core *segment*: the pieces of a core between consecutive window
edges. Whether segment s of core j lies in window i is then a yes/no per (i, j, s), and counts
of pixels in a window are sums over whole segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Factor = int | tuple[int, int]


def factors(factor: Factor) -> tuple[int, int]:
    """(fy, fx) from an int or a pair; raises ValueError unless both are >= 1."""
    fy, fx = (factor, factor) if isinstance(factor, int) else (int(factor[0]), int(factor[1]))
    if fy < 1 or fx < 1:
        raise ValueError(f"mask factor must be >= 1, got {factor}")
    return fy, fx


def window_starts(n: int, extent: int, tile: int, core: int) -> np.ndarray:
    """Window start of each core index along one axis (shifted inside the image)."""
    border = (tile - core) // 2
    return np.clip(np.arange(n, dtype=np.int64) * core - border, 0, max(extent - tile, 0))


@dataclass(frozen=True)
class AxisGrid:
    """Tile geometry along one axis, with each core cut into segments at every window edge."""

    core: int
    starts: np.ndarray  # (n,) window start per core index
    length: int  # window length
    edges: np.ndarray  # (n, S + 1) segment edges per core (padded by repeating the core's end)
    reach: int  # K: windows reach cores at index offsets -K..K
    inside: np.ndarray  # (n, 2K + 1, S) 1 where segment s of core i + d - K lies in window i

    @property
    def n(self) -> int:
        """Number of cores along the axis."""
        return len(self.starts)

    @property
    def n_segments(self) -> int:
        """S: segments per core (padded)."""
        return self.edges.shape[1] - 1


def axis_grid(extent: int, tile: int, core: int) -> AxisGrid:
    """The grid of cores of side ``core`` and windows of side ``tile`` over an axis of ``extent`` px."""
    n = -(-extent // core)
    starts = window_starts(n, extent, tile, core)
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
    return AxisGrid(core, starts, length, edges, reach, inside)
