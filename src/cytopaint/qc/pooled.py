"""A section's repairs as one sample: the cells of all its repaired regions against what their rings predict.

A tile's repaired region is often too small to hold more than a few cells, so a model that paints
20% too few cells passes every tile's test. Pooled over a section's tiles (from ``metrics.tsv``):

- expected cells E = sum over tiles of ring density x repaired area; observed O = the cells
  detected in the repaired regions; ``density_rel`` = O / E - 1;
- ``density_z`` = (O - E) / sqrt(sum of the tiles' count variances): each tile's variance is that
  of the cell count in same-shaped intact regions of its window (``cells_null_var``: real tissue's
  layers and clusters, not only Poisson noise), at least its Poisson variance (its E);
- ``cell_area_rel``: mean cell area in the repaired regions over the rings' mean, each tile's ring
  weighted by the cells its repaired region holds (reported, not flagged: sizes need no pooling to
  be judged, see the tile flags).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .metrics import Flag, Thresholds


def pooled_cells(metrics: pd.DataFrame) -> dict[str, Any]:
    """The section's pooled cell statistics (keys in the module's list, plus ``tiles``: tiles counted)."""
    col = {k: metrics[k].to_numpy(dtype=np.float64) for k in
           ("density_ring", "cells_repaired", "repaired_um2", "cells_null_var", "cell_area_ring", "cell_area_repaired")}
    keep = np.isfinite(col["density_ring"]) & np.isfinite(col["cells_repaired"])
    ring, cells, um2, null_var, area_ring, area_rep = (v[keep] for v in col.values())
    expected_i = ring * um2 * 1e-6
    observed, expected = float(cells.sum()), float(expected_i.sum())
    var = np.fmax(null_var, expected_i)  # fmax: NaN -> the Poisson variance
    with_cells = (cells > 0) & np.isfinite(area_ring)
    ring_area, rep_area = float((cells * area_ring)[with_cells].sum()), float((cells * area_rep)[with_cells].sum())
    return {"tiles": int(keep.sum()), "cells_repaired": int(observed), "cells_expected": expected,
            "density_rel": observed / expected - 1 if expected > 0 else None,
            "density_z": (observed - expected) / math.sqrt(var.sum()) if var.sum() > 0 else None,
            "cell_area_rel": rep_area / ring_area - 1 if ring_area > 0 else None}


def pooled_flags(pooled: dict[str, Any], t: Thresholds) -> list[Flag]:
    """The section's flag when its repairs hold too few or too many cells: beyond ``t.section_density``, significant."""
    rel, z = pooled.get("density_rel"), pooled.get("density_z")
    if rel is None or z is None or abs(rel) <= t.section_density or abs(z) < t.significance_z:
        return []
    return [Flag("section_density", f"the repaired regions hold {pooled['cells_repaired']} cells where their rings "
                                    f"predict {pooled['cells_expected']:.0f} ({rel * 100:+.0f}%, z {z:+.1f}; limit "
                                    f"±{t.section_density * 100:.0f}%): {'too few' if rel < 0 else 'too many'} "
                                    "cells across this section's repairs")]
