"""Cytoarchitecture classifier: a small CNN, its package and patch prediction.

The classifier assigns a cortical area type to a patch; its penultimate features serve as the feature
space of the Fréchet cytoarchitecture distance (FCD, paper section 3.2). A package is laid out like the
DDPM's (``modelpkg``): ``model.json`` (schema: cytopaint/schemas/classifier_card.schema.json) and
``model.safetensors`` whose sha256 the card records. ``"demo"`` names the bundled package.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .package import (count_parameters, CARD_NAME, ModelPackageError, read_card_json, sha256_file, verified_weights,
                       write_weights)

FORMAT = "cytopaint-classifier"
FORMAT_VERSION = 1
DEFAULT_WIDTHS = (8, 16, 32, 64, 128)


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Architecture: square input side (px at the classifier's pixel size), stage widths, feature and class counts."""

    input_px: int
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    feature_dim: int = 64
    n_classes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 1 or self.feature_dim < 1 or self.n_classes < 2:
            raise ValueError(f"invalid classifier config {self}: need widths >= 1, feature_dim >= 1, n_classes >= 2")
        if self.input_px < 2 ** len(self.widths):
            raise ValueError(f"input_px {self.input_px} is smaller than the {2 ** len(self.widths)} px that "
                             f"{len(self.widths)} stride-2 stages need")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        return cls(**d)


def _conv_norm_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.GroupNorm(math.gcd(c_out, 8), c_out),
            nn.ReLU(inplace=True)]


class AreaClassifier(nn.Module):
    """Stages of (stride-2 conv, conv), each conv-GroupNorm-ReLU; global average pooling; features; linear head.

    Input: (N, 1, H, W) float in [-1, 1] (uint8 / 127.5 - 1).
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c = 1
        for w in config.widths:
            layers += _conv_norm_relu(c, w, 2) + _conv_norm_relu(w, w, 1)
            c = w
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(c, config.feature_dim)
        self.head = nn.Linear(config.feature_dim, config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim) penultimate features (before the head's ReLU): the FCD feature space."""
        return self.embed(self.body(x).mean(dim=(2, 3)))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, n_classes) logits from ``features``."""
        return self.head(F.relu(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_classes) logits."""
        return self.logits(self.features(x))


def pool_factor(patch_um: float, classifier_um: float) -> int:
    """Integer mean-pooling factor from patches at ``patch_um`` to the classifier's ``classifier_um`` (within 1%)."""
    ratio = classifier_um / patch_um
    factor = round(ratio)
    if factor < 1 or abs(ratio - factor) > 0.01 * ratio:
        raise ValueError(f"patches at {patch_um:g} µm/px cannot be mean-pooled to the classifier's "
                         f"{classifier_um:g} µm/px: the ratio {ratio:.4g} is not an integer >= 1")
    return factor


def pool(image: np.ndarray, factor: int) -> np.ndarray:
    """uint8 (..., H, W), H and W multiples of ``factor`` -> float32 in [-1, 1], mean-pooled by ``factor``."""
    *lead, h, w = image.shape
    blocks = image.astype(np.float32).reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1)) / np.float32(127.5) - 1


def to_input(patches: np.ndarray, factor: int, input_px: int) -> torch.Tensor:
    """uint8 (N, H, W) -> (N, 1, input_px, input_px) float32 in [-1, 1]: centre crop, then mean-pool by ``factor``."""
    side = input_px * factor
    y0, x0 = (patches.shape[1] - side) // 2, (patches.shape[2] - side) // 2
    return torch.from_numpy(pool(patches[:, y0:y0 + side, x0:x0 + side], factor)).unsqueeze(1)


