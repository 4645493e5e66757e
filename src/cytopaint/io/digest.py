"""Content digests of stored images, for receipts and manifests.

``sha256_level0``: sha256 of the concatenated sha256 digests of the level-0 chunks (each chunk's
C-order pixel bytes, edge chunks clipped to the image), chunks in row-major order. It depends on
the pixels and the chunk grid only, not on the window size of the reader or on the codecs, so
the repaired store's digest equals the input's where nothing was repaired. The blender computes
it while writing; `level0_digest` recomputes it from a store.

Masks: `label_digest`, the sha256 of the C-order label bytes of level 0, read in row-major
windows of `WINDOW_PX` squared.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from tqdm.auto import tqdm

from cytopaint.geometry import grid_boxes

from . import volume

SHA256_SCHEME = (
    "sha256 over the sha256 digests of the level-0 chunks (C-order pixel bytes, edge chunks "
    "clipped), chunks in row-major order"
)
WINDOW_PX = 4096
MASK_SCHEME = f"sha256 of the C-order label bytes of level 0, read in row-major {WINDOW_PX} x {WINDOW_PX} windows"


def chunk_digest_grid(plane: tuple[int, int], chunk: tuple[int, int]) -> np.ndarray:
    """An empty grid of per-chunk sha256 digests, (chunk rows, chunk cols, 32) bytes."""
    return np.zeros((-(-plane[0] // chunk[0]), -(-plane[1] // chunk[1]), 32), dtype=np.uint8)


def chunk_digests(data: np.ndarray, origin: tuple[int, int], chunk: tuple[int, int], out: np.ndarray) -> None:
    """sha256 of each chunk of a chunk-aligned window at ``origin``, into ``out[ci, cj]``."""
    cy, cx = chunk
    for y in range(0, data.shape[0], cy):
        for x in range(0, data.shape[1], cx):
            piece = np.ascontiguousarray(data[y : y + cy, x : x + cx])
            out[(origin[0] + y) // cy, (origin[1] + x) // cx] = np.frombuffer(
                hashlib.sha256(piece).digest(), dtype=np.uint8
            )


def combine(digests: np.ndarray) -> str:
    """``sha256_level0`` from the grid of chunk digests."""
    return hashlib.sha256(digests.tobytes()).hexdigest()


def level0_digest(path: str | os.PathLike[str], z: int | None = None, *, window_px: int = 4096) -> str:
    """``sha256_level0`` of a stored image (the plane ``z`` of a stack)."""
    info = volume.read_info(path)
    chunk = info.chunks[-2:]
    plane = info.plane_shape
    digests = chunk_digest_grid(plane, chunk)
    step = (max(window_px // chunk[0], 1) * chunk[0], max(window_px // chunk[1], 1) * chunk[1])
    for win in grid_boxes(plane, step):
        chunk_digests(volume.read_region(path, *win.size, z=z), (win.y0, win.x0), chunk, digests)
    return combine(digests)


def label_digest(ref: str, z: int | None = None, progress: bool = False) -> str:
    """`MASK_SCHEME` digest of a label image's level 0 (the plane ``z`` of a 3-D label)."""
    info = volume.read_info(ref)
    plane = volume.open_level(ref, 0, z if info.axes == "zyx" else None)
    h = hashlib.sha256()
    ny, nx = plane.shape
    windows = [(y, x) for y in range(0, ny, WINDOW_PX) for x in range(0, nx, WINDOW_PX)]
    for y, x in tqdm(windows, desc="mask digest", unit="window", disable=not progress):
        h.update(np.ascontiguousarray(np.asarray(plane[y:y + WINDOW_PX, x:x + WINDOW_PX])).tobytes())
    return h.hexdigest()
