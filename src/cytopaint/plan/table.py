"""The plan table (``plan/tiles.tsv``): one row per tile, its columns and dtypes, its checks and TSV I/O."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cytopaint.io.atomic import atomic_path

STATUS_OK = "ok"
STATUS_RELAXED = "relaxed"  # sampled below min_known, under the configured min_known_floor
STATUS_INSUFFICIENT = "insufficient_context"
STATUSES = (STATUS_OK, STATUS_RELAXED, STATUS_INSUFFICIENT)

PLAN_COLUMNS: dict[str, str] = {
    "section": "str",
    "tile": "str",
    "row": "int64",
    "col": "int64",
    "part": "int64",  # 0 for a whole grid tile, 1, 2, ... for the parts a tile was split into
    "y0": "int64",
    "x0": "int64",
    "height": "int64",
    "width": "int64",
    "core_y0": "int64",
    "core_x0": "int64",
    "core_height": "int64",
    "core_width": "int64",
    "wave": "int64",
    "batch": "int64",
    "seed": "int64",
    "n_owned": "int64",
    "known_fraction": "float64",
    "status": "str",
}


def frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """The plan table from its columns: canonical column order and dtypes."""
    return pd.DataFrame({name: columns[name] for name in PLAN_COLUMNS}).astype(PLAN_COLUMNS)


def empty_plan() -> pd.DataFrame:
    """A plan without tiles (a section without artifacts)."""
    return frame({name: np.zeros(0, dtype=object if t == "str" else t) for name, t in PLAN_COLUMNS.items()})


def validate_plan(df: pd.DataFrame) -> pd.DataFrame:
    """Check a plan's columns, dtypes and invariants; return it with canonical dtypes.

    Raises ValueError naming the first problem found.
    """
    if list(df.columns) != list(PLAN_COLUMNS):
        raise ValueError(f"plan columns {list(df.columns)} differ from {list(PLAN_COLUMNS)}")
    out = {}
    for name, dtype in PLAN_COLUMNS.items():
        col = df[name]
        if dtype == "str":
            if len(col) and not col.map(lambda v: isinstance(v, str) and v != "").all():
                raise ValueError(f"plan column {name!r} must hold non-empty strings")
            out[name] = col.astype(str)
            continue
        values = pd.to_numeric(col, errors="coerce")
        if values.isna().any():
            raise ValueError(f"plan column {name!r} has missing or non-numeric values")
        if dtype == "int64" and len(values) and not pd.api.types.is_integer_dtype(values):
            raise ValueError(f"plan column {name!r} must hold integers")
        out[name] = values.astype(dtype)
    plan = pd.DataFrame(out)
    if not plan["status"].isin(STATUSES).all():
        raise ValueError(f"plan status must be one of {STATUSES}")
    unscheduled = plan["status"] == STATUS_INSUFFICIENT
    if ((plan["wave"] < 0) != unscheduled).any() or ((plan["batch"] < 0) != unscheduled).any():
        raise ValueError("wave and batch must be -1 exactly for tiles with insufficient context")
    if plan.duplicated(["section", "row", "col", "part"]).any() or plan.duplicated(["section", "tile"]).any():
        raise ValueError("plan has duplicate tiles")
    if (plan[["height", "width", "core_height", "core_width"]] <= 0).any(axis=None):
        raise ValueError("plan has empty windows or cores")
    if (
        (plan["core_y0"] < plan["y0"])
        | (plan["core_x0"] < plan["x0"])
        | (plan["core_y0"] + plan["core_height"] > plan["y0"] + plan["height"])
        | (plan["core_x0"] + plan["core_width"] > plan["x0"] + plan["width"])
    ).any():
        raise ValueError("plan has a core outside its window")
    if (plan["seed"] < 0).any() or (plan["n_owned"] < 0).any() or (plan["part"] < 0).any():
        raise ValueError("plan seeds, n_owned and part must be >= 0")
    if ((plan["known_fraction"] < 0) | (plan["known_fraction"] > 1)).any():
        raise ValueError("plan known_fraction must lie in [0, 1]")
    return plan


def window_counts(plan: pd.DataFrame) -> dict[str, int]:
    """Scheduled tiles per window shape, as ``{"HxW": count}``, largest windows first."""
    sched = plan[plan["wave"] >= 0]
    counts = sched.groupby(["height", "width"]).size()
    order = sorted(counts.items(), key=lambda kv: (-kv[0][0] * kv[0][1], -kv[0][0]))
    return {f"{h}x{w}": int(n) for (h, w), n in order}


def write_plan(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Validate and write a plan as TSV (atomically: a temporary file, then a rename)."""
    plan = validate_plan(df)
    with atomic_path(path) as tmp:
        plan.to_csv(tmp, sep="\t", index=False)


def read_plan(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a plan TSV written by `write_plan` (one from before split tiles gets ``part`` 0)."""
    text_cols = [name for name, dtype in PLAN_COLUMNS.items() if dtype == "str"]
    df = pd.read_csv(path, sep="\t", dtype=dict.fromkeys(text_cols, str), keep_default_na=False, na_values={})
    if "part" not in df.columns and "col" in df.columns:
        df.insert(df.columns.get_loc("col") + 1, "part", 0)
    return validate_plan(df)
