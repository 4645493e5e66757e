"""Dry-run DAG build time of the workflow for a BigBrain-sized sections table (7,404 sections).

    python benchmarks/bench_dag.py [--sections 7404] [--batches 3]

Three figures: the DAG before planning (plan jobs + the plan_index checkpoint), the DAG after
planning (every section planned with ``--batches`` batches: repaint + blend jobs resolved through
the checkpoint), and after planning the DAG of one section's manifest (a single-section rerun).
Stores and plans are empty placeholders; nothing is executed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cytopaint.models import package as modelpkg
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import TINY_64, UNet
from cytopaint.plan.stage import write_index
from cytopaint.plan.table import PLAN_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def fake_plan(section: str, batches: int) -> tuple[str, dict]:
    rows = []
    for b in range(batches):
        row = {c: "0" for c in PLAN_COLUMNS}
        row.update(section=section, tile=f"r{b:05d}c00000", row=str(b), y0=str(b * 1024), height="1024",
                   width="1024", core_y0=str(b * 1024 + 256), core_x0="256", core_height="512", core_width="512",
                   wave="0", batch=str(b), n_owned="1000", known_fraction="0.9", status="ok")
        rows.append("\t".join(row[c] for c in PLAN_COLUMNS))
    summary = {"section": section, "scheduled_tiles": batches, "waves": 1, "batches": list(range(batches)),
               "insufficient_context": {"tiles": [], "pixels_upper_bound": 0}, "margin_px": 8, "tiling": {"seed": 0}}
    return "\t".join(PLAN_COLUMNS) + "\n" + "\n".join(rows) + "\n", summary


def dry_run(work: Path, *targets: str) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"),
                          "--directory", str(work), "--configfile", str(work / "config.yaml"), "-n", "--cores", "1",
                          "--quiet", "rules"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit((out.stdout + out.stderr)[-3000:])
    totals = [line.split()[-1] for line in (out.stdout + out.stderr).splitlines() if line.startswith("total")]
    jobs = int(totals[-1]) if totals else 0
    return time.perf_counter() - start, jobs


def write_stack(work: Path, sections: int) -> list[str]:
    """A sections table of ``sections`` empty placeholder stores, a model and a config; returns the ids."""
    (work / "data").mkdir(parents=True)
    ids = [f"B{i:05d}" for i in range(sections)]
    for s in ids:
        (work / "data" / f"{s}.ome.zarr").mkdir()
    (work / "data" / "sections.tsv").write_text(
        "section\timage\tmask\n" + "".join(f"{s}\t{s}.ome.zarr\t{s}.ome.zarr#labels/artifacts\n" for s in ids))
    modelpkg.save(work / "model", UNet(TINY_64), name="bench", diffusion=DiffusionConfig(), pixel_size_um=2.0,
                  training={"command": "", "data": [], "seed": 0, "code_version": ""})
    (work / "config.yaml").write_text(yaml.safe_dump({"sections": "data/sections.tsv",
                                                      "model": str(work / "model")}))
    return ids


def write_plans(work: Path, ids: list[str], batches: int) -> None:
    """Every section planned with ``batches`` batches, and the planning indexes, as a real run writes them."""
    verified = work / "results" / "model" / "verified.json"  # the model's check, made before the plans
    verified.parent.mkdir(parents=True)
    verified.write_text("{}\n")
    for s in ids:
        plan_dir = work / "results" / "sections" / s / "plan"
        plan_dir.mkdir(parents=True)
        tiles, summary = fake_plan(s, batches)
        (plan_dir / "tiles.tsv").write_text(tiles)
        (plan_dir / "plan.json").write_text(json.dumps(summary))
    results = work / "results"
    write_index(sorted(results.glob("sections/*/plan/plan.json")), results / "plan" / "index.tsv",
                results / "plan" / "index.json", beside=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sections", type=int, default=7404)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ids = write_stack(work, args.sections)
        before, jobs_before = dry_run(work)
        write_plans(work, ids, args.batches)
        after, jobs_after = dry_run(work)
        one, jobs_one = dry_run(work, f"results/sections/{ids[0]}/manifest.json")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{args.sections} sections: dry-run before planning {before:.1f} s ({jobs_before} jobs), "
          f"after planning {after:.1f} s ({jobs_after} jobs, {args.batches} batches per section), "
          f"one section's manifest after planning {one:.1f} s ({jobs_one} jobs); "
          f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
