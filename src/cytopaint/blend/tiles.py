"""The owned pixels of all batch results of a section, indexed for blending.

Batch files are indexed once: every tile's window, shapes and dtype are checked against the
image, and its owned mask is kept as compressed bits over its bounding box (a few KB per tile).
A blend window then reads just the pixels of the tiles whose owned box meets it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cytopaint.geometry import Box
from cytopaint.io.batchfile import BatchFile


@dataclass(frozen=True)
class OwnedTile:
    """One tile of one batch file: its window origin and what it owns (cropped to its box, packed bits)."""

    batch: int  # index into the batch file list
    name: str
    y0: int
    x0: int
    box: Box  # bounding box of the owned pixels
    packed: bytes  # zlib of np.packbits(owned[box])
    n_owned: int

    def owned(self, box: Box) -> np.ndarray:
        """The owned mask on ``box``, which lies inside the tile's box."""
        bits = np.unpackbits(np.frombuffer(zlib.decompress(self.packed), np.uint8), count=self.box.height * self.box.width)
        return bits.reshape(self.box.shape).view(bool)[box.slices(self.box)]


def index_batch(b: int, path: Path, plane: tuple[int, int], dtype: np.dtype) -> list[OwnedTile]:
    """Check every tile's window, shapes and dtype; record its owned box and packed mask."""
    ny, nx = plane
    tiles = []
    with BatchFile(path) as batch:
        for name, m in batch.meta()["tiles"].items():
            y0, x0 = int(m["y0"]), int(m["x0"])
            owned = batch.owned(name)
            shape, pdtype = batch.pixels_header(name)
            where = f"{path}: tile {name}"
            if owned.ndim != 2 or owned.dtype != bool or shape != owned.shape:
                raise ValueError(f"{where}: pixels {shape} and owned {owned.shape} ({owned.dtype}) "
                                 "must be 2-D of one shape, owned boolean")
            if pdtype != dtype:
                raise ValueError(f"{where}: pixels are {pdtype}, the image is {dtype}")
            h, w = owned.shape
            if y0 < 0 or x0 < 0 or y0 + h > ny or x0 + w > nx:
                raise ValueError(f"{where}: window {(y0, x0, h, w)} (y0, x0, h, w) falls outside "
                                 f"the image plane {plane}")
            rows, cols = np.flatnonzero(owned.any(axis=1)), np.flatnonzero(owned.any(axis=0))
            if rows.size == 0:
                continue
            crop = owned[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            box = Box(y0 + int(rows[0]), x0 + int(cols[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[-1]) + 1)
            packed = zlib.compress(np.packbits(crop).tobytes(), 1)
            tiles.append(OwnedTile(b, name, y0, x0, box, packed, int(np.count_nonzero(crop))))
    return tiles


def check_overlaps(tiles: list[OwnedTile], batch_files: Sequence[Path]) -> None:
    """Refuse tiles whose owned sets share a pixel (exact; masks compared only where boxes meet)."""
    if len(tiles) < 2:
        return
    boxes = np.array([t.box for t in tiles], dtype=np.int64)
    order = np.argsort(boxes[:, 0], kind="stable")
    sorted_y0 = boxes[order, 0]
    for k, i in enumerate(order):
        later = order[k + 1 : np.searchsorted(sorted_y0, boxes[i, 2], side="left")]
        for j in later[(boxes[later, 1] < boxes[i, 3]) & (boxes[later, 3] > boxes[i, 1])]:
            a, b = tiles[i], tiles[j]
            meet = a.box.intersection(b.box)
            shared = np.count_nonzero(a.owned(meet) & b.owned(meet))
            if shared:
                raise ValueError(
                    f"owned pixels overlap: tile {a.name} of {batch_files[a.batch]} and tile "
                    f"{b.name} of {batch_files[b.batch]} both own {shared} pixel(s) in "
                    f"rows {meet.y0}:{meet.y1}, cols {meet.x0}:{meet.x1}"
                )