def classify(network: AreaClassifier, patches: np.ndarray, factor: int,
             batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, feature_dim) and class probabilities (N, n_classes), float64, of uint8 patches."""
    cfg = network.config
    device = next(network.parameters()).device
    feats = np.zeros((len(patches), cfg.feature_dim))
    probs = np.zeros((len(patches), cfg.n_classes))
    with torch.inference_mode():
        for i in range(0, len(patches), batch_size):
            f = network.features(to_input(patches[i:i + batch_size], factor, cfg.input_px).to(device))
            logits = network.logits(f)
            feats[i:i + len(f)] = f.double().cpu().numpy()
            probs[i:i + len(f)] = torch.softmax(logits.double(), dim=1).cpu().numpy()
    return feats, probs


@dataclass
class PackagedClassifier:
    """A loaded classifier: card and network (eval mode)."""

    path: Path
    card: dict[str, Any]
    network: AreaClassifier = field(repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def pixel_size_um(self) -> float:
        return float(self.card["pixel_size_um"])

    @property
    def input_px(self) -> int:
        return int(self.card["input_px"])

    @property
    def input_um(self) -> float:
        return self.input_px * self.pixel_size_um

    def predict(self, patches: np.ndarray, pixel_size_um: float,
                batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, feature_dim) and class probabilities (N, n_classes), float64, of uint8 (N, H, W) patches.

        Patches are centre-cropped to the classifier's input extent and mean-pooled to its pixel size (an
        integer factor).
        """
        patches = np.asarray(patches)
        if patches.ndim != 3 or patches.dtype != np.uint8:
            raise ValueError(f"patches must be uint8 (N, H, W), got {patches.dtype} {patches.shape}")
        factor = pool_factor(pixel_size_um, self.pixel_size_um)
        h, w = patches.shape[1:]
        if min(h, w) < self.input_px * factor:
            side = f"{self.input_um:g} x {self.input_um:g} µm"
            raise ValueError(f"patches of {h} x {w} px at {pixel_size_um:g} µm/px cover {h * pixel_size_um:g} x "
                             f"{w * pixel_size_um:g} µm; the classifier needs {side}")
        return classify(self.network, patches, factor, batch_size)


def card_schema() -> dict[str, Any]:
    return json.loads(files("cytopaint").joinpath("schemas/classifier_card.schema.json").read_text())


def demo_classifier_path() -> Path:
    """The directory of the bundled demo classifier."""
    return Path(str(files("cytopaint").joinpath("models/classifier-demo")))


def validate_card(card: dict[str, Any], where: str = "classifier card") -> None:
    """Validate a card against the schema and its architecture; errors name the field."""
    try:
        jsonschema.validate(card, card_schema())
    except jsonschema.ValidationError as e:
        where_in = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ModelPackageError(f"{where}: invalid at {where_in}: {e.message}") from None
    try:
        cfg = ClassifierConfig.from_dict(card["architecture"]["config"])
    except (TypeError, ValueError) as e:
        raise ModelPackageError(f"{where}: {e}") from None
    n = len(card["classes"])
    checks = {"input_px": (card["input_px"], cfg.input_px), "feature_dim": (card["feature_dim"], cfg.feature_dim),
              "number of classes": (n, cfg.n_classes)}
    for what, (given, arch) in checks.items():
        if given != arch:
            raise ModelPackageError(f"{where}: {what} {given} differs from the architecture's {arch}")
    confusion = np.asarray(card["evaluation"]["confusion"])
    if confusion.shape != (n, n) or confusion.sum() != card["evaluation"]["n_patches"]:
        raise ModelPackageError(f"{where}: evaluation confusion must be {n} x {n} and sum to n_patches")


def load_classifier(path_or_name: str | os.PathLike[str], device: torch.device | str = "cpu",
                    verify: bool = True) -> PackagedClassifier:
    """Load a package (``"demo"``: the bundled one): validate the card, verify the weights' sha256, eval mode."""
    pkg = demo_classifier_path() if str(path_or_name) == "demo" else Path(path_or_name)
    card = read_card_json(pkg)
    validate_card(card, str(pkg / CARD_NAME))
    weights = verified_weights(pkg, card, verify)
    network = AreaClassifier(ClassifierConfig.from_dict(card["architecture"]["config"]))
    try:
        network.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as e:
        raise ModelPackageError(f"classifier package {pkg}: weights do not match the architecture: {e}") from None
    return PackagedClassifier(path=pkg, card=card, network=network.to(device).eval())


def save_classifier(path: str | os.PathLike[str], network: AreaClassifier, *, name: str, classes: list[str],
                    pixel_size_um: float, training: dict[str, Any], evaluation: dict[str, Any],
                    description: str = "", weights_dtype: str = "float32") -> dict[str, Any]:
    """Write a package directory (weights first, then the card) and return the card."""
    pkg = Path(path)
    pkg.mkdir(parents=True, exist_ok=True)
    weights = write_weights(pkg, network, weights_dtype, FORMAT)
    cfg = network.config
    card: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "architecture": {"type": "area-cnn", "config": cfg.to_dict(), "parameters": count_parameters(network)},
        "classes": list(classes),
        "pixel_size_um": float(pixel_size_um),
        "input_px": cfg.input_px,
        "feature_dim": cfg.feature_dim,
        "training": training,
        "evaluation": evaluation,
        "weights": {"file": weights.name, "sha256": sha256_file(weights), "dtype": weights_dtype},
    }
    validate_card(card, f"card for {pkg}")
    (pkg / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
    return card
