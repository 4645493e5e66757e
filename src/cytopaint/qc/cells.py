"""Cell-body detection and cell statistics, a fixed instrument for QC and evaluation.

detect_cells: optical density OD = -log10(I / I_background) relative to the neuropil, light Gaussian
smoothing, a fixed OD threshold (or Otsu), small holes filled (pale nuclei), touching cells split by
a watershed seeded by the h-maxima of distance-to-border plus darkness, and a size filter in µm^2.
Its bias against synthetic ground truth (count, mean size, recall, precision) is measured by
`detector_bias`; overlapping somata in a 20 µm section make it undercount dense layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu
from skimage.measure import regionprops_table
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

TABLE_COLUMNS = ("label", "y", "x", "y_um", "x_um", "area_um2", "mean_od")


def optical_density(image: np.ndarray, background: float) -> np.ndarray:
    """OD = -log10(I / background) as float32, clipped at 0."""
    img = np.asarray(image, np.float32)
    return np.maximum(-np.log10(np.maximum(img, 1.0) / max(float(background), 1.0)), 0).astype(np.float32)


def detect_cells(image: np.ndarray, pixel_size_um: float, mask: np.ndarray | None = None, *,
                 background: float | None = None, threshold: float | str = 0.18, smooth_um: float = 0.6,
                 split_h_um: float = 0.15, od_weight_um: float = 20.0, od_cap: float = 0.5, min_area_um2: float = 12.0,
                 max_hole_um2: float = 30.0) -> tuple[np.ndarray, pd.DataFrame]:
    """Detect dark cell bodies in a uint8 bright-field image.

    mask: optional bool array, True where cells are sought (e.g. tissue outside artifacts).
    background: grey level the OD is measured from; default the median of the pixels in mask (the
    neuropil of a tissue patch). threshold: OD above it (fixed) or "otsu" (on the pixels in mask).
    Seeds are h-maxima (height split_h_um) of distance-to-border (µm) + od_weight_um x min(OD, od_cap);
    the cap keeps the darker overlap of two somata from seeding a cell of its own.
    Returns an int32 label image and a table with columns TABLE_COLUMNS (y, x in pixels, pixel i
    centred at i).
    """
    if image.ndim != 2:
        raise ValueError("detect_cells expects a 2-D grey-level image")
    ps = float(pixel_size_um)
    valid = np.ones(image.shape, bool) if mask is None else np.asarray(mask, bool)
    if not valid.any():
        return np.zeros(image.shape, np.int32), cell_table(np.zeros(image.shape, np.int32), ps)
    bg = float(np.median(image[valid])) if background is None else float(background)
    od = optical_density(image, bg)
    if smooth_um / ps >= 0.3:
        od = ndi.gaussian_filter(od, smooth_um / ps)
    if threshold == "otsu":
        vals = od[valid]
        thr = float(threshold_otsu(vals)) if vals.min() < vals.max() else np.inf
    else:
        thr = float(threshold)
    fg = (od > thr) & valid
    holes = ndi.binary_fill_holes(fg) & ~fg
    hl, nh = ndi.label(holes)
    if nh:
        small = np.bincount(hl.ravel())[1:] * ps * ps <= max_hole_um2
        fg |= np.concatenate([[False], small])[hl]
    relief = ndi.gaussian_filter(ndi.distance_transform_edt(fg, sampling=ps), 0.5)
    relief += od_weight_um * np.minimum(od, od_cap)
    markers, _ = ndi.label(h_maxima(relief, split_h_um) & fg, structure=np.ones((3, 3)))
    labels = watershed(-relief, markers, mask=fg)
    orphans, n_orphans = ndi.label(fg & (labels == 0))  # components without a seed
    if n_orphans:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    sizes = np.bincount(labels.ravel()) * ps * ps
    keep = sizes >= min_area_um2
    keep[0] = False
    labels = relabel_sequential(np.where(keep[labels], labels, 0))[0].astype(np.int32)
    return labels, cell_table(labels, ps, od)


def cell_table(labels: np.ndarray, pixel_size_um: float, od: np.ndarray | None = None) -> pd.DataFrame:
    """Centroid (pixels and µm), area (µm^2) and mean OD of each labelled cell."""
    ps = float(pixel_size_um)
    if labels.max() == 0:
        return pd.DataFrame({c: np.zeros(0, np.int64 if c == "label" else np.float64) for c in TABLE_COLUMNS})
    props = regionprops_table(labels, intensity_image=od, properties=(
        ("label", "centroid", "area") + (("intensity_mean",) if od is not None else ())))
    y, x = props["centroid-0"], props["centroid-1"]
    return pd.DataFrame({"label": props["label"], "y": y, "x": x, "y_um": (y + 0.5) * ps, "x_um": (x + 0.5) * ps,
                         "area_um2": props["area"] * ps * ps,
                         "mean_od": props.get("intensity_mean", np.full(len(y), np.nan))})


@dataclass(frozen=True)
class CellStats:
    """Cells whose centroid lies in a region."""

    count: int
    density_per_mm2: float
    mean_area_um2: float
    region_mm2: float


def _as_table(cells: pd.DataFrame | np.ndarray, pixel_size_um: float) -> pd.DataFrame:
    if isinstance(cells, pd.DataFrame):
        return cells
    return cell_table(np.asarray(cells), pixel_size_um)


def _in_region(table: pd.DataFrame, region: np.ndarray) -> np.ndarray:
    iy = np.clip(np.round(table["y"].to_numpy()).astype(np.int64), 0, region.shape[0] - 1)
    ix = np.clip(np.round(table["x"].to_numpy()).astype(np.int64), 0, region.shape[1] - 1)
    inside = (table["y"].to_numpy() > -0.5) & (table["y"].to_numpy() < region.shape[0] - 0.5)
    inside &= (table["x"].to_numpy() > -0.5) & (table["x"].to_numpy() < region.shape[1] - 0.5)
    return inside & region[iy, ix]


def cell_stats(cells: pd.DataFrame | np.ndarray, region_mask: np.ndarray, pixel_size_um: float) -> CellStats:
    """Count, density (cells/mm^2) and mean area (µm^2) of the cells whose centroid lies in region_mask.

    cells: a table with columns y, x (pixels) and area_um2 (detect_cells or synthetic ground truth),
    or a label image.
    """
    region = np.asarray(region_mask, bool)
    table = _as_table(cells, pixel_size_um)
    sel = table[_in_region(table, region)]
    area_mm2 = float(region.sum()) * pixel_size_um ** 2 * 1e-6
    count = len(sel)
    return CellStats(count, count / area_mm2 if area_mm2 > 0 else float("nan"),
                     float(sel["area_um2"].mean()) if count else float("nan"), area_mm2)


@dataclass(frozen=True)
class DetectorBias:
    """Detections against ground truth in one region (ratios are detected / true)."""

    n_true: int
    n_detected: int
    count_ratio: float
    size_ratio: float
    recall: float  # share of true cells matched by a detection
    precision: float  # share of detections matched to a true cell

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _match(a: np.ndarray, b: np.ndarray, radius: np.ndarray) -> int:
    """Greedy one-to-one matching of points a to points b within radius (per point of a); number of pairs."""
    if not len(a) or not len(b):
        return 0
    pairs = cKDTree(a).sparse_distance_matrix(cKDTree(b), float(radius.max()), output_type="coo_matrix")
    ok = pairs.data <= radius[pairs.row]
    order = np.argsort(pairs.data[ok], kind="stable")
    used_a, used_b = np.zeros(len(a), bool), np.zeros(len(b), bool)
    n = 0
    for i, j in zip(pairs.row[ok][order], pairs.col[ok][order], strict=True):
        if not used_a[i] and not used_b[j]:
            used_a[i] = used_b[j] = True
            n += 1
    return n


def detector_bias(image: np.ndarray, truth: pd.DataFrame, pixel_size_um: float, region: np.ndarray | None = None,
                  min_true_area_um2: float = 12.0, min_true_od: float = 0.2,
                  **detect_kwargs: object) -> DetectorBias:
    """Run detect_cells on `image` (restricted to `region`) and compare with ground-truth cells.

    truth: table with columns y, x (pixels), area_um2 and, optionally, od (peak optical density of
    the soma; synthetic cells cut near the section surface are faint). Visible true cells are those
    with area >= min_true_area_um2 and od >= min_true_od. Both sets are counted in `region` (default:
    everywhere) by their centroid. A detection matches a true cell when their centres lie within
    max(3 µm, 0.6 x the true equivalent radius).
    """
    region = np.ones(image.shape, bool) if region is None else np.asarray(region, bool)
    _, det = detect_cells(image, pixel_size_um, region, **detect_kwargs)
    det = det[_in_region(det, region)]
    visible = truth["area_um2"].to_numpy() >= min_true_area_um2
    if "od" in truth:
        visible &= truth["od"].to_numpy() >= min_true_od
    tru = truth[_in_region(truth, region) & visible]
    n_true, n_det = len(tru), len(det)
    radius_px = np.maximum(3.0, 0.6 * np.sqrt(tru["area_um2"].to_numpy() / np.pi)) / pixel_size_um
    matched = _match(tru[["y", "x"]].to_numpy(), det[["y", "x"]].to_numpy(), radius_px)
    nan = float("nan")
    return DetectorBias(n_true, n_det, n_det / n_true if n_true else nan,
                        float(det["area_um2"].mean() / tru["area_um2"].mean()) if n_true and n_det else nan,
                        matched / n_true if n_true else nan, matched / n_det if n_det else nan)
