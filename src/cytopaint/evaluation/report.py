"""Evaluation outputs: the summary per method and coverage bin, the paper-style figures and a Markdown page."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .metrics import pooled_bias, summarise  # noqa: E402

# The paper's figures (Kropp et al., BigBrain): median relative errors and classifier agreement.
PAPER = {"density": 0.055, "size": 0.075, "top1": 0.85, "top2": 0.98, "fcd_repaired": 0.0044, "fcd_reference": 0.006}
_BY = ["method", "bin", "bin_lo", "bin_hi"]


def summary_table(per_patch: pd.DataFrame) -> pd.DataFrame:
    """Per method and bin: patches, coverage, cells per hole, relative errors (median of |e|, median,
    mean, sd of e), pooled biases and the classifier's top-1 / top-2 agreement."""
    df = per_patch.assign(density_abs_error=per_patch["density_rel_error"].abs(),
                          size_abs_error=per_patch["size_rel_error"].abs(),
                          top1=pd.to_numeric(per_patch["top1_agree"], errors="coerce").astype(float),
                          top2=pd.to_numeric(per_patch["top2_agree"], errors="coerce").astype(float))
    stats = summarise(df, _BY, ["density_rel_error", "size_rel_error"])
    extra = df.groupby(_BY, sort=True).agg(
        patches=("patch", "size"), hole_coverage=("hole_coverage", "median"),
        cells_per_hole=("n_original", "median"), density_abs_error_median=("density_abs_error", "median"),
        size_abs_error_median=("size_abs_error", "median"), top1_agreement=("top1", "mean"),
        top2_agreement=("top2", "mean"), seconds_per_patch=("seconds", "mean")).reset_index()
    pooled = pooled_bias(df, _BY)[[*_BY, "density_bias", "size_bias"]]
    out = extra.merge(stats, on=_BY).merge(pooled, on=_BY)
    order = {m: i for i, m in enumerate(dict.fromkeys(per_patch["method"]))}
    return out.sort_values(["method", "bin"], key=lambda c: c.map(order) if c.name == "method" else c,
                           ignore_index=True)


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo * 100:g}–{hi * 100:g}%"


def _per_method(ax: Any, df: pd.DataFrame, col: str, scale: float = 100.0, band: Mapping[str, Any] | None = None) -> None:
    for method, g in df.groupby("method", sort=False):
        x = g["hole_coverage"] * 100
        ax.plot(x, g[col] * scale, marker="o", label=method, lw=2 if method == "ddpm" else 1.2)
        if band is not None:
            lo, hi = band[method]
            ax.fill_between(x, lo * scale, hi * scale, alpha=0.12)
    ax.set_xlabel("hole coverage (% of the patch)")
    ax.grid(alpha=0.3)


