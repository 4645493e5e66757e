"""Sampled vs repaired pixels of the planner on BigBrain-like synthetic sections, per artifact kind.

    python benchmarks/bench_planner_ratio.py [--size 32768] [--factor 4] [--sections 2] [--tile 1024]
                                             [--min-window 256]

GPU time is spent on whole tile windows, so (sampled tile windows) / (repaired pixels) is one of the
three factors of GPU-seconds per repaired mm². Sections are 1 um/px with about 5% damage of the
artifact mix of `bench_plan.synthetic_labels` (missing pieces, folds, tears, crystals), the mask
given at ``--factor``; tiles of ``--tile`` px with the workflow's default tiling (core half the
tile, margin 8 um, min_known 0.25). Repaired pixels are exact at level 0: each scheduled tile's
owned pixels, from the dilated mask on its window as the repaint job computes it. A tile's window
is charged to the artifact kinds in proportion to its owned pixels of each kind (a pixel of the
dilated margin counts for the kind of the nearest labelled mask pixel). Tiles short of context are
neither sampled nor repaired; they are counted apart. Each section is planned twice, side by side:
whole tiles only (before), and with smaller windows down to ``--min-window`` px for tiles that own
little (after; `cytopaint.plan.windows`, the sides `PAPER_1024` samples at). A window costs its
area: the network's time per evaluation grows with the pixels of the tile.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_plan import KINDS, small_window_sides, synthetic_labels
from scipy import ndimage

from cytopaint.plan.ownership import DilatedMask, owned_mask, window_box
from cytopaint.plan.table import window_counts
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
    parser.add_argument("--min-window", type=int, default=256, help="smallest window side of the 'after' plan, px")
    args = parser.parse_args()

    plans = {"before": (), "after": small_window_sides(args.tile, args.min_window)}
    sampled = {name: np.zeros(len(KINDS)) for name in plans}
    repaired = {name: np.zeros(len(KINDS)) for name in plans}
    short = dict.fromkeys(plans, 0)
    for seed in range(args.sections):
        start = time.perf_counter()
        labels = synthetic_labels(args.size, args.factor, args.damage, seed)
        shape = (args.size, args.size)
        dilated = DilatedMask(labels, (args.factor, args.factor), shape, args.margin)
        nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
        kinds = labels[tuple(nearest)]  # every mask pixel takes the kind of its nearest labelled pixel
        del nearest
        for name, sides in plans.items():
            planning = time.perf_counter()
            plan = plan_tiles(labels, factor=args.factor, shape=shape, tile_size=args.tile,
                              core_size=max(1, round(args.tile * args.core_fraction)), margin_px=args.margin,
                              min_known=args.min_known, section=f"s{seed}", seed=0, window_sides=sides)
            planning = time.perf_counter() - planning
            short[name] += int((plan["wave"] < 0).sum())
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
                repaired[name] += counts
                sampled[name] += win.height * win.width * counts / counts.sum()
            windows = window_counts(plan)
            print(f"section {seed} {name}: {len(plan)} tiles ({int((plan['wave'] < 0).sum())} short of context) "
                  f"in {int(plan['wave'].max()) + 1} waves and {int(plan['batch'].max()) + 1} batches, "
                  f"windows {', '.join(f'{n} x {s} px' for s, n in windows.items())}; planned in {planning:.1f} s",
                  flush=True)
        print(f"section {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\n{args.sections} sections of {args.size} x {args.size} px at 1 um, mask at 1/{args.factor}, "
          f"{args.damage:.0%} damage; tiles {args.tile} px, core {args.core_fraction:g} of the side, "
          f"margin {args.margin} px, min_known {args.min_known:g}; tiles short of context: "
          f"{short['before']} before, {short['after']} after; after: windows of {', '.join(map(str, plans['after']))} px too")
    print(f"{'kind':<16}{'repaired Mpx':>14}{'sampled Mpx before':>20}{'ratio before':>14}"
          f"{'sampled Mpx after':>19}{'ratio after':>13}")
    for k, name in [*enumerate(KINDS), (slice(None), "all")]:
        rep, rep_after = float(np.sum(repaired["before"][k])), float(np.sum(repaired["after"][k]))
        before, after = float(np.sum(sampled["before"][k])), float(np.sum(sampled["after"][k]))
        if rep:  # the same pixels are repaired either way (the ownership contract); each ratio uses its own count
            print(f"{name:<16}{rep / 1e6:>14.1f}{before / 1e6:>20.1f}{before / rep:>14.2f}{after / 1e6:>19.1f}"
                  f"{after / rep_after:>13.2f}")


if __name__ == "__main__":
    main()
