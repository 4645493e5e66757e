"""Where the DDPM's repairs lose fidelity: one cause removed at a time, on the evaluation's patches.

The patches, holes, regions and cell statistics are those of `cytopaint.evaluation.harness`
(`draw`, `compare_cells`); only the way the region is filled changes between conditions:

- ``workflow``: the evaluation's DDPM repair, through the workflow's tiles, cores and outside-in
  waves (`repair_patches`), with the configured sampler;
- ``one window``: the whole patch inpainted in one sampler call, the region unknown, the rest
  known: no tiles, no waves (patches must then be the model's tile size);
- ``one window, NAME``: the same with another sampler setting (e.g. the paper's 256 steps x 5);
- ``context R µm``: one window that knows only the pixels within R µm of the region (the rest is
  generated too, then discarded): how much of the window's context the repair draws on, i.e. whether
  a larger tile could help (the context cause);
- ``unconditional``: the model's own tissue, nothing known, pasted into the region.

Pooled biases (`pooled_bias`) of the conditions telescope into shares of the workflow's bias:
the model (unconditional), conditioning on the known pixels (one window - unconditional), the
tiling (workflow - one window); the sampler's share is one window - one window, NAME.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..diffusion.sampling import SamplerSettings, make_generators, sample
from ..models import package as modelpkg
from ..models.normalization import normalization_for
from ..morphology import dilate
from ..repaint.stage import pick_device
from ..runtime import code_version_string
from . import report
from .ddpm import repair_patches
from .harness import EvaluationSettings, draw, score_all, settings_record
from .metrics import pooled_bias

WORKFLOW, WINDOW, UNCONDITIONAL = "workflow", "one window", "unconditional"


def window_seeds(seed: int, n: int) -> list[int]:
    """One sampler seed per patch, from the evaluation seed (the same in every condition)."""
    return [int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0]) for i in range(n)]


def check_window(model: modelpkg.PackagedModel, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless patches of ``shape`` are one tile of ``model``."""
    if tuple(shape) != (model.tile_size, model.tile_size):
        raise ValueError(f"one-window repairs need patches of the model's {model.tile_size} px tiles, got "
                         f"{shape[0]} px: set evaluate.patch_um to {model.tile_size} x the model's pixel size")


def inpaint_windows(model: modelpkg.PackagedModel, images: np.ndarray, unknown: np.ndarray,
                    settings: SamplerSettings, seeds: list[int], device: torch.device,
                    batch_size: int) -> np.ndarray:
    """Each image (N, T, T, uint8) inpainted in one window where ``unknown`` (N, T, T, bool); other pixels unchanged."""
    check_window(model, images.shape[1:])
    norm = normalization_for(images.dtype, model.normalization, None)
    out = images.copy()
    for i in range(0, len(images), batch_size):
        part = slice(i, i + batch_size)
        x = torch.from_numpy(norm.to_model(images[part]))[:, None].to(device)
        m = torch.from_numpy(unknown[part])[:, None].to(device)
        result = sample(model.forward, model.diffusion(), x, m, make_generators(seeds[part], device), settings)
        generated = norm.from_model(result.images[:, 0].float().cpu().numpy())
        out[part][unknown[part]] = generated[unknown[part]]
    return out


def shares(table: pd.DataFrame, reference: str | None) -> list[dict[str, Any]]:
    """Each cause's share of the workflow's pooled density and size bias (percentage points)."""
    bias = table.set_index("condition")[["density_bias", "size_bias"]]

    def diff(a: str, b: str | None) -> dict[str, float]:
        base = bias.loc[b] if b else 0.0
        return {k: float(v) for k, v in (bias.loc[a] - base).items()}

    rows = [{"cause": "the model's own tissue (unconditional)", **diff(UNCONDITIONAL, None)},
            {"cause": "conditioning on the known pixels (one window - unconditional)", **diff(WINDOW, UNCONDITIONAL)},
            {"cause": "tiles, cores and waves (workflow - one window)", **diff(WORKFLOW, WINDOW)},
            {"cause": "total: the workflow", **diff(WORKFLOW, None)}]
    if reference:
        rows.append({"cause": f"the sampler (one window - {reference})", **diff(WINDOW, reference)})
    return rows


