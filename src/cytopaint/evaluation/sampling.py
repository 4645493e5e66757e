"""Evaluation patches: intact, disjoint squares from held-out sections, and irregular masks per coverage bin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..io.sections import plane
from ..models.patches import load_section
from ..synth import crystal_mask, freeform_mask


@dataclass(frozen=True)
class EvalPatch:
    """One intact patch: where it comes from and its pixels (uint8, at the evaluation pixel size)."""

    patch: str  # id, e.g. "p0007"
    section: str
    y0: int
    x0: int
    image: np.ndarray


def sample_patches(sections: pd.DataFrame, n: int, patch_px: int, pixel_size_um: float,
                   rng: np.random.Generator, margin_um: float = 10.0, tries: int = 200) -> list[EvalPatch]:
    """``n`` disjoint patches of ``patch_px`` squared pixels, free of artifacts and >= 90% tissue.

    ``sections`` is a table as `cytopaint.sections.read_sections` returns it. Patches are drawn
    section by section in turn (so they spread over the sections), each at a random valid origin
    that does not overlap an earlier patch of its section. Raises ValueError when the sections
    cannot hold ``n`` such patches.
    """
    pools = []
    for row in sections.itertuples():
        sp = load_section(row.section, row.image, row.mask or None, pixel_size_um, patch_px, z=plane(row.z),
                          margin_um=margin_um)
        if len(sp.origins):
            pools.append((sp, []))
    out: list[EvalPatch] = []
    order = rng.permutation(len(pools)) if pools else []
    exhausted: set[int] = set()
    while len(out) < n and len(exhausted) < len(pools):
        for k in order:
            if len(out) == n:
                break
            if k in exhausted:
                continue
            sp, taken = pools[k]
            for _ in range(tries):
                y, x = (int(v) for v in sp.origins[rng.integers(len(sp.origins))])
                if all(abs(y - ty) >= patch_px or abs(x - tx) >= patch_px for ty, tx in taken):
                    taken.append((y, x))
                    out.append(EvalPatch(f"p{len(out):04d}", sp.name, y, x,
                                         np.ascontiguousarray(sp.image[y:y + patch_px, x:x + patch_px])))
                    break
            else:
                exhausted.add(k)
    if len(out) < n:
        raise ValueError(f"the sections hold only {len(out)} disjoint intact patches of {patch_px} px "
                         f"({patch_px * pixel_size_um:g} µm), {n} needed: add sections or lower patches_per_bin")
    return out


MASK_KINDS = ("freeform", "crystals")


def bin_masks(n_per_bin: int, bins: Sequence[tuple[float, float]], shape: tuple[int, int],
              seed: int, kind: str = "freeform", pixel_size_um: float = 1.0) -> list[tuple[int, np.ndarray]]:
    """``n_per_bin`` masks (True = hole) for every coverage bin, as (bin index, mask), bin by bin.

    ``kind``: free-form strokes (`cytopaint.synth.freeform`) or crystal clusters at ``pixel_size_um``
    (`cytopaint.synth.crystal_masks`). Mask ``i`` is drawn from its own seed (``seed``, ``i``), so
    adding bins or patches leaves the earlier masks unchanged.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind {kind!r} is not one of {list(MASK_KINDS)}")
    out = []
    for b, cbin in enumerate(bins):
        for k in range(n_per_bin):
            rng = np.random.default_rng([seed, b, k])
            mask = (freeform_mask(shape, tuple(cbin), rng) if kind == "freeform"
                    else crystal_mask(shape, tuple(cbin), rng, pixel_size_um))
            out.append((b, mask))
    return out