def write_figures(per_patch: pd.DataFrame, fcd: pd.DataFrame, out_dir: Path) -> None:
    """``cells.png`` (Figure 4), ``agreement.png`` (Figure 5) and ``fcd.png`` (Figure 3) in ``out_dir``;
    the last two only when a classifier judged the patches (``fcd`` not empty)."""
    summary = summary_table(per_patch)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, stat, title in ((axes[0], "density", "cell density"), (axes[1], "size", "mean cell size")):
        q = (per_patch.assign(e=per_patch[f"{stat}_rel_error"].abs()).groupby(["method", "bin"])["e"]
             .quantile([0.25, 0.75]).unstack())
        band = {m: (q.loc[m][0.25].to_numpy(), q.loc[m][0.75].to_numpy()) for m in summary["method"].unique()}
        _per_method(ax, summary, f"{stat}_abs_error_median", band=band)
        ax.axhline(PAPER[stat] * 100, color="k", ls="--", lw=1, label=f"paper: {PAPER[stat]:.1%}")
        ax.set_yscale("log")
        ax.set_ylabel(f"median |relative error| of {title} (%)")
        ax.set_title(f"{title} in the repaired region (band: quartiles)")
    axes[0].legend(fontsize=8)
    fig.savefig(out_dir / "cells.png", dpi=110)
    plt.close(fig)
    if fcd.empty:
        return

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True, sharey=True)
    for ax, k in zip(axes, (1, 2), strict=True):
        _per_method(ax, summary, f"top{k}_agreement")
        ax.axhline(PAPER[f"top{k}"] * 100, color="k", ls="--", lw=1, label=f"paper: > {PAPER[f'top{k}']:.0%}")
        ax.set_title(f"top-{k} agreement of the area classifier, original vs repaired")
        ax.set_ylabel("patches (%)")
    axes[0].legend(fontsize=8)
    fig.savefig(out_dir / "agreement.png", dpi=110)
    plt.close(fig)

    pert = fcd[fcd["kind"] == "perturbation"]
    names = list(dict.fromkeys(pert["name"]))
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4 * max(len(names), 1), 3.8), constrained_layout=True,
                             squeeze=False)
    ref = fcd.loc[fcd["kind"] == "reference", "fcd"]
    methods = fcd[fcd["kind"] == "method"]
    for ax, name in zip(axes[0], names or ["(no perturbations)"], strict=True):
        g = pert[pert["name"] == name]
        ax.plot(g["level"], g["fcd"], marker="o", color="k", label="perturbed originals")
        if len(ref):
            ax.axhline(float(ref.iat[0]), color="grey", ls=":", label="reference originals")
        for row in methods.itertuples():
            ax.axhline(row.fcd, ls="--", lw=1, color=f"C{list(methods['name']).index(row.name)}", label=row.name)
        ax.set_title(name)
        ax.set_xlabel("level")
        ax.set_yscale("symlog", linthresh=max(float(fcd["fcd"].replace(0, np.nan).min() or 1e-6), 1e-9))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("FCD vs original patches")
    axes[0][0].legend(fontsize=7)
    fig.savefig(out_dir / "fcd.png", dpi=110)
    plt.close(fig)


