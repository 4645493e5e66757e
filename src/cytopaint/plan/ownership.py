"""Who generates which pixel, and what a tile knows when it runs: the contract that planner, sampler,
blender and QC share.

The dilated mask D is the level-0 artifact mask (nearest upsampling of the coarse mask; nothing
outside the image plane) dilated by a Euclidean disk of ``margin_px``. A tile *owns* exactly
D ∩ its core. Grid cores partition the plane, and a core cut to a smaller window
(`cytopaint.plan.windows`) keeps every pixel of D its grid core held, so every pixel of D has
exactly one owner, whatever the waves, and every generated pixel is written once: nothing is
averaged. When a tile is sampled,
the *known* pixels of its window are those outside D and those owned by tiles of earlier waves;
everything else in the window is generated, and only its own pixels are kept.

A *plan row* is a row of the plan table as pandas gives it (``DataFrame.iterrows`` or
``itertuples``): its window is ``y0, x0, height, width``, its core ``core_y0, core_x0,
core_height, core_width``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cytopaint.geometry import Box
from cytopaint.morphology import dilate, upsample_window

from .coarse import MaskArray, check_mask
from .grid import Factor, factors


def window_box(tile: Any) -> Box:
    """The window a tile (a plan row) reads, in level-0 pixels."""
    return Box.of_size(tile.y0, tile.x0, tile.height, tile.width)


def core_box(tile: Any) -> Box:
    """The core of a tile (a plan row): the only place where it may own pixels."""
    return Box.of_size(tile.core_y0, tile.core_x0, tile.core_height, tile.core_width)


@dataclass(frozen=True)
class DilatedMask:
    """D of one section, evaluated on level-0 windows from its coarse artifact mask.

    ``mask``: coarse mask (nonzero = artifact, numpy, zarr or dask), one pixel per ``factor``
    level-0 pixels; ``shape``: the level-0 plane; ``margin_px``: the dilation radius.
    """

    mask: MaskArray
    factor: tuple[int, int]
    shape: tuple[int, int]
    margin_px: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "factor", factors(self.factor))
        check_mask(self.mask, *self.factor, self.shape)
        if int(self.margin_px) < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin_px}")

    def window(self, box: Box) -> np.ndarray:
        """D on ``box``, read with a halo of ``margin_px``."""
        m, (y0, x0, h, w) = int(self.margin_px), box.size
        up = upsample_window(self.mask, self.factor, y0 - m, x0 - m, h + 2 * m, w + 2 * m)
        up[: max(m - y0, 0)] = False  # the mask exists only on the image plane
        up[max(self.shape[0] - y0 + m, 0) :] = False
        up[:, : max(m - x0, 0)] = False
        up[:, max(self.shape[1] - x0 + m, 0) :] = False
        return np.asarray(dilate(up, m))[m : m + h, m : m + w]


def dilated_window(
    mask: MaskArray, factor: Factor, shape: tuple[int, int], margin_px: int, y0: int, x0: int, h: int, w: int
) -> np.ndarray:
    """Level-0 dilated mask D on the window (y0, x0, h, w) (see `DilatedMask`)."""
    return DilatedMask(mask, factor, shape, margin_px).window(Box.of_size(y0, x0, h, w))


def _check_window(tile: Any, dilated: np.ndarray) -> Box:
    win = window_box(tile)
    if dilated.shape != win.shape:
        raise ValueError(f"dilated window has shape {dilated.shape}, tile window is {win.shape}")
    return win


def owned_mask(tile: Any, dilated: np.ndarray) -> np.ndarray:
    """Pixels of a tile's window that the tile owns: D inside its core.

    ``tile`` is a plan row, ``dilated`` D on its window (`DilatedMask.window`).
    """
    win = _check_window(tile, dilated)
    out = np.zeros(win.shape, dtype=bool)
    hit = win.overlap(core_box(tile))
    if hit is not None:
        out[hit[0]] = np.asarray(dilated, dtype=bool)[hit[0]]
    return out


@dataclass(frozen=True)
class Owner:
    """A scheduled tile as an owner of pixels: its wave, its batch and its core."""

    tile: str
    wave: int
    batch: int
    core: Box


class Owners:
    """The scheduled tiles of a plan, indexed by where their cores are.

    Answers, for any tile, which tiles of earlier waves own pixels in its window (their core
    meets it). Cores are filed in square buckets of the largest core side, so a query looks at a
    few buckets, whatever the plan's size.
    """

    def __init__(self, plan: pd.DataFrame) -> None:
        scheduled = plan[plan["wave"] >= 0]
        self.owners = [Owner(str(t.tile), int(t.wave), int(t.batch), core_box(t))
                       for t in scheduled.itertuples(index=False)]
        self.side = max([max(o.core.height, o.core.width) for o in self.owners], default=1)
        self.buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, owner in enumerate(self.owners):
            for key in self._keys(owner.core):
                self.buckets[key].append(i)

    def _keys(self, box: Box) -> list[tuple[int, int]]:
        s = self.side
        return [(by, bx) for by in range(box.y0 // s, (box.y1 - 1) // s + 1)
                for bx in range(box.x0 // s, (box.x1 - 1) // s + 1)]

    def earlier(self, tile: Any) -> list[Owner]:
        """Tiles of waves before ``tile``'s whose core meets its window, in plan order."""
        return self.before(window_box(tile), int(tile.wave))

    def before(self, box: Box, wave: int) -> list[Owner]:
        """Tiles of waves before ``wave`` whose core meets ``box``, in plan order."""
        hits = {i for key in self._keys(box) for i in self.buckets.get(key, ())}
        return [self.owners[i] for i in sorted(hits)
                if 0 <= self.owners[i].wave < wave and self.owners[i].core.meets(box)]


