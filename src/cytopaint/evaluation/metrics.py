"""Fidelity metrics of the evaluation protocol (paper, section 3.3) on numpy arrays and tables.

- compare_cells: cell density and mean cell size in a repaired region, original against repaired,
  with the QC cell detector (`cytopaint.qc.cells.detect_cells`) as a fixed instrument; relative
  error e = (repaired - original) / original.
- frechet_distance: the FID formula (Heusel et al. 2017) between Gaussians fitted to two feature
  sets; in a cytoarchitecture classifier's feature space it is the paper's FCD.
- topk_agreement: the paper's "k = 1" and "k = 2 accuracy" of a classifier, original vs repaired.
- coverage, bin_of: share of a patch masked and its coverage bin.
- summarise, pooled_bias: per-group statistics of per-patch results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..qc.cells import cell_stats, detect_cells

POOLED_COLUMNS = ("n_original", "n_repaired", "size_original", "size_repaired", "region_area_mm2")
_SUMMARY_STATS = {"median": "median", "mean": "mean", "std": "sd", "count": "n"}  # pandas name: column suffix


@dataclass(frozen=True)
class CellComparison:
    """Cells whose centroid lies in the region, in the original and the repaired image.

    Densities in cells/mm² of region, sizes the mean cell area in µm² (NaN without cells); relative
    errors (repaired - original) / original, signed, NaN when the original value is 0 or NaN.
    """

    n_original: int
    n_repaired: int
    density_original: float
    density_repaired: float
    size_original: float
    size_repaired: float
    density_rel_error: float
    size_rel_error: float
    region_area_mm2: float


def _rel_error(repaired: float, original: float) -> float:
    return (repaired - original) / original if original != 0 and not math.isnan(original) else float("nan")


def compare_cells(original: np.ndarray, repaired: np.ndarray, region: np.ndarray, pixel_size_um: float,
                  tissue: np.ndarray | None = None) -> CellComparison:
    """Cell density and size in `region` of `original` and `repaired` (same shape, 2-D grey levels).

    Cells are detected in each whole image by detect_cells with the same settings, including one
    background: the median of the original's pixels (in `tissue` if given), so a repaired region
    of another brightness cannot move the OD threshold. With `tissue` (bool), cells are sought only
    there and the region counted is region & tissue. A cell counts when its centroid lies in the
    region.
    """
    original, repaired = np.asarray(original), np.asarray(repaired)
    region = np.asarray(region, bool)
    if original.ndim != 2 or repaired.shape != original.shape or region.shape != original.shape:
        raise ValueError(f"original {original.shape}, repaired {repaired.shape} and region {region.shape} "
                         "must be 2-D arrays of one shape")
    if tissue is not None:
        tissue = np.asarray(tissue, bool)
        if tissue.shape != original.shape:
            raise ValueError(f"tissue shape {tissue.shape} differs from image shape {original.shape}")
        region = region & tissue
    background = float(np.median(original if tissue is None else original[tissue]))
    before = cell_stats(detect_cells(original, pixel_size_um, tissue, background=background)[1], region,
                        pixel_size_um)
    after = cell_stats(detect_cells(repaired, pixel_size_um, tissue, background=background)[1], region,
                       pixel_size_um)
    return CellComparison(before.count, after.count, before.density_per_mm2, after.density_per_mm2,
                          before.mean_area_um2, after.mean_area_um2,
                          _rel_error(after.count, before.count), _rel_error(after.mean_area_um2, before.mean_area_um2),
                          before.region_mm2)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D).

    d² = |mu_a - mu_b|² + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), sample means and covariances (ddof=1).
    Like FID (Heusel et al. 2017) it returns d², not d, and is called the Fréchet distance.
    Tr (S_a S_b)^(1/2) is computed as the sum of sqrt(eigenvalues) of the symmetric PSD matrix
    S_a^(1/2) S_b S_a^(1/2), which has the eigenvalues of S_a S_b: real, exact for rank-deficient
    covariances (N < D), and several times faster than scipy.linalg.sqrtm of the product.
    Eigenvalues below 0 (rounding) are clipped, and so is the result.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set for a covariance, got {len(a)} and {len(b)}")
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    d2 = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(lam, 0, None)).sum()
    return max(float(d2), 0.0)


def topk_agreement(probs_original: np.ndarray, probs_repaired: np.ndarray, k: int) -> np.ndarray:
    """Per patch, whether the original's top-1 class is among the repaired patch's k most likely classes.

    probs_*: (N, C) class scores. Ties rank the lower class index first (as np.argmax does), so the
    result is deterministic; k = C is always True.
    """
    po, pr = np.asarray(probs_original), np.asarray(probs_repaired)
    if po.ndim != 2 or po.shape != pr.shape:
        raise ValueError(f"probabilities must be two (N, C) arrays of one shape, got {po.shape} and {pr.shape}")
    if not 1 <= k <= po.shape[1]:
        raise ValueError(f"k must be in 1..{po.shape[1]}, got {k}")
    top = np.argmax(po, axis=1)
    p_top = np.take_along_axis(pr, top[:, None], axis=1)
    ahead = (pr > p_top) | ((pr == p_top) & (np.arange(pr.shape[1]) < top[:, None]))
    return ahead.sum(axis=1) < k


def coverage(mask: np.ndarray) -> float:
    """Fraction of True pixels in mask."""
    mask = np.asarray(mask, bool)
    if mask.size == 0:
        raise ValueError("coverage of an empty mask")
    return float(mask.mean())


def bin_of(coverage: float, bins: Sequence[tuple[float, float]]) -> int:
    """Index of the first half-open bin lo <= coverage < hi, -1 if none."""
    return next((i for i, (lo, hi) in enumerate(bins) if lo <= coverage < hi), -1)


def summarise(df: pd.DataFrame, by: list[str], value_cols: list[str]) -> pd.DataFrame:
    """Per group of `by`: median, mean, sd (ddof=1) and n of each value column, ignoring NaN.

    One row per group, the `by` columns first, then `<col>_median`, `<col>_mean`, `<col>_sd`, `<col>_n`.
    """
    stats = df.groupby(by, sort=True)[value_cols].agg(list(_SUMMARY_STATS))
    stats.columns = [f"{col}_{_SUMMARY_STATS[stat]}" for col, stat in stats.columns]
    return stats.reset_index()


def pooled_bias(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Density and size bias per group of `by`, pooled over all cells of its patches.

    Needs per-patch columns POOLED_COLUMNS: n_original, n_repaired (cell counts), size_original,
    size_repaired (mean cell area, µm², NaN without cells) and region_area_mm2. Per group:
    density_* = sum n / sum region_area_mm2, density_bias = density_repaired / density_original - 1;
    size_* = sum(n x size) / sum n (mean area of all cells), size_bias = size_repaired / size_original - 1.
    A bias is NaN where the original value is 0 or undefined. Also returns n_patches and the sums.
    """
    missing = [c for c in POOLED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"pooled_bias needs columns {missing}")
    work = df[[*by, "n_original", "n_repaired", "region_area_mm2"]].copy()
    for which in ("original", "repaired"):
        n = df[f"n_{which}"]
        work[f"_cell_area_{which}"] = (n * df[f"size_{which}"]).where(n > 0, 0.0)
    groups = work.groupby(by, sort=True)
    out = groups.sum()
    out.insert(0, "n_patches", groups.size())
    for which in ("original", "repaired"):
        n = out[f"n_{which}"]
        out[f"density_{which}"] = (n / out["region_area_mm2"]).where(out["region_area_mm2"] > 0)
        out[f"size_{which}"] = (out.pop(f"_cell_area_{which}") / n).where(n > 0)
    for stat in ("density", "size"):
        orig = out[f"{stat}_original"]
        out[f"{stat}_bias"] = (out[f"{stat}_repaired"] / orig - 1).where(orig > 0)
    return out.reset_index()
