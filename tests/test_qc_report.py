"""Section QC on a really repaired section: metrics.tsv, summary.json, and a self-contained report.html."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, make_section, write_sections_table
from PIL import Image

from cytopaint.io import volume
from cytopaint.models import package as modelpkg

from cytopaint.plan.table import read_plan
from cytopaint.blend.stage import blend_section
from cytopaint.cli import main
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.diffusion.unet import UNet
from cytopaint.plan.stage import TilingConfig, plan_section, read_plan_dir
from cytopaint.geometry import Box
from cytopaint.plan.ownership import core_box
from cytopaint.qc.measure import DETECTION_CONTEXT_UM, SectionWindows, measure_tile
from cytopaint.qc.metrics import METRIC_COLUMNS, QCSettings
from cytopaint.qc.stage import qc_section
from cytopaint.plan.ownership import batch_dependencies
from cytopaint.repaint.stage import RepaintConfig, run_batch
from cytopaint.plan.section import Section

FAST = RepaintConfig(jump_length=1, jump_n_sample=1, steps=2)


def tiny_model(path: Path) -> str:
    torch.manual_seed(0)
    net = UNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    modelpkg.save(path, net, name="tiny", diffusion=DiffusionConfig(steps=20), pixel_size_um=1.0,
                  training={"command": "test", "data": [], "seed": 0, "code_version": "test"})
    return str(path)


def repaint_all(section: Section, plan_dir: Path, model: str, out_dir: Path) -> list[Path]:
    """Run every batch of a plan (earlier waves first); returns the batch files."""
    plan, summary = read_plan_dir(plan_dir)
    deps = batch_dependencies(plan)
    files = {}
    for b in summary["batches"]:
        files[b] = out_dir / f"batch_{b}.npz"
        run_batch(section.planned(summary), plan, b, [files[d] for d in deps[b]], model, FAST, files[b],
                  progress=False)
    return list(files.values())


def build_section(root: Path, section: str = "s0", holes=((20, 26, 10, 12),), model: str | None = None) -> dict:
    """A 64 x 64 px section, planned, repainted with a tiny model and blended, as the workflow lays it out.

    The input store is made once: building again in the same ``root`` repeats the run on the same inputs.
    """
    root.mkdir(parents=True, exist_ok=True)
    model = model or tiny_model(root / "model")
    image = root / f"{section}.ome.zarr"
    if not image.exists():  # a second run on the same inputs
        make_section(image, (64, 64), seed=5, holes=list(holes))
    sections = write_sections_table(root / "sections.tsv",
                                    [(section, f"{section}.ome.zarr", f"{section}.ome.zarr#labels/artifacts")])
    mask = f"{image}#labels/artifacts"
    out = root / "results" / "sections" / section
    plan_section(Section(section, str(image), mask), model, TilingConfig(margin_um=2, min_known=0.2, max_batch=2), None,
                 out / "plan")
    batches = repaint_all(Section(section, str(image), mask), out / "plan", model, out / "batches")
    receipt = blend_section(str(image), None, batches, out / "repaired.ome.zarr")
    (out / "blend.json").write_text(json.dumps({**receipt, "section": section}))
    return {"root": root, "section": section, "image": str(image), "mask": mask, "sections": sections, "out": out,
            "model": model, "batches": batches, "receipt": receipt}


def run_qc(b: dict, out_dir: Path | None = None, settings: QCSettings | None = None) -> dict:
    return qc_section(Section(b["section"], b["image"], b["mask"]), b["out"] / "plan", b["out"] / "blend.json",
                      out_dir or b["out"] / "qc", settings, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    b = build_section(tmp_path_factory.mktemp("qc"))
    b["summary"] = run_qc(b)
    return b


def test_metrics_cover_every_tile_of_the_plan(built: dict) -> None:
    plan = read_plan(built["out"] / "plan" / "tiles.tsv")
    m = pd.read_csv(built["out"] / "qc" / "metrics.tsv", sep="\t", keep_default_na=False, na_values=[""])
    assert m["tile"].tolist() == plan["tile"].tolist() and len(m) >= 4
    assert set(METRIC_COLUMNS) <= set(m.columns) and {"severity", "flags", "flag_reasons", "review"} <= set(m.columns)
    assert m["repaired_px"].sum() == built["receipt"]["pixels_repaired"]
    assert (m["seed"] == plan["seed"]).all() and (m["review"] == "unreviewed").all()
    s = built["summary"]
    assert s["tiles_repaired"] == (m["repaired_px"] > 0).sum() and s["flagged_tiles"] == (m["flags"].notna()).sum()
    assert s["repaired_um2"] == built["receipt"]["pixels_repaired"] and 0 < s["repaired_pct_tissue"] < 100
    assert sum(s["histograms"]["seam"]) == m["seam"].notna().sum()
    assert json.loads((built["out"] / "qc" / "summary.json").read_text())["section"] == "s0"


def _attrs(page: str, name: str) -> list[str]:
    return re.findall(rf'\s{name}="([^"]*)"', page)


def test_report_is_self_contained_with_every_tile(built: dict) -> None:
    page = (built["out"] / "qc" / "report.html").read_text()
    srcs = _attrs(page, "src")
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).verify()
    assert not re.search(r"<link|<script\s+src|@import|url\(", page)
    hrefs = _attrs(page, "href")
    assert all(h.startswith("#tile-") or h in ("metrics.tsv", "../manifest.json") for h in hrefs)
    plan = read_plan(built["out"] / "plan" / "tiles.tsv")
    for tile in plan["tile"]:
        assert f'id="tile-{tile}"' in page and f'href="#tile-{tile}"' in page
    assert len(srcs) == 2 + 5 * len(plan)  # overview (repaired, input) + 5 views per tile
    bias = json.loads((Path(__file__).parents[1] / "src/cytopaint/qc/detector_bias.json").read_text())
    assert f'counts {bias["by_pixel_size"]["1"]["count_ratio"]:.2f}×' in page
    pooled = built["summary"]["pooled"]
    if built["summary"]["section_flags"]:
        assert f'<b>Section flag</b> — the repaired regions hold {pooled["cells_repaired"]} cells' in page
    else:
        assert f'<b>All repairs together</b> — {pooled["cells_repaired"]} cells where the rings predict' in page


def test_panels_are_capped_flagged_first(built: dict, tmp_path: Path) -> None:
    run_qc(built, tmp_path, QCSettings(max_tile_panels=2))
    page = (tmp_path / "report.html").read_text()
    m = pd.read_csv(tmp_path / "metrics.tsv", sep="\t", keep_default_na=False)
    assert page.count('<section class="card') == 2 and f"{len(m) - 2} further tiles" in page
    worst = m.sort_values("severity", ascending=False)
    first = worst[worst["flags"] != ""]["tile"].iloc[0] if (m["flags"] != "").any() else worst["tile"].iloc[0]
    assert page.index(f'id="tile-{first}"') < page.index("further tiles")


def test_report_shows_review_status_and_seed_lineage(built: dict, tmp_path: Path) -> None:
    plan_dir = tmp_path / "plan"
    shutil.copytree(built["out"] / "plan", plan_dir)
    info = json.loads((plan_dir / "plan.json").read_text())
    tile = read_plan(plan_dir / "tiles.tsv").iloc[0]
    info["review"] = {"table": "review.tsv", "sha256": "0" * 64, "tiles": {tile.tile: {
        "status": "regenerated", "round": 1, "seeds": [int(tile.seed), 12345],
        "decisions": [{"decision": "reject", "note": "blurred cells", "line": 2}]}}}
    (plan_dir / "plan.json").write_text(json.dumps(info))
    qc_section(Section("s0", built["image"], built["mask"]), plan_dir, built["out"] / "blend.json", tmp_path / "qc",
               progress=False)
    page = (tmp_path / "qc" / "report.html").read_text()
    card = page[page.index(f'id="tile-{tile.tile}"'):]
    card = card[:card.index("</section>")]
    assert "regenerated · round 1" in card and "reject: blurred cells" in card and f"{tile.seed} → 12345" in card
    m = pd.read_csv(tmp_path / "qc" / "metrics.tsv", sep="\t")
    assert m.loc[m.tile == tile.tile, "review"].item() == "regenerated"
    assert json.loads((tmp_path / "qc" / "summary.json").read_text())["review"]["regenerated"] == 1


def test_a_section_without_artifacts(tmp_path: Path, built: dict) -> None:
    b = build_section(tmp_path, "clean", holes=(), model=built["model"])
    s = run_qc(b)
    assert s["tiles_repaired"] == 0 and s["pixels_repaired"] == 0 and s["repaired_pct_tissue"] == 0
    assert "nothing was repaired" in (b["out"] / "qc" / "report.html").read_text()
    repaired = b["out"] / "repaired.ome.zarr"
    assert np.array_equal(volume.open_level(repaired, 0), volume.open_level(b["image"], 0))  # a bit-identical copy


def test_cli_qc_and_its_errors(built: dict, tmp_path: Path, capsys) -> None:
    args = ["qc", "--sections", str(built["sections"]), "--plan-dir", str(built["out"] / "plan"), "--receipt",
            str(built["out"] / "blend.json"), "--out-dir", str(tmp_path), "--quiet"]
    assert main([*args, "--section", "s0", "--qc", '{"thresholds": {"seam": 100}}']) == 0
    assert "flagged" in capsys.readouterr().err and (tmp_path / "report.html").is_file()
    assert main([*args, "--section", "nope"]) == 2
    assert "section 'nope' is not in" in capsys.readouterr().err
    assert main([*args, "--section", "s0", "--qc", '{"seam": 2}']) == 2
    assert "unknown qc setting" in capsys.readouterr().err


def test_tiles_are_measured_on_a_window_around_the_pixels_they_own(built: dict, monkeypatch) -> None:
    """The window is the bounding box of the tile's repaired pixels in its core, widened by the ring and the
    detector's context (not the whole core): a crystal in a large core costs a window of its own size."""
    sec = SectionWindows(Section(built["section"], built["image"], built["mask"]), str(built["out"] / "repaired.ome.zarr"))
    repaired = volume.read_region(sec.label_ref, 0, 0, *sec.info.plane_shape) > 0
    settings = QCSettings()
    pad = math.ceil((settings.ring_gap_um + settings.ring_width_um + DETECTION_CONTEXT_UM) / sec.ps)
    seen: list[Box] = []
    measured = SectionWindows.tile_arrays
    monkeypatch.setattr(SectionWindows, "tile_arrays", lambda self, tile, box: seen.append(box) or measured(self, tile, box))
    smaller = 0
    for tile in read_plan(built["out"] / "plan" / "tiles.tsv").itertuples(index=False):
        core = core_box(tile)
        ys, xs = np.nonzero(repaired[core.slices()])
        owned = Box(core.y0 + ys.min(), core.x0 + xs.min(), core.y0 + ys.max() + 1, core.x0 + xs.max() + 1) if len(ys) else core
        assert sec.owned_box(tile) == owned
        smaller += owned != core
        seen.clear()
        measure_tile(sec, tile, settings)
        y1, x1 = sec.info.plane_shape
        assert seen[0] == Box(max(owned.y0 - pad, 0), max(owned.x0 - pad, 0), min(owned.y1 + pad, y1), min(owned.x1 + pad, x1))
    assert smaller  # some tile owns less than its core, so the window differs from the core's
