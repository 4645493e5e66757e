"""The result file of one repaint batch (``batches/batch_<k>.npz``): the one writer and reader of its format.

One ``.npz`` per batch (written atomically) holding, for every tile id ``T`` of the batch,
``T.pixels`` (window-sized array in the image dtype, input pixels everywhere but the owned ones)
and ``T.owned`` (bool, the pixels this tile generated), plus ``meta``: a JSON string with the
batch's metadata (sampler, device, timings) and, under ``tiles``, per tile its window origin
``y0``, ``x0``, seed, wave, NFE and owned pixel count.

`read_batch` reads a whole batch; `read_tiles_meeting` only its tiles whose windows meet given
boxes (what a repaint job of a later wave needs for context). `BatchFile` reads member by member:
the metadata, one tile's owned mask, its pixels' header or only their first rows (blend and
provenance, which must not hold whole batches in memory; numpy's own npz reader is also slow for
this).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from cytopaint.geometry import Box

from .atomic import atomic_path

META = "meta"
_NPY_HEADERS = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}


def _pixels_key(tile: str) -> str:
    return f"{tile}.pixels"


def _owned_key(tile: str) -> str:
    return f"{tile}.owned"


@dataclass(frozen=True)
class TileResult:
    """One repainted tile: its window's pixels (at window origin ``y0, x0``) and the pixels it owns."""

    tile: str
    y0: int
    x0: int
    pixels: np.ndarray
    owned: np.ndarray
    meta: dict[str, Any]

    @property
    def box(self) -> Box:
        """The tile's window."""
        return Box.of_size(self.y0, self.x0, *self.owned.shape)


def write_batch(path: str | os.PathLike[str], tiles: list[TileResult], meta: dict[str, Any]) -> None:
    """Write a batch file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tile_meta = {}
    for t in tiles:
        if t.pixels.shape != t.owned.shape:
            raise ValueError(f"tile {t.tile}: pixels {t.pixels.shape} and owned {t.owned.shape} differ in shape")
        arrays[_pixels_key(t.tile)] = t.pixels
        arrays[_owned_key(t.tile)] = t.owned.astype(bool)
        tile_meta[t.tile] = {"y0": t.y0, "x0": t.x0, **t.meta}
    arrays[META] = np.array(json.dumps({**meta, "tiles": tile_meta}))
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"batch result {path} does not exist")


def read_batch(path: str | os.PathLike[str]) -> tuple[list[TileResult], dict[str, Any]]:
    """Read a whole batch file: its tiles and the batch metadata."""
    path = Path(path)
    _check_exists(path)
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z[META]))
        tiles = [TileResult(tile, int(m["y0"]), int(m["x0"]), z[_pixels_key(tile)], z[_owned_key(tile)],
                            {k: v for k, v in m.items() if k not in ("y0", "x0")})
                 for tile, m in meta.pop("tiles").items()]
    return tiles, meta


def read_tiles_meeting(path: str | os.PathLike[str], boxes: Sequence[Box]) -> list[TileResult]:
    """The tiles of a batch file whose windows meet any of ``boxes`` (the others are not read)."""
    with BatchFile(path) as batch:
        found = []
        for tile, m in batch.meta()["tiles"].items():
            box = Box.of_size(int(m["y0"]), int(m["x0"]), *batch.pixels_header(tile)[0])
            if any(box.meets(b) for b in boxes):
                found.append(TileResult(tile, box.y0, box.x0, batch.pixels(tile), batch.owned(tile),
                                        {k: v for k, v in m.items() if k not in ("y0", "x0")}))
    return found


def _npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of an .npy stream, left positioned at its data."""
    major, _ = np.lib.format.read_magic(fh)
    if major not in _NPY_HEADERS:
        raise ValueError(f"unsupported .npy format version {major}")
    shape, fortran, dtype = _NPY_HEADERS[major](fh)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed in batch files")
    return shape, fortran, dtype


class BatchFile:
    """A batch file opened for reading member by member (use as a context manager)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _check_exists(self.path)
        self._zip = zipfile.ZipFile(self.path)

    def __enter__(self) -> BatchFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._zip.close()

    def _read(self, key: str, rows: int | None = None) -> np.ndarray:
        """Array ``key`` (read-only); only its first ``rows`` rows when given."""
        with self._zip.open(f"{key}.npy") as fh:
            shape, fortran, dtype = _npy_header(fh)
            if rows is not None and not fortran and len(shape) == 2 and rows < shape[0]:
                shape = (rows, shape[1])
            count = int(np.prod(shape))
            data = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype, count=count)
        return data.reshape(shape, order="F" if fortran else "C")

    def meta(self) -> dict[str, Any]:
        """The batch metadata, with the per-tile records under ``tiles``."""
        return json.loads(str(self._read(META)[()]))

    def owned(self, tile: str) -> np.ndarray:
        """The owned mask of ``tile`` as stored (it should be 2-D boolean)."""
        return self._read(_owned_key(tile))

    def pixels_header(self, tile: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of the pixels of ``tile``, without reading them."""
        with self._zip.open(f"{_pixels_key(tile)}.npy") as fh:
            shape, _, dtype = _npy_header(fh)
        return tuple(shape), dtype

    def pixels(self, tile: str, rows: int | None = None) -> np.ndarray:
        """The pixels of ``tile`` (read-only); only the first ``rows`` window rows when given."""
        return self._read(_pixels_key(tile), rows)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a batch file, without reading its pixel arrays."""
    with BatchFile(path) as batch:
        return batch.meta()
