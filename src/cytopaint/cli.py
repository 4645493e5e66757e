"""Command-line entry point: ``cytopaint <command>``; ``cytopaint <command> --help`` for each."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from . import __version__


def _model_info(args: argparse.Namespace) -> int:
    from . import modelpkg

    pkg = modelpkg.load(args.model) if args.verify else None
    card = pkg.card if pkg else modelpkg.read_card(args.model)
    json.dump(card, sys.stdout, indent=2)
    print()
    if pkg:
        print(f"verified: {pkg.path} (sha256 {pkg.weights_sha256[:12]}…)", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .diffusion.gaussian import DiffusionConfig
    from .train import TrainSettings, architecture, train_package

    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                             ema_decay=args.ema_decay, grad_clip=args.grad_clip, precision=args.precision,
                             seed=args.seed, checkpoint_every=args.checkpoint_every)
    card = train_package(args.sections, Path(args.out), pixel_size_um=args.pixel_size, arch=architecture(args.arch),
                         settings=settings, diffusion=DiffusionConfig(steps=args.diffusion_steps),
                         run_dir=Path(args.run_dir) if args.run_dir else None, resume=args.resume, name=args.name,
                         command=" ".join(shlex.quote(a) for a in ["cytopaint", *sys.argv[1:]]),
                         progress=not args.quiet)
    if card:
        print(f"wrote {args.out} (sha256 {card['weights']['sha256'][:12]}…)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cytopaint", description="Repair artifacts in cell-body stained brain sections with a DDPM and RePaint.")
    parser.add_argument("--version", action="version", version=f"cytopaint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("model-info", help="validate a packaged model, verify its weights and print its card")
    p.add_argument("model", help="package directory, or 'demo' for the bundled model")
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
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--run-dir", help="checkpoints and log.tsv (default: OUT.run)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint")
    p.add_argument("--name", help="model name in the card (default: the directory name)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"cytopaint {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