def plot_examples(patches: Sequence[Any], holes: Sequence[tuple[int, np.ndarray]], repaired: Mapping[str, np.ndarray],
                  methods: Sequence[str], path: Path) -> None:
    """One patch per coverage bin: original, hole (red), then each method's repair."""
    first = {}
    for i, (b, _) in enumerate(holes):
        first.setdefault(b, i)
    rows = list(first.values())
    cols = 2 + len(methods)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.3 * cols, 2.3 * len(rows)), squeeze=False,
                             constrained_layout=True)
    for r, i in enumerate(rows):
        img = patches[i].image
        shown = np.repeat(img[..., None], 3, axis=2)
        shown[holes[i][1]] = (shown[holes[i][1]] * 0.35 + np.array([255, 0, 0]) * 0.65).astype(np.uint8)
        panels = [("original", img), (f"hole {holes[i][1].mean():.0%}", shown),
                  *((m, repaired[m][i]) for m in methods)]
        for c, (title, a) in enumerate(panels):
            axes[r][c].imshow(a, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0 or c == 1:
                axes[r][c].set_title(title, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pct(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _pm(mean: float, sd: float) -> str:
    return "–" if math.isnan(mean) else f"{mean:+.1%} ± {sd:.1%}" if not math.isnan(sd) else f"{mean:+.1%}"


def _classifier_line(card: Mapping[str, Any] | None) -> str:
    if card is None:
        return "- no classifier (evaluate.classifier: null): top-1 / top-2 agreement and FCD not measured"
    return (f"- classifier `{card['name']}` ({len(card['classes'])} areas, {card['feature_dim']}-d features, "
            f"held-out accuracy {_pct(card['held_out_accuracy'])})")


def run_bins_note(settings: dict[str, Any]) -> str:
    """`` (only bins 0, 2 of the draw)`` when ``run_bins`` kept only some bins' patches, else nothing."""
    kept = settings.get("run_bins")
    return "" if kept is None else f" (only bins {', '.join(map(str, kept))} of the draw)"


def write_markdown(run: Mapping[str, Any], summary: pd.DataFrame, fcd: pd.DataFrame, path: Path) -> None:
    """A one-page summary: settings, the table per method and bin, FCDs, the figures."""
    s = run["settings"]
    t = run.get("ddpm_timing") or {}
    lines = [
        "# cytopaint evaluation (Kropp et al., section 3.3 protocol)", "",
        f"- model `{run['model']['name']}` (sha256 {run['model']['sha256'][:12]}…, {run['model']['pixel_size_um']:g} µm/px, "
        f"{run['model']['tile_size']} px tiles); sampler {s['repaint']}",
        _classifier_line(run["classifier"]),
        f"- {run['patches']} patches of {run['patch_px']} px ({s['patch_um']:g} µm) from {len(run['sections'])} held-out "
        f"sections in `{s['sections']}`, {s['patches_per_bin']} per coverage bin{run_bins_note(s)}, "
        f"{run['reference_patches']} disjoint "
        f"reference patches; repaired region = hole dilated by {run['margin_px']} px; seed {s['seed']}",
        f"- device {run['device']}{' (' + run['gpu'] + ')' if run.get('gpu') else ''}; code {run['code_version']}; "
        f"{run['seconds']:g} s in all",
    ]
    if t:
        lines.append(f"- DDPM: {t['tiles']} tiles, {t['nfe_per_tile']} network evaluations per tile, sampling "
                     f"{t['sample_s']:.1f} s ({t['sample_s'] / max(t['tiles'], 1):.3f} s per tile)")
    lines += ["", "## Cell statistics and classifier agreement per coverage bin", "",
              "|e| = median absolute relative error per patch; bias = pooled over all cells of the bin. "
              f"Paper: |e| density < {PAPER['density']:.1%}, size < {PAPER['size']:.1%}, top-1 > "
              f"{PAPER['top1']:.0%}, top-2 > {PAPER['top2']:.0%}.", "",
              "| method | coverage | patches | cells per hole | density \\|e\\| | density e mean ± sd | density bias | "
              "size \\|e\\| | size e mean ± sd | size bias | top-1 | top-2 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.method} | {_bin_label(r.bin_lo, r.bin_hi)} | {r.patches} | {r.cells_per_hole:g} | "
                     f"{_pct(r.density_abs_error_median)} | {_pm(r.density_rel_error_mean, r.density_rel_error_sd)} | "
                     f"{_pct(r.density_bias)} | {_pct(r.size_abs_error_median)} | "
                     f"{_pm(r.size_rel_error_mean, r.size_rel_error_sd)} | {_pct(r.size_bias)} | "
                     f"{_pct(r.top1_agreement)} | {_pct(r.top2_agreement)} |")
    lines += ["", "## Fréchet distance in the classifier's feature space (FCD)", "",
              f"Paper: repaired vs original {PAPER['fcd_repaired']}, two sets of originals {PAPER['fcd_reference']} "
              "(in its classifier's 2048-d space; values here are in this classifier's space and not comparable "
              "in absolute terms).", "", "| set vs originals | level | FCD |", "|---|---|---|"]
    for r in fcd.itertuples():
        name = "reference originals" if r.kind == "reference" else r.name
        level = "" if r.kind != "perturbation" else f"{r.level:g}"
        lines.append(f"| {name} | {level} | {r.fcd:.4g} |")
    if fcd.empty:
        lines.append("| (no classifier: not measured) | | |")
    lines += ["", "![cell statistics](cells.png)", ""]
    if not fcd.empty:
        lines += ["![classifier agreement](agreement.png)", "", "![FCD](fcd.png)", ""]
    lines += ["![examples](examples.png)", ""]
    path.write_text("\n".join(lines))
