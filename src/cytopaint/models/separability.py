"""How well the synthetic areas can be told apart at the classifier's patch size, from the ground truth.

The bundled area classifier sees pixels. This module asks the question beneath its accuracy: given the
*true* layer map and the *true* somata of a patch (what the generator itself decided), how often can any
classifier name the patch's area? Each qualifying patch (the classifier's own rule, see
``classifier_training.label_patches``) becomes a vector of ground-truth features; an MLP trained on the
patches of training sections is scored on those of held-out sections, next to the bundled classifier on
the same patches. Where this "oracle" also fails, the areas overlap in what a 1 mm² patch can show, and
no image classifier can do much better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..io import volume
from ..synth.areas import LAYER_NAMES, WM
from ..synth.cells import KINDS
from .classifier_training import _box_sums, label_patches

NEURONS = KINDS[:KINDS.index("glia")]
CORTEX = range(1, WM)  # layer codes I..VI
FEATURES = (*(f"share_{LAYER_NAMES[k]}" for k in range(1, WM + 1)),
            *(f"neurons_per_mm2_{LAYER_NAMES[k]}" for k in CORTEX),
            *(f"neuron_um2_{LAYER_NAMES[k]}" for k in CORTEX),
            "glia_per_mm2_cortex", "glia_per_mm2_wm", "betz_per_mm2", "granule_share")


@dataclass
class TruthPatches:
    """Ground-truth feature vectors of a section's qualifying patches, with their class and grey-matter share."""

    section: str
    origins: np.ndarray  # (n, 2) level-0 px
    labels: np.ndarray  # (n,) class index
    features: np.ndarray  # (n, len(FEATURES))

    @property
    def cortex_share(self) -> np.ndarray:
        """Share of each patch covered by layers I..VI (the rest is white matter or background)."""
        return self.features[:, :WM - 1].sum(1)


def patch_features(layer: np.ndarray, cells: pd.DataFrame, origins: np.ndarray, side: int,
                   pixel_size_um: float) -> np.ndarray:
    """Ground-truth features (len(FEATURES),) of each side x side patch of a layer map and its somata.

    ``cells`` holds the generator's somata (``y``, ``x`` in level-0 px, ``kind``, ``layer``, ``area_um2``).
    Densities are per mm² of the layer's own footprint in the patch (0 where the layer is absent).
    """
    n = len(origins)
    px_mm2 = (pixel_size_um / 1000.0) ** 2
    shares = np.zeros((n, WM))
    for k in range(1, WM + 1):
        sums = _box_sums(layer == k, side, 1)
        shares[:, k - 1] = sums[origins[:, 0], origins[:, 1]] / (side * side)
    cy, cx = cells["y"].to_numpy(), cells["x"].to_numpy()
    kind, cl, size = cells["kind"].to_numpy(), cells["layer"].to_numpy(), cells["area_um2"].to_numpy()
    neuron, glia = np.isin(kind, NEURONS), kind == "glia"
    out = np.zeros((n, len(FEATURES)))
    out[:, :WM] = shares
    for i, (y0, x0) in enumerate(origins):
        inside = (cy >= y0) & (cy < y0 + side) & (cx >= x0) & (cx < x0 + side)
        mm2 = shares[i] * side * side * px_mm2  # per layer I..WM
        for j, k in enumerate(CORTEX):
            here = inside & neuron & (cl == k)
            if mm2[k - 1] > 0 and here.any():
                out[i, WM + j] = here.sum() / mm2[k - 1]
                out[i, WM + 6 + j] = size[here].mean()
        grey = mm2[:WM - 1].sum()
        out[i, WM + 12] = (inside & glia & (cl < WM)).sum() / grey if grey > 0 else 0.0
        out[i, WM + 13] = (inside & glia & (cl == WM)).sum() / mm2[WM - 1] if mm2[WM - 1] > 0 else 0.0
        out[i, WM + 14] = (inside & (kind == "betz")).sum() / (side * side * px_mm2)
        n_neurons = (inside & neuron).sum()
        out[i, WM + 15] = (inside & (kind == "granule")).sum() / n_neurons if n_neurons else 0.0
    return out


def truth_patches(section: str, store: Path, cells_tsv: Path, input_um: float, stride_um: float) -> TruthPatches:
    """The qualifying patches of a truth store (level 0) and their ground-truth features."""
    info = volume.read_info(store)
    ps = info.pixel_size_um[1]
    side, stride = round(input_um / ps), max(1, round(stride_um / ps))
    area = np.asarray(volume.open_level(f"{store}#labels/area", 0))
    origins, labels = label_patches(area, side, stride)
    layer = np.asarray(volume.open_level(f"{store}#labels/layer", 0))
    cells = pd.read_csv(cells_tsv, sep="\t")
    return TruthPatches(section, origins, labels, patch_features(layer, cells, origins, side, ps))


def fit_oracle(x: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int = 0, hidden: int = 64,
               steps: int = 3000, weight_decay: float = 1e-3) -> torch.nn.Module:
    """A two-layer MLP on standardised features (full-batch Adam, class-balanced loss)."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-9
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes))
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    counts = np.bincount(y, minlength=n_classes)
    weight = torch.as_tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0),
                             dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(net(xt), yt, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    net.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
    net.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
    return net


def oracle_predict(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Class index per row of ``x`` (features in FEATURES order)."""
    with torch.inference_mode():
        xt = (torch.as_tensor(x, dtype=torch.float32) - net.mean) / net.std
        return net(xt).argmax(1).numpy()


def accuracy_by_cortex_share(truth: np.ndarray, predicted: dict[str, np.ndarray], cortex: np.ndarray,
                             edges: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """Accuracy of each predictor over all patches and per bin of the patches' grey-matter share."""
    rows = []
    bins = [("all", np.ones(len(truth), bool))]
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = math.isclose(hi, edges[-1])
        bins.append((f"{lo:.0%}-{hi:.0%}", (cortex >= lo) & ((cortex <= hi) if last else (cortex < hi))))
    for name, sel in bins:
        row: dict[str, object] = {"cortex_share": name, "patches": int(sel.sum())}
        for who, pred in predicted.items():
            row[who] = float((pred[sel] == truth[sel]).mean()) if sel.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
