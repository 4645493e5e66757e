"""Cortical area types: laminar thickness shares and neuron densities.

Numbers follow von Economo & Koskinas (1925) as summarised in DESIGN.md ("Domain facts for synthetic
data"); ranges are represented by their midpoint and every section randomises them (about +-30%).
A layer may be split into sublayers (share of the layer, density), e.g. IVa/IVb/IVc of V1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYER_NAMES = ("background", "I", "II", "III", "IV", "V", "VI", "WM")
WM = 7


@dataclass(frozen=True)
class AreaType:
    """Nominal cytoarchitecture of one area type."""

    name: str
    code: int  # label in the `area` map (0 is background)
    thickness_mm: float
    shares: tuple[float, ...]  # six layer shares of the cortical thickness (sum 1)
    density: tuple[tuple[tuple[float, float], ...], ...]  # per layer: ((share of layer, neurons/mm^3), ...)
    betz_per_mm2: float = 0.0  # giant pyramids (in section) in the lower half of layer V


def _norm(shares: tuple[float, ...]) -> tuple[float, ...]:
    s = sum(shares)
    return tuple(x / s for x in shares)


AREA_TYPES: dict[str, AreaType] = {a.name: a for a in (
    AreaType("frontal", 1, 2.78, _norm((7, 7, 29, 9, 16, 32)),
             (((1, 9e3),), ((1, 75e3),), ((0.5, 28e3), (0.5, 20e3)), ((1, 85e3),), ((1, 23.5e3),), ((1, 25e3),))),
    AreaType("motor", 2, 3.71, _norm((5, 6, 33, 0, 23, 34)),
             (((1, 7e3),), ((1, 30e3),), ((0.5, 25e3), (0.5, 18e3)), ((1, 0.0),), ((1, 16e3),), ((1, 20e3),)),
             betz_per_mm2=8.0),
    AreaType("v1", 3, 2.10, _norm((9, 6, 13, 38, 13, 21)),
             (((1, 9e3),), ((1, 150e3),), ((1, 100e3),), ((0.25, 110e3), (0.3, 45e3), (0.45, 220e3)),
              ((1, 45e3),), ((1, 80e3),))),
    AreaType("temporal", 4, 3.59, _norm((7, 4, 21, 7, 22, 39)),
             (((1, 10e3),), ((1, 85e3),), ((0.5, 33e3), (0.5, 27e3)), ((1, 90e3),), ((1, 50e3),), ((1, 30e3),))),
)}


@dataclass(frozen=True)
class AreaInstance:
    """One patch of cortex of a given type with its randomised parameters (decided from the section seed)."""

    type: AreaType
    thickness_um: float
    bounds: np.ndarray  # (7,) cumulative normalised depth of layer tops I..VI and the WM border (0 .. 1)
    density: tuple[tuple[tuple[float, float], ...], ...]  # per layer ((share of layer, neurons/mm^3), ...)
    glia_per_mm3: float  # grey-matter glia (1-2 per neuron on average over the cortex)
    betz_per_mm2: float

    def profile(self) -> tuple[np.ndarray, np.ndarray]:
        """Neuron density (per mm^3) as a step function of normalised depth: value i on [edges[i], edges[i+1])."""
        edges, vals = [0.0], []
        for i, layer in enumerate(self.density):
            top, bot = self.bounds[i], self.bounds[i + 1]
            for share, dens in layer:
                edges.append(edges[-1] + share * (bot - top))
                vals.append(dens)
        return np.array(edges), np.array(vals)

    def mean_density(self) -> float:
        """Thickness-weighted mean neuron density of the cortex (per mm^3)."""
        shares = np.diff(self.bounds)
        return float(sum(sh * sum(s * d for s, d in self.density[i]) for i, sh in enumerate(shares)))


def randomise(area: AreaType, rng: np.random.Generator, spread: float = 0.3) -> AreaInstance:
    """Draw an area instance: thickness, layer shares and densities each scaled by U(1-spread, 1+spread)."""
    lo, hi = 1 - spread, 1 + spread
    shares = np.array(area.shares) * rng.uniform(lo, hi, 6)
    shares /= shares.sum()
    bounds = np.concatenate([[0.0], np.cumsum(shares)])
    bounds[-1] = 1.0
    density = tuple(tuple((s, d * rng.uniform(lo, hi)) for s, d in layer) for layer in area.density)
    inst = AreaInstance(area, area.thickness_mm * 1e3 * rng.uniform(0.8, 1.2), bounds, density, 0.0,
                        area.betz_per_mm2 * rng.uniform(lo, hi))
    glia = inst.mean_density() * rng.uniform(1.0, 2.0)
    return AreaInstance(inst.type, inst.thickness_um, bounds, density, glia, inst.betz_per_mm2)


def areal_density(n_per_mm3: float, mean_diameter_um: float, section_um: float = 20.0) -> float:
    """Profiles per mm^2 of a section: N_A = N_V * (section thickness + mean soma diameter) (Abercrombie)."""
    return n_per_mm3 * (section_um + mean_diameter_um) * 1e-3
