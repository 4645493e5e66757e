"""Command-line entry point: ``cytopaint <command>``; ``cytopaint <command> --help`` for each."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from . import __version__


def _model_info(args: argparse.Namespace) -> int:
    from .models import classifier
    from .models import package as modelpkg

    if args.model != "demo" and modelpkg.read_card_json(modelpkg.resolve(args.model)).get("format") == classifier.FORMAT:
        clf = classifier.load_classifier(args.model, verify=args.verify)
        card, path, sha = clf.card, clf.path, clf.card["weights"]["sha256"]
    else:
        pkg = modelpkg.load(args.model) if args.verify else None
        card = pkg.card if pkg else modelpkg.read_card(args.model)
        path, sha = modelpkg.resolve(args.model), card["weights"]["sha256"]
    json.dump(card, sys.stdout, indent=2)
    print()
    if args.verify:
        print(f"verified: {path} (sha256 {sha[:12]}…)", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .diffusion.gaussian import DiffusionConfig
    from .models.training import TrainSettings, architecture, train_package
    from .models.training_monitor import SheetSettings

    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                             lr_schedule=args.lr_schedule, lr_min=args.lr_min,
                             ema_decay=args.ema_decay, grad_clip=args.grad_clip, precision=args.precision,
                             seed=args.seed, checkpoint_every=args.checkpoint_every)
    card = train_package(args.sections, Path(args.out), pixel_size_um=args.pixel_size, arch=architecture(args.arch),
                         settings=settings, diffusion=DiffusionConfig(steps=args.diffusion_steps),
                         run_dir=Path(args.run_dir) if args.run_dir else None, resume=args.resume, name=args.name,
                         command=" ".join(shlex.quote(a) for a in ["cytopaint", *sys.argv[1:]]),
                         progress=not args.quiet, weights_dtype=args.weights_dtype, init=args.init,
                         sheet=SheetSettings(count=args.sample_count, steps=args.sample_steps, seed=args.seed))
    if card:
        print(f"wrote {args.out} (sha256 {card['weights']['sha256'][:12]}…)", file=sys.stderr)
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .models.classifier_training import train_classifier

    card = train_classifier(args.sections, args.held_out, Path(args.out), name=args.name or Path(args.out).name,
                            pixel_size_um=args.pixel_size, input_um=args.input_um, steps=args.steps,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            command=" ".join(shlex.quote(a) for a in ["cytopaint", *sys.argv[1:]]),
                            data_notes=args.data_note, progress=not args.quiet)
    ev = card["evaluation"]
    print(f"wrote {args.out}: held-out accuracy {ev['accuracy']:.3f} on {ev['n_patches']} patches "
          f"(sha256 {card['weights']['sha256'][:12]}…)", file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .models.package import ModelPackageError
    from .plan.review import read_review
    from .plan.section import Section
    from .plan.stage import TilingConfig, plan_section, record_failure

    section = Section.from_table(args.sections, args.section)
    try:
        summary = plan_section(section, args.model, TilingConfig(**json.loads(args.tiling)),
                               json.loads(args.normalization) if args.normalization else None, Path(args.out_dir),
                               review=read_review(args.review) if args.review else None, nfe_per_tile=args.nfe)
    except ModelPackageError:
        raise  # the model is every section's: no section can go on
    except (ValueError, OSError) as err:
        if not args.record_failure:
            raise
        record_failure(section, err, Path(args.out_dir))
        print(f"section {args.section}: FAILED, not repaired: {err}", file=sys.stderr)
        return 0
    short = summary["insufficient_context"]["tiles"]
    print(f"section {args.section}: {summary['scheduled_tiles']} tiles in {summary['waves']} waves, "
          f"{len(summary['batches'])} batches", file=sys.stderr)
    if short:
        print(f"section {args.section}: WARNING {len(short)} tiles lack context and are NOT repaired "
              f"(≤ {summary['insufficient_context']['pixels_upper_bound']} px): see plan.json", file=sys.stderr)
    return 0


def _repaint_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .diffusion.execution import Execution
    from .plan.section import Section
    from .plan.stage import read_plan_dir
    from .repaint.stage import RepaintConfig, run_batch

    plan, summary = read_plan_dir(Path(args.plan_dir))
    section = Section.from_table(args.sections, args.section).planned(summary)
    meta = run_batch(section, plan, args.batch, [Path(p) for p in args.earlier], args.model,
                     RepaintConfig(**json.loads(args.repaint)), Path(args.out), progress=not args.quiet,
                     execution=Execution(**json.loads(args.execution)))
    print(f"section {args.section} batch {args.batch}: {len(plan[plan['batch'] == args.batch])} tiles, "
          f"{meta['nfe_per_tile']} NFE, {meta['sample_seconds']:.1f} s on {meta['device']} "
          f"({Execution(**meta['execution']).label})", file=sys.stderr)
    return 0


def _plan_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .plan.stage import write_index

    write_index([Path(p) for p in args.summaries], Path(args.out), Path(args.out_json), beside=args.beside)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .synth.stack import write_synthetic_stack

    table = write_synthetic_stack(Path(args.out), args.sections, shape=tuple(args.shape), pixel_size_um=args.pixel_size,
                                  seed=args.seed, damaged_fraction=args.damage, chunks=args.chunks, ngff=args.ngff,
                                  progress=not args.quiet, workers=args.workers)
    print(f"wrote {len(args.sections)} sections and {table}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation.harness import run_from_files

    overrides = json.loads(args.settings)
    if args.device:
        overrides.setdefault("repaint", {})["device"] = args.device
    run = run_from_files(args.config, Path(args.out), sections=args.sections, overrides=overrides,
                         progress=not args.quiet)
    print(f"evaluated {run['patches']} patches in {run['seconds']:g} s: {Path(args.out) / 'summary.md'}",
          file=sys.stderr)
    return 0


def _evaluation_args(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="workflow config file(s) with model, tiling, repaint and evaluate blocks (later ones win)")
    p.add_argument("--settings", default="{}", help="JSON merged over the config, e.g. '{\"evaluate\": {...}}'")
    p.add_argument("--sections", help="held-out sections table (overrides evaluate.sections)")
    p.add_argument("--device", help="sampler and classifier device (overrides repaint.device), e.g. cuda")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _pareto(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation.bench import parse_setting
    from .evaluation.harness import settings_from_files
    from .evaluation.pareto import run_pareto

    samplers = dict(parse_setting(s) for s in args.sampler)
    if len(samplers) != len(args.sampler):
        raise SystemExit("cytopaint pareto: each --sampler needs its own NAME")
    overrides = json.loads(args.settings)
    if args.device:
        overrides.setdefault("repaint", {})["device"] = args.device
    settings = settings_from_files(args.config, sections=args.sections, overrides=overrides)
    table = run_pareto(settings, samplers, Path(args.out), progress=not args.quiet)
    cols = ["setting", "nfe", "density_abs_error", "size_abs_error", "top1", "top2", "pareto", "meets_reference"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {Path(args.out) / 'pareto.md'}", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .diffusion.execution import Execution
    from .evaluation.bench import DEFAULT_SETTINGS, bench, format_table, parse_setting, parse_shape, write_bench
    from .repaint.stage import pick_device

    settings = dict(parse_setting(s) for s in args.sampler) if args.sampler else DEFAULT_SETTINGS
    rows, context = bench(args.network, settings, batch=args.batch, device=pick_device(args.device),
                          timed_nfe=args.timed_nfe, shapes=[parse_shape(s) for s in args.shape] or None,
                          executions=[Execution.parse(e) for e in args.execution] or None)
    print(format_table(rows, context))
    if args.out:
        write_bench(rows, context, Path(args.out))
        print(f"wrote {Path(args.out) / 'bench.json'} and bench.tsv", file=sys.stderr)
    return 0


def _blend(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from .blend.stage import blend_section
    from .io.atomic import write_text
    from .plan.section import Section

    section = Section.from_table(args.sections, args.section)
    out = Path(args.out)
    if out.exists():
        if not args.replace:
            raise FileExistsError(f"{out} exists; pass --replace to rewrite it (the workflow does)")
        shutil.rmtree(out)
    receipt = blend_section(section.image, section.z, [Path(p) for p in args.batches], out, progress=not args.quiet)
    receipt["section"] = section.id
    write_text(args.receipt, json.dumps(receipt, indent=2) + "\n")
    print(f"section {args.section}: {receipt['pixels_repaired']} px repaired in {receipt['n_tiles']} tiles -> {out}",
          file=sys.stderr)
    return 0


def _assemble(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from .blend.assemble import assemble_stack
    from .io.atomic import write_text

    planes: dict[int, str] = {}
    for path in args.receipts:
        receipt = json.loads(Path(path).read_text())
        if receipt.get("z") is None or Path(receipt["input"]).resolve() != Path(args.stack).resolve():
            raise ValueError(f"{path}: not a plane of {args.stack} (input {receipt['input']}, z {receipt.get('z')})")
        if receipt["z"] in planes:
            raise ValueError(f"{path}: plane z={receipt['z']} is repaired twice ({planes[receipt['z']]})")
        planes[int(receipt["z"])] = receipt["output"]
    out = Path(args.out)
    if out.exists() and args.replace:
        shutil.rmtree(out)
    done = assemble_stack(args.stack, planes, out, progress=not args.quiet)
    write_text(args.receipt, json.dumps(done, indent=2) + "\n")
    print(f"{len(planes)} repaired and {len(done['copied_planes'])} unchanged planes -> {out}", file=sys.stderr)
    return 0


def _qc(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .plan.section import Section
    from .qc.metrics import QCSettings
    from .qc.stage import qc_section

    summary = qc_section(Section.from_table(args.sections, args.section), Path(args.plan_dir), Path(args.receipt),
                         Path(args.out_dir), QCSettings.from_config(json.loads(args.qc)), progress=not args.quiet)
    print(f"section {args.section}: {summary['tiles_repaired']} tiles, {summary['flagged_tiles']} flagged "
          f"-> {Path(args.out_dir) / 'report.html'}", file=sys.stderr)
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .plan.section import Section
    from .provenance.manifest import build_manifest, write_manifest

    config = json.load(sys.stdin) if args.config == "-" else json.loads(Path(args.config).read_text())
    manifest = build_manifest(Section.from_table(args.sections, args.section), sections_table=Path(args.sections),
                              plan_dir=Path(args.plan_dir), batch_files=[Path(p) for p in args.batches],
                              receipt_path=Path(args.receipt), qc_summary_path=Path(args.qc), config=config,
                              progress=not args.quiet)
    write_manifest(manifest, Path(args.out))
    print(f"section {args.section}: manifest {args.out} (config {manifest['config']['sha256'][:12]}…, output "
          f"{manifest['output']['sha256_level0'][:12]}…)", file=sys.stderr)
    return 0


def _summary(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .qc.summary import write_stack_summary

    done = write_stack_summary(args.summaries, Path(args.out_dir), progress=not args.quiet)
    print(f"{done['sections']} sections, {done['flagged_sections']} with flagged tiles -> "
          f"{Path(args.out_dir) / 'index.html'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cytopaint", description="Repair artifacts in cell-body stained brain sections with a DDPM and RePaint.")
    parser.add_argument("--version", action="version", version=f"cytopaint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("model-info", help="validate a packaged model or classifier, verify its weights, print its card")
    p.add_argument("model", help="package directory (DDPM or area classifier), or 'demo' for the bundled DDPM")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="only validate the card")
    p.set_defaults(func=_model_info)

    p = sub.add_parser("train", help="train a DDPM on sections and write a packaged model (torchrun/srun for DDP)")
    p.add_argument("--sections", required=True, help="sections table (TSV: section, image, mask)")
    p.add_argument("--out", required=True, help="package directory to write")
    p.add_argument("--pixel-size", type=float, required=True, help="training pixel size in µm (a pyramid level)")
    p.add_argument("--arch", default="tiny-64", help="tiny-64, paper-1024 or a JSON U-Net config")
    p.add_argument("--diffusion-steps", type=int, default=256)
    p.add_argument("--steps", type=int, default=1000, help="optimisation steps")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="after warm-up: hold --lr, or anneal it on a half cosine to --lr-min at --steps")
    p.add_argument("--lr-min", type=float, default=0.0, help="the cosine schedule's last learning rate")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--run-dir", help="checkpoints and log.tsv (default: OUT.run)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint")
    p.add_argument("--init", help="start from this packaged model's weights (same architecture), e.g. demo")
    p.add_argument("--sample-count", type=int, default=16,
                   help="EMA samples drawn into RUN_DIR/samples.png at each checkpoint (0: none)")
    p.add_argument("--sample-steps", type=int, default=32, help="respaced sampling steps of those samples")
    p.add_argument("--name", help="model name in the card (default: the directory name)")
    p.add_argument("--weights-dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="dtype of the packaged weights (float16 halves the file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("train-classifier", help="train the cytoarchitecture classifier (FCD, agreement) on "
                       "synthetic sections and write a packaged classifier")
    p.add_argument("--sections", required=True, help="sections.tsv written by 'cytopaint synth' (truth/ beside it)")
    p.add_argument("--held-out", required=True, help="sections.tsv of held-out sections for the accuracy")
    p.add_argument("--out", required=True, help="package directory to write")
    p.add_argument("--name", help="classifier name in the card (default: the directory name)")
    p.add_argument("--pixel-size", type=float, required=True, help="classifier pixel size in µm")
    p.add_argument("--input-um", type=float, default=1024.0, help="patch extent in µm (square)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-note", action="append", default=[],
                   help="text recorded in the card's training.data, e.g. the synth command (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_classifier)

    p = sub.add_parser("plan", help="validate a section's inputs and write its tile plan (rule plan)")
    _section_args(p)
    p.add_argument("--model", default="demo", help="package directory or 'demo'")
    p.add_argument("--tiling", default="{}", help="JSON of the config's tiling block")
    p.add_argument("--normalization", help="JSON {input_range: [lo, hi]} for images the model card does not cover")
    p.add_argument("--out-dir", required=True, help="plan directory (tiles.tsv, plan.json)")
    p.add_argument("--review", help="review table (TSV: section, tile, decision, note): rejected tiles get new seeds")
    p.add_argument("--nfe", type=int, help="network evaluations per tile of the sampler: sizes the batches by run "
                   "time when the tiling block sets job_minutes")
    p.add_argument("--record-failure", action="store_true",
                   help="a section whose inputs are refused is recorded as failed in plan.json (exit 0) instead of "
                        "failing, so that the rest of the stack goes on (the workflow does this)")
    p.set_defaults(func=_plan)

    p = sub.add_parser("repaint-batch", help="repaint one batch of a section's plan (rule repaint)")
    _section_args(p)
    p.add_argument("--plan-dir", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--earlier", nargs="*", default=[], help="batch files of earlier waves this batch depends on")
    p.add_argument("--model", default="demo")
    p.add_argument("--repaint", default="{}", help="JSON of the config's repaint block")
    p.add_argument("--execution", default="{}", help="JSON of the config's execution block (channels_last, compile)")
    p.add_argument("--out", required=True, help="batch result file (.npz)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_repaint_batch)

    p = sub.add_parser("blend", help="write a section's repaired.ome.zarr from its batch results (rule blend)")
    _section_args(p)
    p.add_argument("--batches", nargs="*", default=[], help="batch result files (.npz)")
    p.add_argument("--out", required=True, help="repaired.ome.zarr to write")
    p.add_argument("--receipt", required=True, help="JSON receipt to write")
    p.add_argument("--replace", action="store_true", help="replace an existing output store")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_blend)

    p = sub.add_parser("plan-index", help="summarise the plans of all sections (checkpoint plan_index)")
    p.add_argument("summaries", nargs="*", help="plan.json files")
    p.add_argument("--out", required=True, help="index TSV (a row per section)")
    p.add_argument("--out-json", required=True, help="batches, dependencies and fingerprints of every section")
    p.add_argument("--beside", action="store_true",
                   help="also each section's own index beside its plan.json (for runs that target single sections)")
    p.set_defaults(func=_plan_index)

    p = sub.add_parser("synth", help="write synthetic cortex sections with artifacts and ground truth as OME-Zarr")
    p.add_argument("--out", required=True, help="output folder (sections, truth/, sections.tsv)")
    p.add_argument("--sections", nargs="+", default=["synth_0"], help="section ids")
    p.add_argument("--shape", nargs=2, type=int, default=[2048, 2048], metavar=("H", "W"), help="px")
    p.add_argument("--pixel-size", type=float, default=1.0, help="µm per px")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--damage", type=float, default=0.05, help="damaged fraction of the tissue")
    p.add_argument("--chunks", type=int, default=512)
    p.add_argument("--ngff", default="0.5", choices=["0.4", "0.5"])
    p.add_argument("--workers", type=int, default=1, help="sections rendered at once (processes)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_synth)

    p = sub.add_parser("evaluate", help="the paper's validation protocol on held-out sections, with baselines")
    _evaluation_args(p, "output folder (patches.tsv, summary.tsv, fcd.tsv, figures, summary.md)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("pareto", help="sampler settings evaluated on the same patches, masks and seeds; their "
                       "NFE vs fidelity table, plot and Pareto front")
    _evaluation_args(p, "output folder (one evaluation per setting, pareto.tsv/.json/.md/.png)")
    p.add_argument("--sampler", action="append", required=True, metavar="NAME=STEPS:J:R[,KEY=VALUE]",
                   help="a sampler setting, repeatable; the first is the reference, e.g. reference=256:1:5 "
                        "fast=25:5:2,method=ddnm,resample_start=0.5")
    p.set_defaults(func=_pareto)

    p = sub.add_parser("bench", help="seconds per tile of sampler settings side by side (NFE, ms per NFE per tile, "
                       "TFLOP/s, memory)")
    p.add_argument("network", nargs="?", default="paper-1024",
                   help="paper-1024 or tiny-64 (random weights), a JSON U-Net config, or a packaged model ('demo')")
    p.add_argument("--sampler", action="append", default=[], metavar="NAME=STEPS:J:R[,KEY=VALUE]",
                   help="a sampler setting, repeatable; the first is the reference (default: the paper's 256 steps, "
                        "each repeated 5 times = 256:1:5, then 50:5:2); STEPS 'all' = every trained step; KEY is "
                        "method (repaint, ddnm, diffpir), resample_start or zeta")
    p.add_argument("--batch", type=int, default=4, help="tiles per sampler call")
    p.add_argument("--shape", action="append", default=[], metavar="HxW",
                   help="tile shape to time, repeatable (default: the network's tile); the planner's small and "
                        "oblong windows, e.g. 256x256 or 256x1024, for benchmarks/project_bigbrain.py")
    p.add_argument("--execution", action="append", default=[], metavar="SPEC",
                   help="how the network runs, repeatable, side by side (default: eager): eager, channels-last, "
                        "compile[=MODE] (MODE default, reduce-overhead or max-autotune), or parts joined by '+', "
                        "e.g. channels-last+compile")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    p.add_argument("--timed-nfe", type=int, help="time only this many network evaluations per setting and "
                   "extrapolate (a full paper-setting run on 1024 px tiles takes minutes)")
    p.add_argument("--out", help="folder for bench.json and bench.tsv")
    p.set_defaults(func=_bench)

    p = sub.add_parser("qc", help="measure a repaired section's tiles; write metrics.tsv and report.html (rule qc)")
    _section_args(p)
    p.add_argument("--plan-dir", required=True)
    p.add_argument("--receipt", required=True, help="blend receipt (blend.json)")
    p.add_argument("--qc", default="{}", help="JSON of the config's qc block (thresholds, ring)")
    p.add_argument("--out-dir", required=True, help="folder for metrics.tsv, summary.json, report.html")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_qc)

    p = sub.add_parser("manifest", help="write a section's provenance manifest.json (rule manifest)")
    _section_args(p)
    p.add_argument("--plan-dir", required=True)
    p.add_argument("--batches", nargs="*", default=[], help="batch result files (.npz)")
    p.add_argument("--receipt", required=True, help="blend receipt (blend.json)")
    p.add_argument("--qc", required=True, help="the section's qc/summary.json")
    p.add_argument("--config", required=True, help="JSON file of the effective workflow config ('-': stdin)")
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_manifest)

    p = sub.add_parser("assemble", help="one repaired 3-D stack from the repaired planes of a stack (rule "
                       "assemble_stack)")
    p.add_argument("--stack", required=True, help="the input 3-D OME-Zarr stack")
    p.add_argument("--receipts", nargs="*", default=[], help="blend receipts (blend.json) of the repaired planes")
    p.add_argument("--out", required=True, help="the repaired stack to write")
    p.add_argument("--receipt", required=True, help="JSON receipt to write")
    p.add_argument("--replace", action="store_true", help="remove an existing output first (the workflow does)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_assemble)

    p = sub.add_parser("summary", help="stack summary: results/qc/index.html and summary.tsv (rule qc_summary)")
    p.add_argument("summaries", nargs="*", help="the sections' qc/summary.json, in stack order")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_summary)
    return parser


def _section_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sections", required=True, help="sections table (TSV)")
    p.add_argument("--section", required=True, help="section id")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as e:
        section = getattr(args, "section", None)
        print(f"cytopaint {args.command}{f' (section {section})' if section else ''}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
