"""Rectangles of the level-0 pixel plane, and the overlap of two of them.

One box convention for the whole pipeline: `Box` is (y0, x0, y1, x1), end exclusive, in level-0
pixels (axes y then x). Tile windows and cores of the plan, the owned box of a tile in a batch
file, blend windows and QC windows are all boxes; pasting one array into another where their
boxes meet goes through `Box.overlap`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    """A rectangle of the pixel plane: rows y0..y1-1, columns x0..x1-1."""

    y0: int
    x0: int
    y1: int
    x1: int

    @classmethod
    def of_size(cls, y0: int, x0: int, height: int, width: int) -> Box:
        """The box at (y0, x0) of ``height`` x ``width`` pixels."""
        return cls(int(y0), int(x0), int(y0) + int(height), int(x0) + int(width))

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def size(self) -> tuple[int, int, int, int]:
        """(y0, x0, height, width): the convention of `cytopaint.io.volume.read_region`."""
        return self.y0, self.x0, self.height, self.width

    def __bool__(self) -> bool:
        return self.y1 > self.y0 and self.x1 > self.x0

    def meets(self, other: Box) -> bool:
        """Whether the two boxes share a pixel."""
        return self.y0 < other.y1 and other.y0 < self.y1 and self.x0 < other.x1 and other.x0 < self.x1

    def intersection(self, other: Box) -> Box:
        """The shared pixels (an empty box, falsy, when they do not meet)."""
        return Box(max(self.y0, other.y0), max(self.x0, other.x0), min(self.y1, other.y1), min(self.x1, other.x1))

    def slices(self, origin: Box | None = None) -> tuple[slice, slice]:
        """Index of this box in an array covering ``origin`` (default: the whole plane from (0, 0))."""
        oy, ox = (0, 0) if origin is None else (origin.y0, origin.x0)
        return slice(self.y0 - oy, self.y1 - oy), slice(self.x0 - ox, self.x1 - ox)

    def overlap(self, other: Box) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
        """Where the boxes meet, as indices into an array over this box and one over ``other``."""
        meet = self.intersection(other)
        if not meet:
            return None
        return meet.slices(self), meet.slices(other)


def grid_boxes(shape: tuple[int, int], step: tuple[int, int]) -> Iterator[Box]:
    """Row-major boxes of ``step`` over a plane of ``shape`` from (0, 0), the last ones clipped."""
    for y0 in range(0, shape[0], step[0]):
        for x0 in range(0, shape[1], step[1]):
            yield Box(y0, x0, min(y0 + step[0], shape[0]), min(x0 + step[1], shape[1]))


def row_runs(grid: np.ndarray, max_len: int) -> Iterator[tuple[int, int, int]]:
    """Row runs (row, first, end) of True in a 2-D bool grid (of blocks), each at most ``max_len`` long."""
    for i, row in enumerate(grid):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.view(np.int8), [0]])))
        for j0, j1 in zip(edges[::2], edges[1::2], strict=True):
            for j in range(j0, j1, max_len):
                yield i, int(j), int(min(j + max_len, j1))
