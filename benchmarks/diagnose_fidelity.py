"""Where the DDPM's repairs lose fidelity: the evaluation's patches under conditions that each remove one cause.

    python benchmarks/diagnose_fidelity.py --sections TABLE --out DIR [--config config/config.yaml]
        [--settings JSON] [--reference NAME=STEPS:J:R[,KEY=VALUE...]]... [--context-um R ...]

TABLE is a held-out sections table (as for `cytopaint evaluate`); --settings overrides config blocks
as `cytopaint evaluate --settings` does. Patches must be the model's tile size (for the demo model,
``{"evaluate": {"patch_um": 128}}``): the one-window conditions inpaint a whole patch in one sampler
call. Writes DIR/diagnosis.md (the conditions side by side, per coverage bin, each cause's share),
summary.tsv, bins.tsv, shares.tsv, patches.tsv, diagnosis.json and examples.png
(`cytopaint.evaluation.diagnosis`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cytopaint.evaluation.bench import parse_setting
from cytopaint.evaluation.diagnosis import diagnose
from cytopaint.evaluation.harness import settings_from_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config", action="append", default=None)
    parser.add_argument("--settings", default="{}", help="JSON overrides of config blocks")
    parser.add_argument("--reference", action="append", default=[], type=parse_setting,
                        help="another sampler for the one-window condition, e.g. reference=256:1:5")
    parser.add_argument("--context-um", nargs="+", type=float, default=[],
                        help="radii of one-window conditions that know only the pixels this close to the region")
    args = parser.parse_args()
    settings = settings_from_files(args.config or ["config/config.yaml"], sections=args.sections,
                                   overrides=json.loads(args.settings))
    diagnose(settings, dict(args.reference), args.out, context_um=args.context_um)
    print((args.out / "diagnosis.md").read_text())


if __name__ == "__main__":
    main()
