"""Intensity normalisation: the linear map between an image's stored values and the model's range.

A model card records the dtype and value range it was trained on; an image of another dtype needs
the ``repaint.normalization`` override ``{input_range: [lo, hi]}`` of the workflow config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Normalization:
    """Linear map between stored intensities and the model's range ([-1, 1])."""

    dtype: str = "uint8"
    input_range: tuple[float, float] = (0.0, 255.0)
    model_range: tuple[float, float] = (-1.0, 1.0)

    @classmethod
    def from_card(cls, d: dict[str, Any]) -> Normalization:
        return cls(d["dtype"], tuple(d["input_range"]), tuple(d["model_range"]))

    def to_card(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "input_range": list(self.input_range), "model_range": list(self.model_range)}

    def to_model(self, image: np.ndarray) -> np.ndarray:
        """Stored intensities -> float32 in the model range."""
        (a, b), (c, d) = self.input_range, self.model_range
        return ((image.astype(np.float32) - a) * ((d - c) / (b - a)) + c).astype(np.float32)

    def from_model(self, x: np.ndarray) -> np.ndarray:
        """Model range -> stored dtype, clipped to the input range (and rounded for integer dtypes)."""
        (a, b), (c, d) = self.input_range, self.model_range
        y = (np.asarray(x, dtype=np.float64) - c) * ((b - a) / (d - c)) + a
        dtype = np.dtype(self.dtype)
        if dtype.kind == "f":
            return np.clip(y, a, b).astype(dtype)
        info = np.iinfo(dtype)
        return np.clip(np.rint(y), max(a, info.min), min(b, info.max)).astype(dtype)


def normalization_for(dtype: np.dtype, card_norm: Normalization, override: dict[str, Any] | None) -> Normalization:
    """The intensity normalisation for an image dtype: the model card's, or the configured override.

    An image whose dtype differs from the card's needs ``repaint.normalization: {input_range: [lo, hi]}``.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif":
        raise ValueError(f"the image is {dtype}: only integer and floating-point grey images can be repaired")
    if override:
        if "input_range" not in override:
            raise ValueError("repaint.normalization needs input_range: [lo, hi] (stored values mapped to the "
                             "model's range)")
        lo, hi = (float(v) for v in override["input_range"])
        if not lo < hi:
            raise ValueError(f"repaint.normalization.input_range must be [lo, hi] with lo < hi, got {[lo, hi]}")
        return Normalization(str(dtype), (lo, hi), card_norm.model_range)
    if dtype != np.dtype(card_norm.dtype):
        raise ValueError(f"the image is {dtype} but the model expects {card_norm.dtype}; set "
                         "repaint.normalization: {input_range: [lo, hi]} to map its values")
    return card_norm
