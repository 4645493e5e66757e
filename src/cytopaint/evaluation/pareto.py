"""``cytopaint pareto``: sampler settings judged side by side by the evaluation, and their Pareto front.

Every setting runs `cytopaint.evaluation.harness.evaluate` (DDPM only, no perturbations) with the
same settings otherwise: the same patches, masks, tiling and tile seeds, so settings differ only
in their sampler. The first setting is the reference (the paper's: 256 steps, each repeated 5
times). Per setting: network evaluations per tile as the sampler counted them, seconds, the
median |relative error| of cell density and size over all patches and in the worst coverage bin,
the pooled biases, the classifier's top-1 / top-2 agreement and FCD (when a classifier judges),
their differences to the reference in percentage points, whether the setting is on the Pareto
front (no other setting has at most its NFE and errors, and less of one), and whether it meets
the reference's fidelity at >= 10x fewer NFE (errors within 1 point, agreement within 2).
Medians of a few dozen patches move by points from one patch, so each setting is also compared
with the reference patch by patch (`paired`): the mean difference of |e| and of e over the patches
both repaired, with its standard error, which says whether a difference is more than the noise.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..diffusion.sampling import SamplerSettings  # noqa: E402
from ..io.atomic import write_text  # noqa: E402
from .harness import DDPM, EvaluationSettings, evaluate, settings_record  # noqa: E402
from .metrics import pooled_bias  # noqa: E402
from .report import run_bins_note  # noqa: E402

#: Fidelity within these many percentage points of the reference counts as equal (issue: 1 and 2 points).
ERROR_POINTS, AGREEMENT_POINTS, NFE_FACTOR = 1.0, 2.0, 10.0
#: Patches per bin below which the verdict is flagged as within the noise (the fidelity issue asks >= 12).
MIN_PATCHES_PER_BIN = 12
#: What the front minimises (agreement enters negated, when measured).
_FRONT = ("nfe", "density_abs_error", "size_abs_error")


def setting_row(name: str, sampler: SamplerSettings, run: dict[str, Any], per_patch: pd.DataFrame,
                fcd: pd.DataFrame) -> dict[str, Any]:
    """One setting's figures from its evaluation (``run``: evaluation.json; per-patch table; FCD table)."""
    df = per_patch[per_patch["method"] == DDPM].assign(
        density_abs=lambda d: d["density_rel_error"].abs(), size_abs=lambda d: d["size_rel_error"].abs())
    by_bin = df.groupby("bin")[["density_abs", "size_abs"]].median()
    bias = pooled_bias(df, ["method"]).iloc[0]
    agree = {k: pd.to_numeric(df[f"{k}_agree"], errors="coerce").astype(float).mean() for k in ("top1", "top2")}
    fcd_of = dict(zip(fcd["name"], fcd["fcd"], strict=True)) if len(fcd) else {}
    timing = run["ddpm_timing"]
    return {"setting": name, **asdict(sampler), "nfe": int(timing["nfe_per_tile"]),
            "patches": len(df), "tiles": int(timing["tiles"]), "sample_s": float(timing["sample_s"]),
            "s_per_tile": float(timing["sample_s"]) / max(int(timing["tiles"]), 1),
            "density_abs_error": float(df["density_abs"].median()),
            "density_abs_error_worst_bin": float(by_bin["density_abs"].max()),
            "size_abs_error": float(df["size_abs"].median()),
            "size_abs_error_worst_bin": float(by_bin["size_abs"].max()),
            "density_bias": float(bias["density_bias"]), "size_bias": float(bias["size_bias"]),
            "top1": float(agree["top1"]), "top2": float(agree["top2"]),
            "fcd": float(fcd_of.get(DDPM, math.nan)), "fcd_reference": float(fcd_of.get("originals", math.nan))}


