"""Command-line entry point: ``cytopaint <command>``; ``cytopaint <command> --help`` for each."""

from __future__ import annotations

import argparse
import json
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cytopaint", description="Repair artifacts in cell-body stained brain sections with a DDPM and RePaint.")
    parser.add_argument("--version", action="version", version=f"cytopaint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("model-info", help="validate a packaged model, verify its weights and print its card")
    p.add_argument("model", help="package directory, or 'demo' for the bundled model")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="only validate the card")
    p.set_defaults(func=_model_info)
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
