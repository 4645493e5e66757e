"""Device-days (GPU-days on a GPU) to repair a whole BigBrain-scale stack: planned windows x measured seconds.

    python benchmarks/project_bigbrain.py --bench BENCH.json [--size 32768] [--sections 2] [--min-window 256]
                                          [--core-fraction 0.5] [--min-known 0.25]
                                          [--section-px 1e10] [--stack 7404] [--out projection.json]

    s per section = sum over window shapes of (windows of that shape) x NFE x (s per NFE per tile there)

Windows come from planning synthetic BigBrain-like sections (`bench_plan.synthetic_labels`: 1 µm/px,
5% damage of the artifact mix, mask at 1/4) with the workflow's default tiling (1024 px tiles, core
half the tile, margin 8 µm, min_known 0.25; ``--core-fraction`` and ``--min-known`` change the last
two), twice: whole tiles, and with windows down to ``--min-window`` (split tiles, cells, oblong
windows; `cytopaint.plan.windows`). A section of
``--section-px`` pixels (BigBrain: a bounding box of ~10^10 px) is taken to hold windows in
proportion to its area. Seconds per NFE per tile are what `cytopaint bench NETWORK --shape HxW ...`
measured on the device at hand (its bench.json), per sampler setting and window shape; a plan with a
shape the bench did not time gets no figure ("not measured"): nothing is carried over from another
shape or device. The paper: 35 s per 1024 px tile on an A100, ~645 A100-days for BigBrain.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from bench_plan import small_window_sides, synthetic_labels

from cytopaint.plan.table import window_counts
from cytopaint.plan.tiling import plan_tiles

PAPER_A100_DAYS = 645


def plan_windows(size: int, factor: int, damage: float, sections: int, tile: int, min_window: int,
                 margin: int = 8, min_known: float = 0.25, core_fraction: float = 0.5) -> dict[str, dict[str, float]]:
    """Mean scheduled windows per section by shape (``"HxW"``), for whole tiles and for small windows."""
    plans = {"whole tiles": (), f"min_window {min_window}": small_window_sides(tile, min_window)}
    totals: dict[str, Counter] = {name: Counter() for name in plans}
    for seed in range(sections):
        labels = synthetic_labels(size, factor, damage, seed)
        for name, sides in plans.items():
            plan = plan_tiles(labels, factor=factor, shape=(size, size), tile_size=tile, margin_px=margin,
                              core_size=max(1, round(tile * core_fraction)), min_known=min_known,
                              section=f"s{seed}", seed=0, window_sides=sides)
            totals[name].update(window_counts(plan))
    return {name: {shape: n / sections for shape, n in counts.items()} for name, counts in totals.items()}


def setting_of(row: dict) -> str:
    """A bench row's sampler setting, with its network execution unless eager (older benches have none)."""
    execution = row.get("execution", "eager")
    return row["setting"] if execution == "eager" else f"{row['setting']} [{execution}]"


def device_seconds(windows: dict[str, float], rows: list[dict], setting: str) -> float | None:
    """Seconds for ``windows`` (count per ``"HxW"``) with ``setting``'s bench rows; None if a shape is untimed."""
    timed = {f"{r['height']}x{r['width']}": r for r in rows if setting_of(r) == setting}
    if any(shape not in timed for shape in windows):
        return None
    return sum(n * timed[s]["nfe_per_tile"] * timed[s]["ms_per_nfe_per_tile"] / 1e3 for s, n in windows.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="bench.json of `cytopaint bench ... --shape HxW ...`")
    parser.add_argument("--size", type=int, default=32768, help="side of the synthetic sections planned, px (1 um)")
    parser.add_argument("--factor", type=int, default=4, help="level-0 px per mask px")
    parser.add_argument("--sections", type=int, default=2)
    parser.add_argument("--damage", type=float, default=0.05)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--min-window", type=int, default=256)
    parser.add_argument("--core-fraction", type=float, default=0.5, help="core side as a fraction of the tile's")
    parser.add_argument("--min-known", type=float, default=0.25, help="known context a tile needs")
    parser.add_argument("--section-px", type=float, default=1e10, help="pixels of one stack section's bounding box")
    parser.add_argument("--stack", type=int, default=7404, help="sections in the stack")
    parser.add_argument("--out", help="write the windows and projections as JSON")
    args = parser.parse_args()

    run = json.loads(Path(args.bench).read_text())
    if run["unet"]["image_size"] != args.tile:
        raise SystemExit(f"the bench timed a {run['unet']['image_size']} px network, "
                         f"the plans use {args.tile} px tiles")
    windows = plan_windows(args.size, args.factor, args.damage, args.sections, args.tile, args.min_window,
                           min_known=args.min_known, core_fraction=args.core_fraction)
    scale = args.section_px / args.size**2
    settings = list(dict.fromkeys(setting_of(r) for r in run["rows"]))
    print(f"{args.stack} sections of {args.section_px:.3g} px, windows as on {args.sections} synthetic sections of "
          f"{args.size} x {args.size} px (x {scale:.2f} by area), core {args.core_fraction:g} of the tile, "
          f"min_known {args.min_known:g}; bench: {run['network']} on {run['device']} "
          f"({run.get('gpu') or 'CPU'}), code {run['code'].get('version')}")
    for name, counts in windows.items():
        print(f"  {name}: " + ", ".join(f"{n * scale:.0f} x {s}" for s, n in counts.items()) + " windows per section")
    device = run.get("gpu") or run["device"]
    print(f"{'setting':>24} {'plan':>16} {'s/section':>14} {'days':>12} {'vs paper':>9}   (on {device})")
    projections = []
    for setting in settings:
        for name, counts in windows.items():
            per_section = device_seconds(counts, run["rows"], setting)
            days = None if per_section is None else per_section * scale * args.stack / 86400
            projections.append({"setting": setting, "plan": name, "device": device,
                                "seconds_per_planned_section": per_section, "days": days})
            figures = ("not measured", "-", "-") if days is None else (
                f"{per_section * scale:.0f}", f"{days:.1f}", f"{PAPER_A100_DAYS / days:.3g}x")
            print(f"{setting:>24} {name:>16} {figures[0]:>14} {figures[1]:>12} {figures[2]:>9}")
    print(f"paper: {PAPER_A100_DAYS} A100-days at 35 s per 1024 px tile ('vs paper': fewer days, across devices)")
    if args.out:
        Path(args.out).write_text(json.dumps({"windows_per_planned_section": windows, "scale": scale,
                                              "core_fraction": args.core_fraction, "min_known": args.min_known,
                                              "stack": args.stack, "bench": args.bench,
                                              "projections": projections}, indent=1) + "\n")


if __name__ == "__main__":
    main()