def paired(per_patch: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each setting against the first, patch by patch: for cell density and size, the mean difference of |e|
    (``paired_{kind}_abs_points``, negative: closer to the originals) and of the signed e
    (``paired_{kind}_points``), in percentage points, with their standard errors (``..._se``) over the
    ``paired_{kind}_patches`` patches that both evaluations measured."""
    frames = {name: p[p["method"] == DDPM].set_index("patch") for name, p in per_patch.items()}
    ref = next(iter(frames.values()))
    rows = []
    for name, df in frames.items():
        row: dict[str, Any] = {"setting": name}
        for kind in ("density", "size"):
            a, b = ref[f"{kind}_rel_error"], df[f"{kind}_rel_error"].reindex(ref.index)
            both = a.notna() & b.notna()
            a, b = a[both], b[both]
            row[f"paired_{kind}_patches"] = int(both.sum())
            for label, d in (("abs_points", b.abs() - a.abs()), ("points", b - a)):
                row[f"paired_{kind}_{label}"] = 100.0 * d.mean() if len(d) else math.nan
                row[f"paired_{kind}_{label}_se"] = 100.0 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def compare(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The settings' table with differences to the first (the reference), the front and the verdict."""
    table = pd.DataFrame(rows)
    ref = table.iloc[0]
    for col in ("density_abs_error", "size_abs_error", "top1", "top2"):
        table[f"d_{col}_points"] = 100.0 * (table[col] - ref[col])
    table["nfe_ratio"] = ref["nfe"] / table["nfe"]
    agreement_ok = np.all([table[f"d_{k}_points"].isna() | (table[f"d_{k}_points"] >= -AGREEMENT_POINTS)
                           for k in ("top1", "top2")], axis=0)
    table["meets_reference"] = ((table["nfe_ratio"] >= NFE_FACTOR)
                                & (table["d_density_abs_error_points"] <= ERROR_POINTS)
                                & (table["d_size_abs_error_points"] <= ERROR_POINTS) & agreement_ok)
    costs = table[list(_FRONT)].to_numpy(float)
    if table["top1"].notna().all():
        costs = np.column_stack([costs, -table[["top1", "top2"]].to_numpy(float)])
    table["pareto"] = [not any(np.all(o <= c) and np.any(o < c) for o in costs) for c in costs]
    return table


def _finished(settings: EvaluationSettings, out: Path) -> dict[str, Any] | None:
    """The evaluation already in ``out`` if it was made with exactly these settings (a resumed run), else None.

    A setting that a recorded run lacks (one added to the evaluation since) counts as None, its default.
    """
    try:
        run = json.loads((out / "evaluation.json").read_text())
    except (OSError, ValueError):
        return None
    current, recorded = settings_record(settings), run.get("settings") or {}
    same = {**dict.fromkeys(current.keys() - recorded.keys()), **recorded} == current
    return run if same and all((out / f).is_file() for f in ("patches.tsv", "fcd.tsv")) else None


def run_pareto(settings: EvaluationSettings, samplers: dict[str, SamplerSettings], out_dir: Path,
               progress: bool = True) -> pd.DataFrame:
    """Evaluate every sampler setting (the first is the reference) into ``out_dir/NAME/`` and write
    ``pareto.tsv``, ``pareto.json``, ``pareto.md`` and ``pareto.png`` in ``out_dir``. A setting whose
    folder already holds an evaluation with exactly its settings is not run again (an interrupted
    or extended comparison resumes)."""
    if not samplers:
        raise ValueError("no sampler settings to compare")
    out_dir = Path(out_dir)
    rows, runs, per_patch = [], {}, {}
    for name, sampler in samplers.items():
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"setting name {name!r} cannot name a folder")
        one = replace(settings, methods=(DDPM,), perturbations=False,
                      repaint=replace(settings.repaint, **asdict(sampler)))
        run = _finished(one, out_dir / name) or evaluate(one, out_dir / name, progress)
        runs[name] = run
        per_patch[name] = pd.read_csv(out_dir / name / "patches.tsv", sep="\t")
        rows.append(setting_row(name, sampler, run, per_patch[name], pd.read_csv(out_dir / name / "fcd.tsv", sep="\t")))
    table = compare(rows).merge(paired(per_patch), on="setting", how="left", validate="one_to_one")
    first = runs[next(iter(runs))]
    context = {"patches": first["patches"], "patch_px": first["patch_px"], "sections": len(first["sections"]),
               "device": first["device"], "gpu": first["gpu"], "code_version": first["code_version"],
               "classifier": first["classifier"], "model": first["model"],
               "bins": [list(b) for b in settings.bins], "patches_per_bin": settings.patches_per_bin,
               "run_bins": None if settings.run_bins is None else list(settings.run_bins)}
    table.to_csv(out_dir / "pareto.tsv", sep="\t", index=False, float_format="%.6g")
    write_text(out_dir / "pareto.json", json.dumps({**context, "rows": table.to_dict("records")}, indent=1,
                                                    default=str) + "\n")
    write_text(out_dir / "pareto.md", markdown(table, context))
    plot(table, out_dir / "pareto.png")
    return table


def _pct(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.1f}%"


def _pts(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:+.1f}"


