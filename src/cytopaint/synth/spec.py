"""SectionSpec: everything that determines a synthetic section (all geometry is physical, in µm)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .areas import AREA_TYPES

ARTIFACT_KINDS = ("tear", "missing", "fold", "crystal")  # label values 1..4 in the `artifact` map
ANCHORS = ("crown", "sulcus")


@dataclass(frozen=True)
class SectionSpec:
    """A synthetic section: a window of `shape` pixels at `pixel_size_um` onto a folded hemisphere.

    The tissue depends on the seed and the physical extent (shape x pixel size) only, so two specs with
    the same seed and extent show the same cells at different pixel sizes (see `at_pixel_size`).
    The view is placed with the pia `surface_frac` of the height below the top edge, at a gyral crown
    or a sulcus mouth (`anchor`).
    """

    seed: int = 0
    shape: tuple[int, int] = (2048, 2048)
    pixel_size_um: float = 1.0
    areas: tuple[str, ...] = ("frontal", "motor", "v1", "temporal")
    area_width_mm: float = 5.0  # mean tangential extent of one area patch
    anchor: str = "crown"
    surface_frac: float = 0.1
    damaged_fraction: float = 0.05  # share of the tissue covered by artifacts
    artifact_kinds: tuple[str, ...] = ARTIFACT_KINDS
    section_um: float = 20.0  # section thickness
    noise_sigma: float = 3.0  # grey levels of pixel noise at 1 µm/px (scaled by 1/pixel size)

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"shape must be two positive ints, got {self.shape}")
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))
        object.__setattr__(self, "areas", tuple(self.areas))
        object.__setattr__(self, "artifact_kinds", tuple(self.artifact_kinds))
        if self.pixel_size_um <= 0:
            raise ValueError("pixel_size_um must be positive")
        if not self.areas or any(a not in AREA_TYPES for a in self.areas):
            raise ValueError(f"areas must be a non-empty subset of {sorted(AREA_TYPES)}, got {self.areas}")
        if any(k not in ARTIFACT_KINDS for k in self.artifact_kinds):
            raise ValueError(f"artifact_kinds must be a subset of {ARTIFACT_KINDS}, got {self.artifact_kinds}")
        if self.anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {self.anchor!r}")
        if not 0 <= self.damaged_fraction < 1:
            raise ValueError("damaged_fraction must be in [0, 1)")
        if not 0 <= self.surface_frac < 1 or self.area_width_mm <= 0 or self.section_um <= 0:
            raise ValueError("need 0 <= surface_frac < 1, area_width_mm > 0 and section_um > 0")
        if self.seed < 0:
            raise ValueError("seed must be non-negative")

    @property
    def extent_um(self) -> tuple[float, float]:
        """Physical size (height, width) of the view in µm."""
        return self.shape[0] * self.pixel_size_um, self.shape[1] * self.pixel_size_um

    def at_pixel_size(self, pixel_size_um: float) -> SectionSpec:
        """The same tissue at another pixel size (identical when the extent divides exactly)."""
        ey, ex = self.extent_um
        shape = (max(1, round(ey / pixel_size_um)), max(1, round(ex / pixel_size_um)))
        return dataclasses.replace(self, shape=shape, pixel_size_um=pixel_size_um)
