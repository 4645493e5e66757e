"""Synthetic Merker-stained cortex sections with artifacts, free-form and crystal masks for evaluation.

    spec = SectionSpec(seed=1, shape=(1024, 1024), pixel_size_um=2.0)
    out = render_window(spec, 0, 0, 512, 512)   # image, intact, mask, artifact, layer, area, cells
"""

from .areas import AREA_TYPES, LAYER_NAMES, AreaInstance, AreaType, areal_density
from .artifacts import artifact_layout
from .cells import KINDS
from .cortex import geometry
from .crystal_masks import crystal_mask
from .freeform import LIU_BINS, freeform_mask
from .render import cells_in_window, iter_windows, label_window, render_section, render_window
from .spec import ARTIFACT_KINDS, SectionSpec

__all__ = ["AREA_TYPES", "ARTIFACT_KINDS", "KINDS", "LAYER_NAMES", "LIU_BINS", "AreaInstance", "AreaType",
           "SectionSpec", "areal_density", "artifact_layout", "cells_in_window", "crystal_mask", "freeform_mask",
           "geometry", "iter_windows", "label_window", "render_section", "render_window"]