def markdown(table: pd.DataFrame, context: dict[str, Any]) -> str:
    """The settings table as Markdown, with what was measured where."""
    clf = context["classifier"]
    judge = ("no classifier: agreement and FCD not measured" if clf is None else
             f"classifier `{clf['name']}`, held-out accuracy {_pct(clf['held_out_accuracy'] or math.nan)}"
             + (" (too weak to tell settings apart by a few points: see the fidelity issue)"
                if (clf["held_out_accuracy"] or 0) < 0.95 else ""))
    device = context["device"] + (f" ({context['gpu']})" if context["gpu"] else "")
    lines = ["# Sampler settings on the same patches, masks and seeds", "",
             f"- {context['patches']} patches of {context['patch_px']} px from {context['sections']} held-out sections, "
             f"{context['patches_per_bin']} per coverage bin {context['bins']}{run_bins_note(context)}; "
             f"model `{context['model']['name']}` ({context['model']['sha256'][:12]}…); device {device}; "
             f"code {context['code_version']}",
             f"- {judge}",
             f"- the first row, `{table['setting'].iat[0]}`, is the reference; Δ in percentage points vs it; "
             f"\"meets\" = >= "
             f"{NFE_FACTOR:g}x fewer NFE, density and size |e| within {ERROR_POINTS:g} point, agreement within "
             f"{AGREEMENT_POINTS:g}",
             *([f"- **only {context['patches_per_bin']} patches per bin**: one patch moves a median by tens of "
                f"points here, so \"front\" and \"meets\" are not evidence; a verdict needs >= "
                f"{MIN_PATCHES_PER_BIN} per bin"] if context["patches_per_bin"] < MIN_PATCHES_PER_BIN else []), "",
             "| setting | method | steps | j | r | resample from | zeta | NFE | s/tile | density \\|e\\| (worst bin) | "
             "Δ | size \\|e\\| (worst bin) | Δ | density bias | size bias | top-1 | top-2 | FCD | front | meets |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(
            f"| {r.setting} | {r.method} | {'all' if pd.isna(r.steps) else int(r.steps)} | {r.jump_length} | "
            f"{r.jump_n_sample} | {r.resample_start:g} | {r.zeta:g} | {r.nfe} | {r.s_per_tile:.3g} | "
            f"{_pct(r.density_abs_error)} ({_pct(r.density_abs_error_worst_bin)}) | "
            f"{_pts(r.d_density_abs_error_points)} | {_pct(r.size_abs_error)} ({_pct(r.size_abs_error_worst_bin)}) | "
            f"{_pts(r.d_size_abs_error_points)} | {_pct(r.density_bias)} | {_pct(r.size_bias)} | {_pct(r.top1)} | "
            f"{_pct(r.top2)} | {'–' if math.isnan(r.fcd) else f'{r.fcd:.3g}'} | {'yes' if r.pareto else ''} | "
            f"{'yes' if r.meets_reference else ''} |")
    lines += ["", "## Patch by patch against the reference", "",
              "Mean difference to the reference over the patches both measured, in percentage points ± its "
              "standard error: of |e| (negative: closer to the originals) and of the signed e (negative: fewer or "
              "smaller cells). * marks a difference beyond two standard errors; one within them is not told apart "
              "from the noise of these patches.", "",
              "| setting | NFE | density \\|e\\| | size \\|e\\| | density e | size e | patches (density, size) |",
              "|---|---|---|---|---|---|---|"]
    for r in table.iloc[1:].itertuples():
        lines.append(f"| {r.setting} | {r.nfe} | {_pm(r.paired_density_abs_points, r.paired_density_abs_points_se)} | "
                     f"{_pm(r.paired_size_abs_points, r.paired_size_abs_points_se)} | "
                     f"{_pm(r.paired_density_points, r.paired_density_points_se)} | "
                     f"{_pm(r.paired_size_points, r.paired_size_points_se)} | "
                     f"{r.paired_density_patches}, {r.paired_size_patches} |")
    lines += ["", "![NFE vs error](pareto.png)", ""]
    return "\n".join(lines)


def _pm(mean: float, se: float) -> str:
    """``mean ± se`` in points, with a star where |mean| exceeds two standard errors."""
    if math.isnan(mean):
        return "–"
    star = " *" if not math.isnan(se) and abs(mean) > 2 * se else ""
    return f"{mean:+.1f} ± {se:.1f}{star}"


def plot(table: pd.DataFrame, path: Path) -> None:
    """NFE (log) against the density and size errors; the front (over all criteria) ringed, the reference's band."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, col, title in ((axes[0], "density_abs_error", "cell density"), (axes[1], "size_abs_error", "cell size")):
        for method, g in table.groupby("method", sort=False):
            ax.scatter(g["nfe"], 100 * g[col], label=method, s=36)
        front = table[table["pareto"]]
        ax.scatter(front["nfe"], 100 * front[col], s=110, facecolors="none", edgecolors="k", lw=1,
                   label="on the Pareto front")
        ref = table.iloc[0]
        ax.axhspan(100 * ref[col] - ERROR_POINTS, 100 * ref[col] + ERROR_POINTS, color="grey", alpha=0.15,
                   label=f"reference ± {ERROR_POINTS:g} point")
        for r in table.itertuples():
            ax.annotate(r.setting, (r.nfe, 100 * getattr(r, col)), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per tile")
        ax.set_ylabel(f"median |relative error| of {title} (%)")
        ax.set_title(f"{title}: NFE vs error, same patches and seeds")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
