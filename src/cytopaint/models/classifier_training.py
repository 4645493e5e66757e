"""Training the cytoarchitecture classifier on synthetic sections with ground-truth area labels.

Patches come from the intact truth stores ``truth/<ID>.ome.zarr`` next to a sections table written by
``cytopaint synth``, read at level 0 (exact labels) and pooled like ``PackagedClassifier.predict`` pools.
A patch qualifies when >= 90% of its footprint is tissue (area label > 0) and one area covers >= 90% of
that tissue; that area is its label. Whole held-out sections give the accuracy recorded in the card.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..io import volume
from .classifier import (DEFAULT_WIDTHS, AreaClassifier, ClassifierConfig, classify, pool, pool_factor,
                         save_classifier)
from ..io.sections import check_store, read_sections
from ..runtime import code_version_string
from ..synth.areas import AREA_TYPES

CLASSES = tuple(a.name for a in sorted(AREA_TYPES.values(), key=lambda a: a.code))  # logit i: area code i + 1
MIN_TISSUE = 0.9
MIN_PURITY = 0.9


@dataclass
class LabelledSection:
    """A section's level-0 image and the qualifying patches (top-left corners in px) with their class."""

    name: str
    image: np.ndarray  # uint8 (Y, X)
    factor: int  # mean-pooling factor to the classifier's pixel size
    origins: np.ndarray  # (n, 2)
    labels: np.ndarray  # (n,) class index


