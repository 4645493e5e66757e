"""Planning time and memory for a whole section with synthetic damage, given at a coarse scale.

    python benchmarks/bench_plan.py [--size 100000] [--factor 16] [--damage 0.05] [--tiles 1024 64]

Damage (sizes at 1 um/px): missing pieces (ellipses up to 5 mm), folds (bands 0.1-2 mm wide),
tears (strokes 10 um-1 mm wide, mm-cm long) and crystals (dots up to 100 um), added until the
target fraction of the plane is covered. Each tile size is planned twice: once for the time,
once under tracemalloc for the peak of memory allocated while planning (the mask excluded).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
from skimage.draw import ellipse, polygon

from cytopaint.diffusion.unet import PAPER_1024
from cytopaint.plan.tiling import plan_tiles


def stroke(mask: np.ndarray, rng: np.random.Generator, length: float, width: float, wiggle: float) -> None:
    """A polyline of ``length`` and ``width`` (coarse px) in steps of a random walk of directions."""
    y, x = rng.uniform(0, mask.shape[0]), rng.uniform(0, mask.shape[1])
    angle = rng.uniform(0, 2 * np.pi)
    step = max(width, length / 20)
    for _ in range(int(np.ceil(length / step))):
        angle += rng.normal(0, wiggle)
        dy, dx = np.sin(angle), np.cos(angle)
        ny, nx = y + step * dy, x + step * dx
        h = max(width, 1.0) / 2
        rr, cc = polygon([y - h * dx, y + h * dx, ny + h * dx, ny - h * dx],
                         [x + h * dy, x - h * dy, nx - h * dy, nx + h * dy], shape=mask.shape)
        mask[rr, cc] = True
        y, x = ny, nx


KINDS = ("missing", "fold", "tear", "crystals")  # label values 1..4 of `synthetic_labels`


def synthetic_labels(size: int, factor: int, damage: float, seed: int) -> np.ndarray:
    """Coarse artifact labels (0 none, else 1 + index in KINDS, later ones on top) of a size x size um
    section with about ``damage`` of it covered."""
    rng = np.random.default_rng(seed)
    n = -(-size // factor)
    labels = np.zeros((n, n), dtype=np.uint8)
    um = 1.0 / factor  # coarse px per um
    covered = 0.0
    while covered < damage:
        k = int(rng.choice(4, p=[0.15, 0.25, 0.4, 0.2]))
        piece = np.zeros((n, n), dtype=bool)
        if KINDS[k] == "missing":
            ry, rx = rng.uniform(250, 2500, size=2) * um
            rr, cc = ellipse(rng.uniform(0, n), rng.uniform(0, n), ry, rx, shape=piece.shape,
                             rotation=rng.uniform(0, np.pi))
            piece[rr, cc] = True
        elif KINDS[k] == "fold":
            stroke(piece, rng, rng.uniform(5000, 30000) * um, rng.uniform(100, 2000) * um, 0.05)
        elif KINDS[k] == "tear":
            stroke(piece, rng, rng.uniform(2000, 30000) * um, np.exp(rng.uniform(np.log(10), np.log(1000))) * um, 0.2)
        else:
            count = max(1, round(2000 * (size / 100_000) ** 2))  # 2,000 per 1 cm² of section
            ys, xs = rng.integers(0, n, count), rng.integers(0, n, count)
            r = np.maximum(1, (rng.uniform(5, 50, count) * um).round().astype(int))
            for y, x, rad in zip(ys, xs, r, strict=True):
                piece[max(y - rad // 2, 0) : y + rad // 2 + 1, max(x - rad // 2, 0) : x + rad // 2 + 1] = True
        labels[piece] = k + 1
        covered = float(np.count_nonzero(labels)) / labels.size
    return labels


def small_window_sides(tile: int, min_window: int) -> tuple[int, ...]:
    """The window sides below ``tile`` down to ``min_window`` that the planner may use: `PAPER_1024`'s
    halvings for a 1024 px tile, else the tile's half and quarter."""
    ladder = PAPER_1024.sides() if tile == PAPER_1024.image_size else (tile, tile // 2, tile // 4)
    return tuple(s for s in ladder if min_window <= s < tile)


def synthetic_mask(size: int, factor: int, damage: float, seed: int) -> np.ndarray:
    """Coarse boolean mask of a size x size um section with about ``damage`` of it covered."""
    return synthetic_labels(size, factor, damage, seed) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="section side, level-0 px (1 um)")
    parser.add_argument("--factor", type=int, default=16, help="level-0 px per mask px")
    parser.add_argument("--damage", type=float, default=0.05)
    parser.add_argument("--tiles", type=int, nargs="+", default=[1024, 64])
    parser.add_argument("--margin", type=int, default=16, help="dilation margin, level-0 px")
    parser.add_argument("--min-known", type=float, default=0.25)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    mask = synthetic_mask(args.size, args.factor, args.damage, args.seed)
    print(f"section {args.size} x {args.size} px, mask {mask.shape[0]} x {mask.shape[1]} at 1/{args.factor}, "
          f"{mask.mean():.2%} damaged (built in {time.perf_counter() - start:.1f} s)")
    for tile in args.tiles:
        kwargs = dict(factor=args.factor, shape=(args.size, args.size), tile_size=tile, margin_px=args.margin,
                      min_known=args.min_known, max_batch=args.max_batch, section="bench", seed=args.seed)
        start = time.perf_counter()
        plan = plan_tiles(mask, **kwargs)
        seconds = time.perf_counter() - start
        tracemalloc.start()
        plan_tiles(mask, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sched = plan[plan["wave"] >= 0]
        owned, windows = plan["n_owned"].sum(), (plan["height"] * plan["width"]).sum()
        print(f"T={tile} C={tile // 2} margin={args.margin} min_known={args.min_known}: {seconds:.2f} s, "
              f"peak {peak / 2**20:.0f} MiB traced; {len(plan)} tiles, {plan['wave'].max() + 1} waves, "
              f"{sched['batch'].nunique()} batches, {len(plan) - len(sched)} tiles short of context; "
              f"owned (upper bound) {owned / args.size**2:.2%} of the plane, windows {windows / owned:.1f}x that")
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