def known_mask(plan: pd.DataFrame | Owners, tile: Any, dilated: np.ndarray) -> np.ndarray:
    """Pixels of a tile's window known when it is sampled: outside D, or owned by an earlier wave.

    ``plan`` is the section's plan, or its `Owners` when many tiles are asked about. Everything
    else in the window (its own pixels and those of later waves or of tiles without enough
    context) is to be generated; only its own pixels are kept.
    """
    if int(tile.wave) < 0:
        raise ValueError(f"tile {tile.tile} is not scheduled (status {tile.status})")
    win = _check_window(tile, dilated)
    owners = plan if isinstance(plan, Owners) else Owners(plan)
    dilated = np.asarray(dilated, dtype=bool)
    known = ~dilated
    for other in owners.earlier(tile):
        inside, _ = win.overlap(other.core)
        known[inside] |= dilated[inside]
    return known


def batch_dependencies(plan: pd.DataFrame, owners: Owners | None = None) -> dict[int, list[int]]:
    """For each batch, the batches of earlier waves whose tiles own pixels inside its tiles' windows."""
    owners = owners or Owners(plan)
    deps: dict[int, set[int]] = {}
    for tile in plan[plan["wave"] >= 0].itertuples(index=False):
        deps.setdefault(int(tile.batch), set()).update(o.batch for o in owners.earlier(tile))
    return {b: sorted(d) for b, d in sorted(deps.items())}


def paste_owned(window: np.ndarray, box: Box, pixels: np.ndarray, owned: np.ndarray, at: Box,
                touched: np.ndarray) -> None:
    """Copy a tile's owned pixels into ``window`` where the two meet, and mark them in ``touched``.

    ``window`` and ``touched`` cover ``box``; ``pixels`` and ``owned`` (the tile's result and its
    owned mask, or any crop of them) cover ``at``.
    """
    hit = box.overlap(at)
    if hit is None:
        return
    dst, src = hit
    own = owned[src]
    np.copyto(window[dst], pixels[src], where=own)
    touched[dst] |= own
