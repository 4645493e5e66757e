"""Peak memory and wall time of each stage of one section, at two section sizes side by side.

    python benchmarks/bench_stage_memory.py [--sizes 10000 31623] [--factor 4] [--damage 0.05] [--workdir DIR]

For each size (the side of a square section at 1 µm/px: 31,623 px is 10^9 px), writes a synthetic
uint8 section (a 1024 px window of `cytopaint.synth` tissue repeated over the plane, chunks 1024,
NGFF 0.5) whose artifact label (~``--damage`` of the plane, the artifact mix of
`bench_plan.synthetic_labels`, drawn at 1/``--factor`` and written at full resolution with its
pyramid) is planned with 1024 px tiles of a small random-weight U-Net. Then runs each stage the
way the workflow does, in a fresh process, and reads that process's peak RSS (``VmHWM`` at its exit:
``wait4``'s figure would include this process, which it is forked from):

- plan, blend, qc and manifest: the package's CLI, as the rules call it;
- repaint: the job's own code (`run_batch`: tile windows read, context from earlier batches, batch
  file written) with the network's sampling replaced by returning each tile's input (on this CPU
  the real network would take hours at 1024 px; in production it runs on the GPU, whose memory is
  not counted here). Every batch is made first, in wave order, in one process (not measured); the
  figure is then a fresh job of the batch with the most earlier batches to read.

A stage whose memory does not grow with the section is bounded: the ratio column says so, and
projects the larger size to 10^10 px (linearly in the pixels, the worst case) when it does grow.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_plan import synthetic_labels

from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet, UNetConfig
from cytopaint.io.writer import write_section
from cytopaint.models import package as modelpkg
from cytopaint.plan.ownership import batch_dependencies
from cytopaint.plan.table import read_plan
from cytopaint.synth import SectionSpec, render_window

TILE = 1024
NET = UNetConfig(image_size=TILE, in_channels=1, model_channels=8, channel_mult=(1, 1), num_res_blocks=1,
                 attention_resolutions=(), num_head_channels=8)

# runs a module (``-m NAME``) or code (``-c CODE``) with the rest of the arguments, then writes its
# peak resident set (VmHWM, kB) to the file named first
_PEAK = """
import atexit, runpy, sys
report, kind, what = sys.argv[1:4]
sys.argv = [what, *sys.argv[4:]]

def peak():
    kb = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    open(report, "w").write(kb)

atexit.register(peak)
if kind == "-m":
    runpy.run_module(what, run_name="__main__", alter_sys=True)
else:
    exec(compile(what, "<stage>", "exec"), {"__name__": "__main__"})
"""

# repaint: every batch of the plan in wave order, the sampler replaced by the tiles' own inputs
_REPAINT = """
import json, sys
from pathlib import Path
import numpy as np
import cytopaint.repaint.stage as stage
from cytopaint.plan.ownership import batch_dependencies
from cytopaint.plan.table import read_plan
from cytopaint.plan.section import Section
from cytopaint.plan.stage import read_plan_dir

def unsampled(model, inputs, sampler, device, progress, desc):
    return np.stack([t.known for t in inputs]).astype(np.float32), sampler.nfe(model.diffusion_config.steps)

stage.sample_tiles = unsampled
table, section_id, plan_dir, model, out, *only = sys.argv[1:]
plan, summary = read_plan_dir(Path(plan_dir))
section = Section.from_table(table, section_id).planned(summary)
deps = batch_dependencies(plan)
for b in [int(b) for b in only] or summary["batches"]:
    stage.run_batch(section, plan, b, [Path(out) / f"batch_{e}.npz" for e in deps[b]], model,
                    stage.RepaintConfig(steps=2, jump_length=1, jump_n_sample=1), Path(out) / f"batch_{b}.npz",
                    progress=False)
