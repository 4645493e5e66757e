"""The result file of one repaint batch: per tile, its window's repaired pixels and the pixels it owns.

One ``.npz`` per batch (written atomically) holding, for every tile id ``T`` of the batch,
``T.pixels`` (window-sized array in the image dtype, input pixels everywhere but the owned ones)
and ``T.owned`` (bool, the pixels this tile generated), plus ``meta``: a JSON string with the
window origin of each tile, its seed, NFE, sampler settings, device and timings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TileResult:
    tile: str
    y0: int
    x0: int
    pixels: np.ndarray
    owned: np.ndarray
    meta: dict[str, Any]


def write_batch(path: str | os.PathLike[str], tiles: list[TileResult], meta: dict[str, Any]) -> None:
    """Write a batch file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tile_meta = {}
    for t in tiles:
        if t.pixels.shape != t.owned.shape:
            raise ValueError(f"tile {t.tile}: pixels {t.pixels.shape} and owned {t.owned.shape} differ in shape")
        arrays[f"{t.tile}.pixels"] = t.pixels
        arrays[f"{t.tile}.owned"] = t.owned.astype(bool)
        tile_meta[t.tile] = {"y0": t.y0, "x0": t.x0, **t.meta}
    arrays["meta"] = np.array(json.dumps({**meta, "tiles": tile_meta}))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def read_batch(path: str | os.PathLike[str]) -> tuple[list[TileResult], dict[str, Any]]:
    """Read a batch file: its tiles and the batch metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"batch result {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        tiles = [TileResult(tile, int(m["y0"]), int(m["x0"]), z[f"{tile}.pixels"], z[f"{tile}.owned"],
                            {k: v for k, v in m.items() if k not in ("y0", "x0")})
                 for tile, m in meta.pop("tiles").items()]
    return tiles, meta
