"""The tile plan of one section: which tiles to repaint, who owns which pixel, in which wave.

`plan_tiles` assembles the plan from its parts: the tile grid (`cytopaint.plan.grid`), per-core
pixel counts from the coarse mask (`cytopaint.plan.coarse`), the ownership contract
(`cytopaint.plan.ownership`), the wave scheduler (`cytopaint.plan.schedule`) and tile seeds
(`cytopaint.plan.seeds`), into the plan table (`cytopaint.plan.table`); tiles that own little get
smaller windows, or are split into parts with windows of their own (`cytopaint.plan.windows`), when
the model samples at smaller sides.

Behind a straight front a fully damaged tile sees only its leading border as known:
(T - C) // 2 / T of the window (0.25 for C = T/2), so peeling a hole wider than a tile needs
``min_known`` at most that, a smaller core, or ``min_known_floor``. Tiles that never qualify are
kept in the plan with status ``insufficient_context`` (wave and batch -1): reported, never filled.

Planning is exact in its geometry but conservative in its counts (see `cytopaint.plan.coarse`):
``n_owned`` is an upper bound and ``known_fraction`` a lower bound of the level-0 values (both
exact for ``factor`` 1), and a tile is planned whenever its core may hold a pixel of D, so no
pixel of D is left without a tile. Memory is one band of the coarse mask plus about 0.5 KiB per
planned tile, the returned table included; the section's size only enters through the number of
tiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .coarse import MaskArray, check_mask, segment_counts
from .grid import Factor, axis_grid, factors
from .schedule import batches, neighbourhoods, waves
from .seeds import tile_seeds
from .table import STATUSES, empty_plan, frame
from .windows import shrink_windows


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
    window_sides: Sequence[int] = (),
) -> pd.DataFrame:
    """Plan the repaint of one section: tiles, owners, outside-in waves, batches and seeds.

    Parameters
    ----------
    mask
        Coarse artifact mask (nonzero = artifact), one pixel per ``factor`` level-0 pixels.
    factor
        Level-0 pixels per mask pixel, an int or (fy, fx).
    shape
        The level-0 plane (height, width).
    tile_size, core_size
        Window and core side in px; ``core_size`` defaults to ``tile_size // 2``.
    section, seed
        Section id and global seed, from which every tile's seed derives.
    margin_px
        Level-0 dilation radius of the mask.
    min_known
        A wave takes tiles whose window is at least this fraction known.
    min_known_floor
        When set, a plan that would stall instead runs the remaining tiles with the most known
        context, if that reaches the floor (status ``relaxed``), and then goes on at ``min_known``.
    max_batch
        Batches hold at most this many tiles of one wave, in row-major order, numbered across
        the section; a tile with a smaller window counts as its share of a whole tile's pixels.
    window_sides
        Smaller window sides the model samples at (`cytopaint.diffusion.unet.UNetConfig.sides`):
        a tile whose owned pixels fit in the central core fraction of one gets that window, or is
        split into parts when their windows cost less (`cytopaint.plan.windows.shrink_windows`);
        none by default.

    Returns
    -------
    pandas.DataFrame
        The plan table (`cytopaint.plan.table.PLAN_COLUMNS`), sorted by wave, batch, row, col and part,
        unscheduled tiles (status ``insufficient_context``) last; empty for a mask without
        artifacts. ``n_owned`` is an upper bound and ``known_fraction`` (when the tile runs, or at
        the end for unscheduled tiles) a lower bound, both exact for ``factor`` 1. They loosen as
        ``factor`` nears ``core_size``: take a mask level with factor at most about C / 4.
    """
    fy, fx = factors(factor)
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
    check_mask(mask, fy, fx, (height, width))
    gy, gx = axis_grid(height, tile_size, core), axis_grid(width, tile_size, core)
    rows, cols, counts = segment_counts(mask, fy, fx, (height, width), margin_px, gy, gx)
    n = len(rows)
    if n == 0:
        return empty_plan()

    neighbour, neighbour_px, conflict = neighbourhoods(rows, cols, counts, gy, gx)
    del counts
    area = gy.length * gx.length
    need = math.ceil(min_known * area - 1e-9 * area)
    floor_need = None if min_known_floor is None else math.ceil(min_known_floor * area - 1e-9 * area)
    parity = (rows % (gy.reach + 1)) * (gx.reach + 1) + cols % (gx.reach + 1)
    keys = rows * gx.n + cols
    wave, known, relaxed = waves(neighbour, neighbour_px, conflict, keys, parity, area, need, floor_need)
    scheduled = wave >= 0
    order = np.lexsort((keys, np.where(scheduled, wave, n)))
    batch = np.full(n, -1, dtype=np.int64)
    batch[order] = batches(wave[order], max_batch)

    frac = known / area
    status = np.array(STATUSES, dtype=object)[np.where(scheduled, relaxed.astype(int), 2)]  # ok, relaxed, short
    r, c = rows[order], cols[order]
    plan = frame({
        "section": np.full(n, section, dtype=object),
        "tile": [f"r{y:05d}c{x:05d}" for y, x in zip(r.tolist(), c.tolist(), strict=True)],
        "row": r,
        "col": c,
        "part": np.zeros(n, dtype=np.int64),
        "y0": gy.starts[r],
        "x0": gx.starts[c],
        "height": np.full(n, gy.length),
        "width": np.full(n, gx.length),
        "core_y0": r * core,
        "core_x0": c * core,
        "core_height": np.minimum(core, height - r * core),
        "core_width": np.minimum(core, width - c * core),
        "wave": wave[order],
        "batch": batch[order],
        "seed": tile_seeds(seed, section, r, c),
        "n_owned": neighbour_px[order, neighbour_px.shape[1] // 2],
        "known_fraction": frac[order],
        "status": status[order],
    })
    if not window_sides:
        return plan
    plan = shrink_windows(plan, mask, (fy, fx), (height, width), margin_px, window_sides, core / tile_size, min_known)
    plan["seed"] = tile_seeds(seed, section, plan["row"], plan["col"], parts=plan["part"])
    plan["batch"] = batches(plan["wave"].to_numpy(), max_batch, (plan["height"] * plan["width"]).to_numpy() / area)
    return plan
