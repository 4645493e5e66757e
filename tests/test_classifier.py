"""Cytoarchitecture classifier: package round trip and integrity, predict, pixel-size handling, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cytopaint import cli
from cytopaint.models.classifier import (AreaClassifier, ClassifierConfig, PackagedClassifier, load_classifier,
                                  save_classifier, to_input)
from cytopaint.models.classifier_training import CLASSES, BalancedSampler, label_patches, load_labelled, train_network
from cytopaint.models.package import ModelPackageError
from cytopaint.synth.stack import write_synthetic_stack

TINY = ClassifierConfig(input_px=16, widths=(4, 8), feature_dim=8, n_classes=4)
TRAINING = {"command": "test", "data": ["synthetic"], "seed": 0, "steps": 0, "code_version": "test"}
EVALUATION = {"accuracy": 0.5, "n_patches": 4, "confusion": [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    save_classifier(tmp_path / "cls", AreaClassifier(TINY), name="tiny", classes=list(CLASSES), pixel_size_um=4.0,
                    training=TRAINING, evaluation=EVALUATION)
    return tmp_path / "cls"


@pytest.fixture
def classifier(package: Path) -> PackagedClassifier:
    return load_classifier(package)


def patches(n: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side), dtype=np.uint8)


def test_round_trip(package: Path, classifier: PackagedClassifier) -> None:
    torch.manual_seed(0)
    original = AreaClassifier(TINY)
    for (k, a), (k2, b) in zip(original.state_dict().items(), classifier.network.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    card = classifier.card
    assert card["format"] == "cytopaint-classifier" and card["classes"] == list(CLASSES)
    assert card["input_px"] == 16 and card["feature_dim"] == 8 and classifier.pixel_size_um == 4.0
    assert card["architecture"]["config"]["widths"] == [4, 8] and card["evaluation"] == EVALUATION
    assert not classifier.network.training


def test_changed_weight_byte_is_refused(package: Path) -> None:
    weights = package / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256"):
        load_classifier(package)


def test_card_inconsistent_with_architecture_is_refused(package: Path) -> None:
    card_path = package / "model.json"
    card = json.loads(card_path.read_text())
    card["feature_dim"] = 9
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelPackageError, match="feature_dim"):
        load_classifier(package)


def test_predict_shapes_and_determinism(classifier: PackagedClassifier) -> None:
    x = patches(5, 16)
    feats, probs = classifier.predict(x, 4.0)
    assert feats.shape == (5, 8) and probs.shape == (5, 4)
    assert feats.dtype == probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
    feats2, probs2 = classifier.predict(x, 4.0, batch_size=2)
    np.testing.assert_allclose(feats2, feats, atol=1e-6)
    np.testing.assert_allclose(probs2, probs, atol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(classifier.predict(x, 4.0), (feats, probs)))


def test_pooling_and_centre_crop(classifier: PackagedClassifier) -> None:
    x4 = patches(3, 16, seed=1)
    reference = classifier.predict(x4, 4.0)
    x2 = np.repeat(np.repeat(x4, 2, axis=1), 2, axis=2)  # the same patch at 2 µm: 2x2 blocks pool back exactly
    for got, want in zip(classifier.predict(x2, 2.0), reference):
        np.testing.assert_array_equal(got, want)
    framed = np.pad(x2, ((0, 0), (6, 6), (4, 4)), constant_values=255)  # centre crop removes the frame
    for got, want in zip(classifier.predict(framed, 2.0), reference):
        np.testing.assert_array_equal(got, want)


def test_pixel_size_and_patch_size_errors(classifier: PackagedClassifier) -> None:
    with pytest.raises(ValueError, match=r"3 µm/px.*4 µm/px"):
        classifier.predict(patches(1, 32), 3.0)
    with pytest.raises(ValueError, match=r"8 µm/px.*4 µm/px"):
        classifier.predict(patches(1, 32), 8.0)
    with pytest.raises(ValueError, match=r"48 x 48 µm.*64 x 64 µm"):
        classifier.predict(patches(1, 12), 4.0)
    with pytest.raises(ValueError, match="uint8"):
        classifier.predict(patches(1, 16).astype(np.float32), 4.0)


def test_label_patches() -> None:
    area = np.zeros((8, 16), np.uint8)
    area[:, :8], area[:, 8:] = 1, 3  # frontal | v1
    area[0, 0] = 0  # a background pixel: 63/64 tissue still qualifies
    origins, labels = label_patches(area, side=8, stride=4)
    assert origins.tolist() == [[0, 0], [0, 8]] and labels.tolist() == [0, 2]  # the mixed window at x=4 fails


@pytest.fixture(scope="module")
def tiny_sections(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth")
    kw = {"shape": (256, 256), "pixel_size_um": 8.0, "damaged_fraction": 0.0, "chunks": 128, "progress": False}
    return (write_synthetic_stack(root / "train", ["a", "b"], seed=4, **kw),  # frontal, motor and v1
            write_synthetic_stack(root / "held", ["c"], seed=8, **kw))


def test_training_reduces_the_loss_reproducibly(tiny_sections: tuple[Path, Path]) -> None:
    train_tsv, _ = tiny_sections
    config = ClassifierConfig(input_px=32, widths=(8, 16, 32), feature_dim=8, n_classes=4)
    sections = [load_labelled(s, train_tsv.parent / "truth" / f"{s}.ome.zarr", 16.0, 32, 4) for s in "ab"]
    sampler = BalancedSampler(sections, config)
    assert sampler.present == [0, 1, 2]
    _, losses = train_network(sampler, config, steps=40, batch_size=8, lr=1e-2, seed=1)
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    short = [train_network(sampler, config, steps=5, batch_size=4, lr=1e-2, seed=3)[1] for _ in range(2)]
    assert short[0] == short[1]


def test_sampled_patches_equal_predict_inputs(tiny_sections: tuple[Path, Path]) -> None:
    train_tsv, _ = tiny_sections
    config = ClassifierConfig(input_px=32, widths=(4,), feature_dim=8, n_classes=4)
    sec = load_labelled("a", train_tsv.parent / "truth" / "a.ome.zarr", 16.0, 32, 4)
    sampler = BalancedSampler([sec], config)
    (y, x), (py, px) = sec.origins[7], sampler.origins[0][7]
    want = to_input(sec.image[None, y:y + 64, x:x + 64], 2, 32)[0, 0].numpy()
    np.testing.assert_array_equal(sampler.pooled[0][py:py + 32, px:px + 32], want)


def test_cli_writes_a_loadable_package(tiny_sections: tuple[Path, Path], tmp_path: Path) -> None:
    train_tsv, held_tsv = tiny_sections
    out = tmp_path / "pkg"
    rc = cli.main(["train-classifier", "--sections", str(train_tsv), "--held-out", str(held_tsv), "--out", str(out),
                   "--pixel-size", "16", "--input-um", "512", "--steps", "3", "--batch-size", "4", "--seed", "2",
                   "--data-note", "cytopaint synth ...", "--quiet"])
    assert rc == 0
    pkg = load_classifier(out)
    card = pkg.card
    assert card["name"] == "pkg" and card["input_px"] == 32 and card["training"]["steps"] == 3
    assert card["training"]["data"][0] == "cytopaint synth ..." and card["evaluation"]["n_patches"] > 0
    assert pkg.predict(patches(2, 64), 8.0)[1].shape == (2, 4)


def test_cli_refuses_held_out_training_sections(tiny_sections: tuple[Path, Path], tmp_path: Path) -> None:
    train_tsv, _ = tiny_sections
    rc = cli.main(["train-classifier", "--sections", str(train_tsv), "--held-out", str(train_tsv),
                   "--out", str(tmp_path / "pkg"), "--pixel-size", "16", "--input-um", "512", "--quiet"])
    assert rc == 2 and not (tmp_path / "pkg").exists()


def test_bundled_demo_classifier() -> None:
    demo = load_classifier("demo")
    assert demo.classes == list(CLASSES) and demo.pixel_size_um == 4.0 and demo.input_um == 1024.0
    feats, probs = demo.predict(patches(1, 512), 2.0)
    assert feats.shape == (1, demo.card["feature_dim"]) and probs.shape == (1, len(CLASSES))