"""


def write_input(work: Path, size: int, factor: int, damage: float) -> tuple[Path, dict[str, float]]:
    """The section store and sections table; returns the table and the damage per artifact kind."""
    window = render_window(SectionSpec(seed=3, shape=(TILE, TILE)), 0, 0, TILE, TILE)["image"]
    reps = -(-size // TILE)
    image = np.tile(window, (reps, reps))[:size, :size]
    coarse = synthetic_labels(size, factor, damage, seed=0)
    mask = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)[:size, :size]
    store = work / "big.ome.zarr"
    write_section(store, image, pixel_size_um=1.0, n_levels=6, labels={"artifacts": mask > 0}, chunks=(1024, 1024))
    table = work / "sections.tsv"
    table.write_text(f"section\timage\tmask\nbig\t{store.name}\t{store.name}#labels/artifacts\n")
    return table, {"damaged": float(np.count_nonzero(mask)) / mask.size}


def measure(kind: str, what: str, *args: str, stdin: str | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process running module or code ``what`` (``kind`` -m or -c)."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as report:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _PEAK, report.name, kind, what, *args], input=stdin,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if out.returncode:
            raise SystemExit(f"{what[:40]} {' '.join(args[:2])} …: exit {out.returncode}\n{out.stderr[-3000:]}")
        return seconds, int(Path(report.name).read_text()) / 1024


def run_stages(work: Path, table: Path, model: Path) -> dict[str, tuple[float, float]]:
    """Wall time and peak RSS of each stage of section ``big``."""
    cli = ["-m", "cytopaint.cli"]
    sec = ["--sections", str(table), "--section", "big"]
    plan_dir, batches, qc = work / "plan", work / "batches", work / "qc"
    out, receipt = work / "repaired.ome.zarr", work / "blend.json"
    found: dict[str, tuple[float, float]] = {}
    found["plan"] = measure(*cli, "plan", *sec, "--model", str(model), "--tiling", "{}", "--out-dir", str(plan_dir))
    subprocess.run([sys.executable, "-c", _REPAINT, str(table), "big", str(plan_dir), str(model), str(batches)],
                   check=True)
    deps = batch_dependencies(read_plan(plan_dir / "tiles.tsv"))
    last = max(deps, key=lambda b: (len(deps[b]), b))
    found["repaint"] = measure("-c", _REPAINT, str(table), "big", str(plan_dir), str(model), str(batches), str(last))
    files = [str(p) for p in sorted(batches.glob("batch_*.npz"))]
    found["blend"] = measure(*cli, "blend", *sec, "--batches", *files, "--out", str(out), "--receipt", str(receipt),
                             "--quiet")
    found["qc"] = measure(*cli, "qc", *sec, "--plan-dir", str(plan_dir), "--receipt", str(receipt), "--qc", "{}",
                          "--out-dir", str(qc), "--quiet")
    config = {"sections": str(table), "results": str(work), "model": str(model)}
    found["manifest"] = measure(*cli, "manifest", *sec, "--plan-dir", str(plan_dir), "--batches", *files,
                                "--receipt", str(receipt), "--qc", str(qc / "summary.json"), "--config", "-",
                                "--out", str(work / "manifest.json"), "--quiet", stdin=json.dumps(config))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 31_623], help="section sides, px at 1 µm")
    parser.add_argument("--factor", type=int, default=4, help="level-0 px per px of the drawn mask")
    parser.add_argument("--damage", type=float, default=0.05)
    parser.add_argument("--workdir", type=Path, help="keep the stores here (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_stage_memory_"))
    model = root / "model"
    if not model.exists():
        modelpkg.save(model, UNet(NET), name="bench-1024", diffusion=DiffusionConfig(steps=2), pixel_size_um=1.0,
                      training={"command": "", "data": [], "seed": 0, "code_version": ""})
    results = {}
    for size in args.sizes:
        work = root / f"side_{size}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        start = time.perf_counter()
        table, damage = write_input(work, size, args.factor, args.damage)
        print(f"{size} x {size} px ({size * size / 1e9:.2g} Gpx), {damage['damaged']:.1%} damaged: input written in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        results[size] = run_stages(work, table, model)
        plan = json.loads((work / "plan" / "plan.json").read_text())
        print(f"  {plan['scheduled_tiles']} tiles in {len(plan['batches'])} batches; "
              + ", ".join(f"{k} {s:.0f} s / {m:.0f} MiB" for k, (s, m) in results[size].items()), flush=True)
        if not args.workdir:
            shutil.rmtree(work)
    small, large = args.sizes
    grow = (large / small) ** 2
    print(f"\n| stage | {small}² px: s | MiB | {large}² px: s | MiB | MiB ratio (pixels x{grow:.0f}) "
          f"| MiB at 10^10 px, if linear in the excess |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for stage in results[small]:
        (ts, ms), (tl, ml) = results[small][stage], results[large][stage]
        per_px = max(ml - ms, 0.0) / (large**2 - small**2)
        projected = ml + per_px * (1e10 - large**2)
        print(f"| {stage} | {ts:.0f} | {ms:.0f} | {tl:.0f} | {ml:.0f} | {ml / ms:.2f} | {projected:.0f} |")
    if not args.workdir:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