def context_condition(radius_um: float) -> str:
    """The name of the one-window condition that knows only the pixels within ``radius_um`` of the region."""
    return f"context {radius_um:g} µm"


def without_far_context(regions: np.ndarray, radius_px: float) -> np.ndarray:
    """The unknown pixels of a window that knows only a ring of ``radius_px`` around each region (N, H, W)."""
    return np.stack([r | ~dilate(r, radius_px) for r in regions])


def diagnose(settings: EvaluationSettings, references: Mapping[str, SamplerSettings], out_dir: Path,
             progress: bool = True, context_um: Sequence[float] = ()) -> dict[str, Any]:
    """Score every condition on the same patches; write patches.tsv, diagnosis.json, examples.png and the report
    (`write_report`). ``context_um``: radii of the context conditions (none by default)."""
    if any(not r > 0 for r in context_um):
        raise ValueError(f"context radii must be > 0 µm, got {list(context_um)}")
    version = code_version_string()  # of the code that runs, read before a long run
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    d = draw(settings)
    originals = np.stack([p.image for p in d.patches])
    regions = np.stack(d.regions)
    device = pick_device(settings.repaint.device)
    model = modelpkg.load(settings.model, device=device)
    check_window(model, originals.shape[1:])  # before the workflow's repair, not after it
    seeds = window_seeds(settings.seed, len(originals))
    repaired: dict[str, np.ndarray] = {}
    workflow, _ = repair_patches(list(originals), [h for _, h in d.holes], d.pixel_size_um, settings.model,
                                 settings.tiling, settings.repaint, out_dir / "work", settings.batch_size, progress,
                                 names=d.names)
    repaired[WORKFLOW] = np.stack([r.image for r in workflow])
    shutil.rmtree(out_dir / "work")
    samplers = {WINDOW: settings.repaint.sampler, **{f"{WINDOW}, {k}": v for k, v in references.items()}}
    for name, sampler in samplers.items():
        repaired[name] = inpaint_windows(model, originals, regions, sampler, seeds, device, settings.batch_size)
    for radius in context_um:
        unknown = without_far_context(regions, radius / d.pixel_size_um)
        ring = inpaint_windows(model, originals, unknown, settings.repaint.sampler, seeds, device, settings.batch_size)
        repaired[context_condition(radius)] = np.where(regions, ring, originals)
    repaired[UNCONDITIONAL] = inpaint_windows(model, originals, np.ones_like(regions), settings.repaint.sampler,
                                              seeds, device, settings.batch_size)
    repaired[UNCONDITIONAL] = np.where(regions, repaired[UNCONDITIONAL], originals)
    conditions = list(repaired)
    n = len(originals)
    jobs = [(c, originals[i], regions[i], repaired[c][i], d.pixel_size_um) for c in conditions for i in range(n)]
    scored = score_all(jobs, settings.workers, progress)
    rows = []
    for k, c in enumerate(conditions):
        for i, p in enumerate(d.patches):
            region = regions[i]
            rows.append({"condition": c, "patch": p.patch, "section": p.section, "bin": d.holes[i][0],
                         "region_coverage": float(region.mean()), **scored[k * n + i][1],
                         "grey_original": float(originals[i][region].mean()),
                         "grey_repaired": float(repaired[c][i][region].mean())})
    pd.DataFrame(rows).drop(columns="seconds").to_csv(out_dir / "patches.tsv", sep="\t", index=False)
    run = {"settings": settings_record(settings),
           "conditions": conditions, "references": {k: asdict(v) for k, v in references.items()},
           "context_um": [float(r) for r in context_um], "seeds": seeds,
           "model": {"name": model.card["name"], "sha256": model.weights_sha256}, "device": str(device),
           "patches": n, "code_version": version}
    (out_dir / "diagnosis.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    report.plot_examples(d.patches, d.holes, repaired, conditions, out_dir / "examples.png")
    return write_report(out_dir)


def summarise(per_patch: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by``: pooled density and size bias, median |relative error| and the region's grey-level bias."""
    out = pooled_bias(per_patch, by).set_index(by)
    groups = per_patch.assign(density_abs=per_patch["density_rel_error"].abs(),
                              size_abs=per_patch["size_rel_error"].abs()).groupby(by)
    out["density_abs_error_median"] = groups["density_abs"].median()
    out["size_abs_error_median"] = groups["size_abs"].median()
    grey = groups[["grey_original", "grey_repaired"]].mean()
    out["grey_bias"] = grey["grey_repaired"] / grey["grey_original"] - 1
    return out.reset_index()


def write_report(out_dir: Path) -> dict[str, Any]:
    """summary.tsv, bins.tsv, shares.tsv and diagnosis.md from a diagnosis's patches.tsv and diagnosis.json."""
    out_dir = Path(out_dir)
    run = json.loads((out_dir / "diagnosis.json").read_text())
    per_patch = pd.read_csv(out_dir / "patches.tsv", sep="\t")
    order = {c: i for i, c in enumerate(run["conditions"])}
    summary = summarise(per_patch, ["condition"]).sort_values("condition", key=lambda c: c.map(order))
    bins = summarise(per_patch, ["condition", "bin"]).sort_values(["condition", "bin"],
                                                                  key=lambda c: c.map(order) if c.name == "condition" else c)
    reference = next((c for c in run["conditions"] if c.startswith(f"{WINDOW}, ")), None)
    share = pd.DataFrame(shares(summary, reference))
    summary.to_csv(out_dir / "summary.tsv", sep="\t", index=False)
    bins.to_csv(out_dir / "bins.tsv", sep="\t", index=False)
    share.to_csv(out_dir / "shares.tsv", sep="\t", index=False)
    (out_dir / "diagnosis.md").write_text(markdown(run, summary, bins, share))
    return {"run": run, "summary": summary.reset_index(drop=True), "bins": bins, "shares": share}


def _pct(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:+.1%}"


def markdown(run: Mapping[str, Any], summary: pd.DataFrame, bins: pd.DataFrame, share: pd.DataFrame) -> str:
    """The diagnosis as a page: the conditions side by side, then each cause's share."""
    s = run["settings"]
    lines = [f"# Where fidelity is lost: {run['patches']} patches of {s['patch_um']:g} µm, bins {s['bins']}",
             "",
             f"- model `{run['model']['name']}` ({run['model']['sha256'][:12]}…), device {run['device']}, code "
             f"{run['code_version']}; sampler {s['repaint']['steps']}:{s['repaint']['jump_length']}:"
             f"{s['repaint']['jump_n_sample']} ({s['repaint']['method']}), evaluation seed {s['seed']}",
             "- the same patches, regions (hole + margin) and cell detector as `cytopaint evaluate`; biases pooled "
             "over all cells of all patches; grey = mean grey level of the region",
             "",
             "| condition | cells original | cells repaired | density bias | size bias | density \\|e\\| median "
             "| size \\|e\\| median | grey bias |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.condition} | {int(r.n_original)} | {int(r.n_repaired)} | {_pct(r.density_bias)} | "
                     f"{_pct(r.size_bias)} | {r.density_abs_error_median:.1%} | {r.size_abs_error_median:.1%} | "
                     f"{_pct(r.grey_bias)} |")
    edges = s["bins"]
    lines += ["", "Pooled density bias per coverage bin (cells in the bin's patches, original → repaired):", "",
              "| condition | " + " | ".join(f"hole {lo:.0%}–{hi:.0%}" for lo, hi in edges) + " |",
              "|---|" + "---|" * len(edges)]
    for condition, rows in bins.groupby("condition", sort=False):
        cells = {int(r.bin): f"{_pct(r.density_bias)} ({int(r.n_original)} → {int(r.n_repaired)})"
                 for r in rows.itertuples()}
        lines.append(f"| {condition} | " + " | ".join(cells.get(b, "–") for b in range(len(edges))) + " |")
    lines += ["", "| cause | density bias, points | size bias, points |", "|---|---|---|"]
    for r in share.itertuples():
        lines.append(f"| {r.cause} | {r.density_bias * 100:+.1f} | {r.size_bias * 100:+.1f} |")
    lines += ["", "![original, hole, and each condition](examples.png)", ""]
    return "\n".join(lines)
