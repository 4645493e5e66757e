"""The block grid of an output level: block coordinates, block masks and runs of blocks.

A *block* is the unit one write covers: the shard when the store is sharded, else the chunk.
Every block is written by exactly one write, so windows and runs (`cytopaint.geometry.row_runs`)
are whole blocks.
"""

from __future__ import annotations

import numpy as np

from cytopaint.geometry import Box


def blocks_in(win: Box, block: tuple[int, int]) -> list[tuple[int, int]]:
    """Grid coordinates of the blocks in a block-aligned window."""
    by, bx = block
    return [(i, j) for i in range(win.y0 // by, -(-win.y1 // by)) for j in range(win.x0 // bx, -(-win.x1 // bx))]


def block_slices(ij: tuple[int, int], block: tuple[int, int], shape: tuple[int, int]) -> tuple[slice, slice]:
    """The pixels of block ``ij`` in a level of ``shape`` (edge blocks clipped)."""
    (i, j), (by, bx) = ij, block
    return slice(i * by, min((i + 1) * by, shape[0])), slice(j * bx, min((j + 1) * bx, shape[1]))


def block_any(a: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Per block of ``a`` (edge blocks clipped), whether any of its elements is nonzero."""
    ny, nx = -(-a.shape[0] // block[0]), -(-a.shape[1] // block[1])
    a = np.pad(a, [(0, ny * block[0] - a.shape[0]), (0, nx * block[1] - a.shape[1])])
    return a.reshape(ny, block[0], nx, block[1]).any(axis=(1, 3))


def grid_region(blocks: np.ndarray, block: tuple[int, int], shape: tuple[int, ...]) -> list[int]:
    """(y0, x0, h, w) in pixels of the bounding box of the True blocks (zeros if none)."""
    rows, cols = np.flatnonzero(blocks.any(axis=1)), np.flatnonzero(blocks.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    y0, x0 = int(rows[0]) * block[0], int(cols[0]) * block[1]
    y1, x1 = min(int(rows[-1] + 1) * block[0], shape[0]), min(int(cols[-1] + 1) * block[1], shape[1])
    return [y0, x0, y1 - y0, x1 - x0]
