"""CPU cost per tile of preparing the sampler's inputs (repaint.prepare_tiles), windows read per tile vs sliced
from a plane in memory (as the evaluation does), on a 1 mm² synthetic patch at 2 µm with a 30-40% hole.

    python benchmarks/bench_prepare_tiles.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


from cytopaint.models import package as modelpkg

from cytopaint.io import writer
from cytopaint.evaluation.sampling import bin_masks
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.plan.ownership import Owners
from cytopaint.repaint.tiles import prepare_tiles
from cytopaint.synth import SectionSpec, render_window
from cytopaint.plan.section import Section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = SectionSpec(seed=9, shape=(512, 512), pixel_size_um=2.0, damaged_fraction=0)
    image = render_window(spec, 0, 0, 512, 512)["intact"]
    hole = bin_masks(1, [(0.3, 0.4)], image.shape, 0)[0][1]
    model = modelpkg.load("demo")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "p.ome.zarr"
        writer.write_section(store, image, pixel_size_um=2.0, n_levels=1, labels={"artifacts": hole.astype(np.uint8)},
                             chunks=image.shape)
        mask_ref = f"{store}#labels/artifacts"
        summary = plan_section(Section("p0000", str(store), mask_ref), "demo", TilingConfig(), None, Path(tmp) / "plan")
        plan, _ = read_plan_dir(Path(tmp) / "plan")
        section = Section.from_plan(summary)
        owners = Owners(plan)
        tiles = plan[plan["wave"] == 0]
        print(f"{len(tiles)} tiles of wave 0 ({len(plan)} in {summary['waves']} waves)")
        for label, source in (("mask (dask) and windows read per tile", section),
                              ("mask and plane in memory", section.in_memory())):
            start = time.perf_counter()
            for _ in range(args.repeats):
                prepare_tiles(source, owners, tiles, [], model.sides, model.normalization)
            per_tile = (time.perf_counter() - start) / args.repeats / len(tiles)
            print(f"{label:<40} {per_tile * 1e3:6.2f} ms per tile")

if __name__ == "__main__":
    main()
