"""A section's repairs pooled: cells observed against what the rings predict, its z and the section flag."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cytopaint.qc.metrics import Thresholds
from cytopaint.qc.pooled import pooled_cells, pooled_flags


def _tiles(cells: list[float], null_var: list[float]) -> pd.DataFrame:
    """Tiles of 2,000 µm² each whose rings hold 1,000 cells/mm² (2 expected cells per tile)."""
    n = len(cells)
    return pd.DataFrame({"repaired_um2": [2000.0] * n, "density_ring": [1000.0] * n, "cells_repaired": cells,
                         "cells_null_var": null_var, "cell_area_repaired": [60.0] * n, "cell_area_ring": [50.0] * n})


def test_cells_are_pooled_over_tiles_with_the_tissues_own_variance() -> None:
    m = _tiles([1, 0, 3, 2], [4.0, float("nan"), 1.0, 2.5])
    m.loc[len(m)] = {**m.iloc[0].to_dict(), "density_ring": float("nan"), "cells_repaired": 50}  # no ring: left out
    p = pooled_cells(m)
    assert p["tiles"] == 4 and p["cells_repaired"] == 6 and p["cells_expected"] == pytest.approx(8.0)
    assert p["density_rel"] == pytest.approx(-0.25)
    # each tile's variance: its null variance, at least its Poisson variance (2): 4 + 2 + 2 + 2.5
    assert p["density_z"] == pytest.approx((6 - 8) / math.sqrt(10.5))
    assert p["cell_area_rel"] == pytest.approx(0.2)  # weighted by the cells each repaired region holds
    empty = pooled_cells(_tiles([], []))
    assert empty["tiles"] == 0 and empty["density_rel"] is None and empty["density_z"] is None


def test_a_section_whose_repairs_hold_too_few_cells_is_flagged() -> None:
    few = pooled_cells(_tiles([1] * 40, [2.0] * 40))  # 40 cells where 80 are expected: -50%, z -4.5
    [flag] = pooled_flags(few, Thresholds())
    assert flag.code == "section_density" and "40 cells where their rings predict 80 (-50%, z -4.5" in flag.reason
    assert "too few" in flag.reason
    assert pooled_flags(pooled_cells(_tiles([1] * 4, [2.0] * 4)), Thresholds()) == []  # -50% but z -1.4
    assert pooled_flags(pooled_cells(_tiles([2] * 30 + [1] * 6, [2.0] * 36)), Thresholds()) == []  # -8%, z -0.7
    many = pooled_cells(_tiles([4] * 40, [2.0] * 40))
    assert "too many" in pooled_flags(many, Thresholds())[0].reason
    assert pooled_flags(few, Thresholds(section_density=0.6)) == []
