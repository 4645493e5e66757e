"""Sampled vs repaired pixels of the planner on BigBrain-like synthetic sections, per artifact kind.

    python benchmarks/bench_planner_ratio.py [--size 32768] [--factor 4] [--sections 2] [--tile 1024]

GPU time is spent on whole tile windows, so (sampled tile windows) / (repaired pixels) is one of the
three factors of GPU-seconds per repaired mm². Sections are 1 um/px with about 5% damage of the
artifact mix of `bench_plan.synthetic_labels` (missing pieces, folds, tears, crystals), the mask
given at ``--factor``; tiles of ``--tile`` px with the workflow's default tiling (core half the
tile, margin 8 um, min_known 0.25). Repaired pixels are exact at level 0: each scheduled tile's
owned pixels, from the dilated mask on its window as the repaint job computes it. A tile's window
is charged to the artifact kinds in proportion to its owned pixels of each kind (a pixel of the
dilated margin counts for the kind of the nearest labelled mask pixel). Tiles short of context are
neither sampled nor repaired; they are counted apart.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_plan import KINDS, synthetic_labels
from scipy import ndimage

from cytopaint.plan.ownership import DilatedMask, owned_mask, window_box
from cytopaint.plan.tiling import plan_tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32768, help="section side, level-0 px (1 um)")
    parser.add_argument("--factor", type=int, default=4, help="level-0 px per mask px")
    parser.add_argument("--sections", type=int, default=2)
    parser.add_argument("--damage", type=float, default=0.05)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--core-fraction", type=float, default=0.5)
    parser.add_argument("--margin", type=int, default=8, help="dilation margin, level-0 px")
    parser.add_argument("--min-known", type=float, default=0.25)
    args = parser.parse_args()

    sampled, repaired = np.zeros(len(KINDS)), np.zeros(len(KINDS))
    short = 0
    for seed in range(args.sections):
        start = time.perf_counter()
        labels = synthetic_labels(args.size, args.factor, args.damage, seed)
        shape = (args.size, args.size)
        plan = plan_tiles(labels, factor=args.factor, shape=shape, tile_size=args.tile,
                          core_size=max(1, round(args.tile * args.core_fraction)), margin_px=args.margin,
                          min_known=args.min_known, section=f"s{seed}", seed=0)
        dilated = DilatedMask(labels, (args.factor, args.factor), shape, args.margin)
        nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
        kinds = labels[tuple(nearest)]  # every mask pixel takes the kind of its nearest labelled pixel
        del nearest
        short += int((plan["wave"] < 0).sum())
        for tile in plan[plan["wave"] >= 0].itertuples(index=False):
            win = window_box(tile)
            own = owned_mask(tile, dilated.window(win))
            if not own.any():
                continue
            f = args.factor
            block = kinds[win.y0 // f:-(-win.y1 // f), win.x0 // f:-(-win.x1 // f)]
            fine = np.repeat(np.repeat(block, f, axis=0), f, axis=1)
            kind = fine[win.y0 % f:win.y0 % f + win.height, win.x0 % f:win.x0 % f + win.width]
            counts = np.bincount(kind[own], minlength=len(KINDS) + 1)[1:]
            repaired += counts
            sampled += win.height * win.width * counts / counts.sum()
        print(f"section {seed}: {len(plan)} tiles ({int((plan['wave'] < 0).sum())} short of context), "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    print(f"\n{args.sections} sections of {args.size} x {args.size} px at 1 um, mask at 1/{args.factor}, "
          f"{args.damage:.0%} damage; tiles {args.tile} px, core {args.core_fraction:g} of the side, "
          f"margin {args.margin} px, min_known {args.min_known:g}; {short} tiles short of context")
    print(f"{'kind':<10}{'repaired Mpx':>14}{'sampled Mpx':>14}{'sampled / repaired':>20}")
    for k, name in enumerate(KINDS):
        if repaired[k]:
            print(f"{name:<10}{repaired[k] / 1e6:>14.1f}{sampled[k] / 1e6:>14.1f}{sampled[k] / repaired[k]:>20.2f}")
    print(f"{'all':<10}{repaired.sum() / 1e6:>14.1f}{sampled.sum() / 1e6:>14.1f}{sampled.sum() / repaired.sum():>20.2f}")


if __name__ == "__main__":
    main()
