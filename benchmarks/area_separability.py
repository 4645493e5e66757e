"""Can the synthetic areas be told apart at 1 mm² at all? The ground truth's answer beside the classifier's.

For the classifier's held-out patches (its own qualifying rule and stride), an MLP on ground-truth features
(layer shares, neuron density and size per layer, glia, Betz cells; see ``cytopaint.models.separability``)
trained on other sections' patches is scored (per patch in ``patches.tsv``) beside the bundled classifier, overall and by the patches'
share of grey matter. Sections come from ``cytopaint synth`` (``truth/`` beside the table):

    cytopaint synth --out train16 --sections $(printf 'cls300_%02d ' $(seq 0 15)) --shape 2048 4096 \\
        --pixel-size 2 --seed 300 --damage 0
    cytopaint synth --out heldout --sections $(printf 'cls301_%02d ' $(seq 0 7)) --shape 2048 4096 \\
        --pixel-size 2 --seed 301 --damage 0
    python benchmarks/area_separability.py --train train16/sections.tsv --held-out heldout/sections.tsv --out sep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from cytopaint.models.classifier import load_classifier
from cytopaint.models.classifier_training import (CLASSES, confusion_matrix, load_labelled, predict_patches,
                                                 truth_stores)
from cytopaint.models.separability import (FEATURES, TruthPatches, accuracy_by_cortex_share, fit_oracle, oracle_predict,
                                           truth_patches)
from cytopaint.runtime import code_version_string


def gather(stores: list[tuple[str, Path]], input_um: float, stride_um: float) -> list[TruthPatches]:
    return [truth_patches(s, store, store.parent / f"{s}.cells.tsv", input_um, stride_um) for s, store in stores]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="sections table of the oracle's training sections")
    ap.add_argument("--held-out", required=True, help="sections table of the held-out sections")
    ap.add_argument("--classifier", default="demo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--oracle-steps", type=int, default=3000, help="full-batch Adam steps of the oracle MLP")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    clf = load_classifier(args.classifier)
    input_um = clf.input_um
    held_stores = truth_stores(args.held_out)
    train = gather(truth_stores(args.train), input_um, input_um / 8)
    held = gather(held_stores, input_um, input_um / 2)
    x = np.concatenate([t.features for t in train])
    y = np.concatenate([t.labels for t in train])
    net = fit_oracle(x, y, len(CLASSES), seed=args.seed, steps=args.oracle_steps)
    truth = np.concatenate([h.labels for h in held])
    oracle = np.concatenate([oracle_predict(net, h.features) for h in held])
    cnn = []
    for h, (s, store) in zip(held, held_stores):
        sec = load_labelled(s, store, clf.pixel_size_um, clf.input_px, clf.input_px // 2)
        if not np.array_equal(sec.origins, h.origins):
            raise RuntimeError(f"{s}: the classifier's held-out patches differ from the oracle's")
        cnn.append(predict_patches(clf.network, sec))
    cnn = np.concatenate(cnn)
    cortex = np.concatenate([h.cortex_share for h in held])
    table = accuracy_by_cortex_share(truth, {"oracle": oracle, "classifier": cnn}, cortex)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "separability.tsv", sep="\t", index=False)
    patches = pd.DataFrame(np.concatenate([h.features for h in held]), columns=list(FEATURES))
    patches.insert(0, "section", np.concatenate([[h.section] * len(h.labels) for h in held]))
    patches.insert(1, "y", np.concatenate([h.origins[:, 0] for h in held]))
    patches.insert(2, "x", np.concatenate([h.origins[:, 1] for h in held]))
    for i, (name, values) in enumerate((("area", truth), ("oracle", oracle), ("classifier", cnn))):
        patches.insert(3 + i, name, [CLASSES[v] for v in values])
    patches.to_csv(args.out / "patches.tsv", sep="\t", index=False)
    record = {
        "classes": list(CLASSES), "features": list(FEATURES), "classifier": str(clf.path),
        "train_patches": int(len(y)), "held_out_patches": int(len(truth)), "seed": args.seed,
        "oracle_steps": args.oracle_steps,
        "train": args.train, "held_out": args.held_out, "code_version": code_version_string(),
        "confusion_oracle": confusion_matrix(truth, oracle, len(CLASSES)).tolist(),
        "confusion_classifier": confusion_matrix(truth, cnn, len(CLASSES)).tolist(),
        "by_cortex_share": table.to_dict(orient="records"),
    }
    (args.out / "separability.json").write_text(json.dumps(record, indent=1))
    print(f"{len(y)} training patches, {len(truth)} held-out patches ({', '.join(CLASSES)})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    for who in ("oracle", "classifier"):
        print(f"confusion, {who} (rows true, columns predicted):")
        for name, row in zip(CLASSES, record[f"confusion_{who}"]):
            print(f"  {name:>9} {row}")


if __name__ == "__main__":
    main()