def truth_stores(sections_tsv: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """(section, truth store) for each row of a sections table; stores are ``truth/<ID>.ome.zarr`` beside it."""
    base = Path(sections_tsv).resolve().parent
    table = read_sections(sections_tsv, base=base)
    stores = [(s, base / "truth" / f"{s}.ome.zarr") for s in table.index]
    for _, store in stores:
        check_store(os.fspath(store), "truth")
    return stores


def _box_sums(a: np.ndarray, side: int, stride: int) -> np.ndarray:
    """Sums of ``a`` over side x side windows whose top-left corners lie on a stride grid."""
    c = np.pad(np.cumsum(np.cumsum(a, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    return (c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side])[::stride, ::stride]


def label_patches(area: np.ndarray, side: int, stride: int, n_classes: int = len(CLASSES),
                  min_tissue: float = MIN_TISSUE, min_purity: float = MIN_PURITY) -> tuple[np.ndarray, np.ndarray]:
    """Origins (n, 2) and class indices (n,) of the side x side windows of an area-code map that qualify."""
    if min(area.shape) < side:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    tissue = _box_sums(area > 0, side, stride)
    counts = np.stack([_box_sums(area == c + 1, side, stride) for c in range(n_classes)])
    best, top = counts.argmax(0), counts.max(0)
    ys, xs = np.nonzero((tissue >= min_tissue * side * side) & (top >= min_purity * tissue))
    return np.stack([ys, xs], 1).astype(np.int64) * stride, best[ys, xs].astype(np.int64)


def load_labelled(name: str, store: Path, pixel_size_um: float, input_px: int, stride_px: int) -> LabelledSection:
    """Read a truth store and find its qualifying patches on a grid of ``stride_px`` classifier pixels."""
    info = volume.read_info(store)
    py, px = info.pixel_size_um
    if not math.isclose(py, px, rel_tol=0.01) or info.dtype != np.uint8:
        raise ValueError(f"{store}: the classifier trains on uint8 images with square pixels, this one is "
                         f"{info.dtype} at {py:g} x {px:g} µm")
    factor = pool_factor(px, pixel_size_um)
    image = np.asarray(volume.open_level(store, 0))
    area = np.asarray(volume.open_level(f"{store}#labels/area", 0))
    origins, labels = label_patches(area, input_px * factor, stride_px * factor)
    return LabelledSection(name, image, factor, origins, labels)


def _trim(image: np.ndarray, factor: int) -> np.ndarray:
    return image[:image.shape[0] // factor * factor, :image.shape[1] // factor * factor]


class BalancedSampler:
    """Draws patches class by class uniformly (over the classes present), with random dihedral augmentation.

    Sections are pooled to the classifier's pixel size once; patch origins are multiples of the pooling
    factor, so a patch equals ``to_input`` of its level-0 crop.
    """

    def __init__(self, sections: Sequence[LabelledSection], config: ClassifierConfig):
        self.config = config
        self.pooled = [pool(_trim(s.image, s.factor), s.factor) for s in sections]
        self.origins = [s.origins // s.factor for s in sections]
        pairs = [np.stack([np.full(len(s.labels), k), np.arange(len(s.labels)), s.labels], 1)
                 for k, s in enumerate(sections)]
        table = np.concatenate(pairs) if pairs else np.zeros((0, 3), np.int64)
        self.by_class = [table[table[:, 2] == c, :2] for c in range(config.n_classes)]
        self.present = [c for c, t in enumerate(self.by_class) if len(t)]
        if not self.present:
            raise ValueError("no training patches qualify (>= 90% tissue, >= 90% of it one area): "
                             "sections too small or all background")

    def counts(self) -> dict[str, int]:
        return {CLASSES[c]: len(t) for c, t in enumerate(self.by_class)}

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, 1, input_px, input_px) inputs and (batch,) class indices."""
        side = self.config.input_px
        labels = rng.choice(self.present, size=batch)
        x = np.empty((batch, 1, side, side), np.float32)
        for b, c in enumerate(labels):
            k, i = self.by_class[c][rng.integers(len(self.by_class[c]))]
            y0, x0 = self.origins[k][i]
            p = np.rot90(self.pooled[k][y0:y0 + side, x0:x0 + side], k=int(rng.integers(4)))
            x[b, 0] = p[:, ::-1] if rng.integers(2) else p
        return torch.from_numpy(x), torch.as_tensor(labels, dtype=torch.int64)


def train_network(sampler: BalancedSampler, config: ClassifierConfig, *, steps: int, batch_size: int, lr: float,
                  seed: int, weight_decay: float = 0.01, progress: bool = False) -> tuple[AreaClassifier, list[float]]:
    """AdamW with a linear warm-up (5% of the steps) and cosine decay; returns the network and the loss per step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = AreaClassifier(config)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    network.train()
    losses = []
    for _ in tqdm(range(steps), desc="train-classifier", disable=not progress):
        x, y = sampler.sample(batch_size, rng)
        loss = F.cross_entropy(network(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return network.eval(), losses


def predict_patches(network: AreaClassifier, sec: LabelledSection, batch_size: int = 32) -> np.ndarray:
    """Predicted class index of each of the section's patches."""
    side = network.config.input_px * sec.factor
    predicted = np.zeros(len(sec.labels), np.int64)
    for i in range(0, len(sec.labels), batch_size):
        crops = np.stack([sec.image[y:y + side, x:x + side] for y, x in sec.origins[i:i + batch_size]])
        _, probs = classify(network, crops, sec.factor, batch_size)
        predicted[i:i + len(crops)] = probs.argmax(1)
    return predicted


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs: rows true, columns predicted."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (truth, predicted), 1)
    return m


def evaluate(network: AreaClassifier, sections: Sequence[LabelledSection], batch_size: int = 32) -> dict[str, Any]:
    """Accuracy, patch count and confusion matrix (rows true, columns predicted) over the sections' patches."""
    n = network.config.n_classes
    confusion = sum((confusion_matrix(sec.labels, predict_patches(network, sec, batch_size), n) for sec in sections),
                    np.zeros((n, n), np.int64))
    total = int(confusion.sum())
    if not total:
        raise ValueError("no held-out patches qualify (>= 90% tissue, >= 90% of it one area)")
    return {"accuracy": float(np.trace(confusion) / total), "n_patches": total, "confusion": confusion.tolist()}


def train_classifier(sections_tsv: str | os.PathLike[str], held_out_tsv: str | os.PathLike[str], out: Path, *,
                     name: str, pixel_size_um: float, input_um: float = 1024.0, steps: int = 600,
                     batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
                     widths: tuple[int, ...] = DEFAULT_WIDTHS,
                     command: str = "", data_notes: Sequence[str] = (), description: str = "",
                     progress: bool = True) -> dict[str, Any]:
    """Train on the truth stores of ``sections_tsv``, evaluate on those of ``held_out_tsv``, write a package."""
    input_px = round(input_um / pixel_size_um)
    if abs(input_px * pixel_size_um - input_um) > 0.01 * input_um:
        raise ValueError(f"patch extent {input_um:g} µm is not a whole number of {pixel_size_um:g} µm pixels")
    config = ClassifierConfig(input_px=input_px, widths=widths, n_classes=len(CLASSES))
    train_stores, held_stores = truth_stores(sections_tsv), truth_stores(held_out_tsv)
    overlap = {os.fspath(s) for _, s in train_stores} & {os.fspath(s) for _, s in held_stores}
    if overlap:
        raise ValueError(f"held-out sections are also training sections: {sorted(overlap)}")
    train = [load_labelled(s, p, pixel_size_um, input_px, max(1, input_px // 32)) for s, p in train_stores]
    held = [load_labelled(s, p, pixel_size_um, input_px, max(1, input_px // 2)) for s, p in held_stores]
    sampler = BalancedSampler(train, config)
    start = time.perf_counter()
    network, losses = train_network(sampler, config, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                    progress=progress)
    wall = time.perf_counter() - start
    evaluation = {**evaluate(network, held), "data": [os.fspath(p) for _, p in held_stores]}
    tail = max(1, min(50, steps // 10))
    training = {
        "command": command, "data": [*data_notes, *(os.fspath(p) for _, p in train_stores)], "seed": seed,
        "steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": "AdamW, 5% warm-up, cosine decay",
        "code_version": code_version_string(), "device": "cpu", "threads": torch.get_num_threads(),
        "wall_seconds": round(wall, 1), "patches_per_class": sampler.counts(),
        "sampling": f"class-balanced; >= {MIN_TISSUE:.0%} tissue, >= {MIN_PURITY:.0%} of it one area; "
                    "random dihedral flips/rotations",
        "loss_first": float(np.mean(losses[:tail])), "loss_last": float(np.mean(losses[-tail:])),
    }
    description = description or (f"Cytoarchitecture classifier ({', '.join(CLASSES)}) of {input_um:g} µm patches at "
                                   f"{pixel_size_um:g} µm/px, trained on {len(train)} synthetic sections")
    return save_classifier(out, network, name=name, classes=list(CLASSES), pixel_size_um=pixel_size_um,
                           training=training, evaluation=evaluation, description=description)
