"""Ground-truth separability of the synthetic areas: the features, the oracle and the benchmark's run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cytopaint.models.separability import FEATURES, accuracy_by_cortex_share, fit_oracle, oracle_predict, patch_features
from cytopaint.synth.stack import write_synthetic_stack

REPO = Path(__file__).resolve().parents[1]


def col(name: str) -> int:
    return FEATURES.index(name)


def test_patch_features_count_and_measure_the_somata_of_each_layer_inside_the_patch() -> None:
    layer = np.full((8, 8), 7, np.uint8)
    layer[:4] = 3  # layer III above white matter
    cells = pd.DataFrame({"y": [1.0, 2.5, 5.0, 1.0], "x": [1.0, 3.0, 1.0, 6.0],
                          "kind": ["pyramidal", "granule", "glia", "glia"], "layer": [3, 3, 7, 3],
                          "area_um2": [100.0, 200.0, 30.0, 30.0]})
    f = patch_features(layer, cells, np.array([[0, 0], [4, 0], [2, 2]]), side=4, pixel_size_um=500.0)  # 4 mm²
    assert f.shape == (3, len(FEATURES))
    assert f[0, col("share_III")] == 1 and f[0, col("neurons_per_mm2_III")] == 2 / 4
    assert f[0, col("neuron_um2_III")] == 150 and f[0, col("granule_share")] == 0.5
    assert f[0, col("glia_per_mm2_cortex")] == 0 and f[0, col("share_WM")] == 0
    assert f[1, col("share_WM")] == 1 and f[1, col("glia_per_mm2_wm")] == 1 / 4
    assert f[1, col("neurons_per_mm2_III")] == 0 and f[1, col("neuron_um2_III")] == 0
    assert f[2, col("share_III")] == 0.5 and f[2, col("share_WM")] == 0.5
    assert f[2, col("neurons_per_mm2_III")] == 1 / 2 and f[2, col("neuron_um2_III")] == 200
    assert f[2, col("glia_per_mm2_cortex")] == 0  # the layer-III glia at x = 6 lies outside


def test_the_oracle_learns_a_separable_problem_and_accuracy_is_binned_by_grey_matter() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = np.stack([y + rng.normal(0, 0.1, 300), rng.normal(0, 1, 300)], 1)
    net = fit_oracle(x, y, 3, steps=300)
    assert (oracle_predict(net, x) == y).mean() > 0.98
    truth = np.array([0, 1, 1, 2])
    table = accuracy_by_cortex_share(truth, {"a": np.array([0, 1, 0, 0])}, np.array([0.1, 0.6, 0.8, 1.0]))
    assert table["patches"].tolist() == [4, 1, 0, 1, 2]
    assert table["a"].iat[0] == 0.5 and table["a"].iat[1] == 1 and np.isnan(table["a"].iat[2])
    assert table["a"].iat[4] == 0  # 1.0 falls in the last bin


def test_the_benchmark_scores_oracle_and_classifier_on_the_same_held_out_patches(tmp_path: Path) -> None:
    for name, seed, ids in (("train", 300, ["a0", "a1"]), ("held", 301, ["b0"])):
        write_synthetic_stack(tmp_path / name, ids, shape=(512, 1024), pixel_size_um=4.0, seed=seed, damaged_fraction=0.0,
                              progress=False)
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "area_separability.py"),
                          "--train", str(tmp_path / "train" / "sections.tsv"),
                          "--held-out", str(tmp_path / "held" / "sections.tsv"), "--out", str(tmp_path / "s"),
                          "--oracle-steps", "200"],
                         capture_output=True, text=True, check=True).stdout
    assert "oracle" in out and "classifier" in out
    record = json.loads((tmp_path / "s" / "separability.json").read_text())
    n = record["held_out_patches"]
    assert n > 0 and record["train_patches"] > n
    assert np.sum(record["confusion_oracle"]) == n == np.sum(record["confusion_classifier"])
    table = pd.read_csv(tmp_path / "s" / "separability.tsv", sep="\t")
    assert table["patches"].iat[0] == n == table["patches"].iloc[1:].sum()
    assert table[["oracle", "classifier"]].iloc[0].between(0, 1).all()
    patches = pd.read_csv(tmp_path / "s" / "patches.tsv", sep="\t")
    assert len(patches) == n and (patches["section"] == "b0").all()
    assert ((patches["oracle"] == patches["area"]).mean() == table["oracle"].iat[0])
