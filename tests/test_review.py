"""Review table: parsing and errors, seed lineage of rejected tiles, which batches rerun, the plan step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_section, write_sections_table

from cytopaint.models import package as modelpkg

from cytopaint.plan.seeds import tile_seed
from cytopaint.plan.table import STATUS_INSUFFICIENT, read_plan
from cytopaint.plan.tiling import plan_tiles
from cytopaint.cli import main
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.plan.stage import TilingConfig, plan_section
from cytopaint.plan.review import (HEADER, apply_review, batch_fingerprints, check_sections, read_review, section_params,
                              tile_status)
from cytopaint.plan.section import Section


def _table(tmp_path: Path, rows: list[str], header: str = HEADER + "\treviewer") -> Path:
    path = tmp_path / "review.tsv"
    path.write_text("# decisions, oldest first\n" + header + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def plan() -> pd.DataFrame:
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:30, 10:40] = 1
    mask[50:54, 50:54] = 1
    return plan_tiles(mask, factor=1, shape=(64, 64), tile_size=16, section="s1", seed=7, margin_px=1,
                             min_known=0.2, max_batch=2)


def test_read_review_keeps_rows_in_order_with_notes_and_extra_columns(tmp_path: Path) -> None:
    path = _table(tmp_path, ["s1\tr00001c00002\treject\tghost cells, blurred\tKA", "", "# a comment",
                             "s1\tr00001c00002\tAccept\t\tKA", "s2\tr00000c00000\treject"])
    table = read_review(path)
    assert [(d.section, d.tile, d.decision, d.note, d.line) for d in table.decisions] == [
        ("s1", "r00001c00002", "reject", "ghost cells, blurred", 3),
        ("s1", "r00001c00002", "accept", "", 6),
        ("s2", "r00000c00000", "reject", "", 7)]
    assert table.decisions[0].extra == {"reviewer": "KA"} and len(table.sha256) == 64
    assert [d.line for d in table.for_section("s1")] == [3, 6]
    header_only = _table(tmp_path, [], HEADER)
    assert read_review(header_only).decisions == ()


@pytest.mark.parametrize(("rows", "header", "message"), [
    (["s1\tr00001c00002\tmaybe"], HEADER, r"review.tsv:3: decision 'maybe' is not one of \['accept', 'reject'\]"),
    (["s1\ttile7\treject"], HEADER, r"review.tsv:3: invalid tile id 'tile7'"),
    (["bad id\tr00001c00002\treject"], HEADER, r"review.tsv:3: invalid section id"),
    (["s1\tr00001c00002\treject\tnote\textra"], HEADER, r"review.tsv:3: 5 fields for 4 columns"),
    ([], "section\tdecision", r"review.tsv:2: missing column\(s\) \['tile'\]"),
])
def test_read_review_errors_name_file_and_line(tmp_path: Path, rows: list[str], header: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_review(_table(tmp_path, rows, header))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_review(tmp_path / "missing.tsv")


def test_unknown_sections_are_named(tmp_path: Path) -> None:
    table = read_review(_table(tmp_path, ["s1\tr00001c00002\treject\t\t", "s9\tr00001c00002\treject\t\t"]))
    with pytest.raises(ValueError, match=r"1 row\(s\) name a section that is not in the sections table \(line 4: s9\)"):
        check_sections(table, ["s1", "s2"])
    check_sections(table, ["s1", "s9"])


def test_rejections_reseed_from_the_previous_round(tmp_path: Path, plan) -> None:
    t = plan.iloc[0]
    other = plan.iloc[1]
    table = read_review(_table(tmp_path, [f"s1\t{t.tile}\treject\ttoo dark\t", f"s1\t{t.tile}\treject\tseam\t",
                                          f"s1\t{other.tile}\taccept\tfine\t", f"s2\t{t.tile}\treject\t\t"]))
    out, record = apply_review(plan, table, "s1", 7)
    seeds = [tile_seed(7, "s1", int(t.row), int(t.col), round=k) for k in range(3)]
    assert seeds[0] == t.seed and len(set(seeds)) == 3
    assert record["tiles"][t.tile] == {"status": "regenerated", "round": 2, "seeds": seeds, "decisions": [
        {"decision": "reject", "note": "too dark", "line": 3, "reviewer": ""},
        {"decision": "reject", "note": "seam", "line": 4, "reviewer": ""}]}
    assert record["tiles"][other.tile]["status"] == "accepted" and record["tiles"][other.tile]["round"] == 0
    assert out.loc[0, "seed"] == seeds[2] and (out.drop(index=0)["seed"] == plan.drop(index=0)["seed"]).all()
    assert plan.loc[0, "seed"] == seeds[0]  # the input plan is left as it was
    assert record["table"] == table.path and record["sha256"] == table.sha256
    # accepting the regenerated tile keeps its seed
    accepted = read_review(_table(tmp_path, [f"s1\t{t.tile}\treject\t\t", f"s1\t{t.tile}\taccept\tgood now\t"]))
    out, record = apply_review(plan, accepted, "s1", 7)
    assert out.loc[0, "seed"] == seeds[1] and record["tiles"][t.tile]["status"] == "accepted"


def test_no_table_or_no_decisions_leave_the_plan(plan) -> None:
    out, record = apply_review(plan, None, "s1", 7)
    assert out is plan and record == {"table": None, "sha256": None, "tiles": {}}


def test_decisions_on_missing_or_unrepaired_tiles_are_errors(tmp_path: Path, plan) -> None:
    with pytest.raises(ValueError, match=r"review.tsv:3: section s1 has no tile r00099c00000 in its plan"):
        apply_review(plan, read_review(_table(tmp_path, ["s1\tr00099c00000\treject\t\t"])), "s1", 7)
    short = plan.copy()
    short.loc[0, ["wave", "batch", "status"]] = [-1, -1, STATUS_INSUFFICIENT]
    with pytest.raises(ValueError, match="was not repainted"):
        apply_review(short, read_review(_table(tmp_path, [f"s1\t{plan.tile[0]}\treject\t\t"])), "s1", 7)


def test_tile_status() -> None:
    assert tile_status([]) == "unreviewed"


def test_only_the_reseeded_batch_changes_its_fingerprint(tmp_path: Path, plan) -> None:
    settings = {"margin_px": 1, "tiling": {"seed": 7, "max_batch": 2}, "review": {"tiles": {}}}
    before = batch_fingerprints(plan, settings)
    assert set(before) == set(plan.loc[plan.batch >= 0, "batch"])
    tile = plan.iloc[3]
    out, record = apply_review(plan, read_review(_table(tmp_path, [f"s1\t{tile.tile}\treject\t\t"])), "s1", 7)
    after = batch_fingerprints(out, {**settings, "review": record})
    assert {b for b in before if before[b] != after[b]} == {int(tile.batch)}
    moved = batch_fingerprints(plan, {**settings, "margin_px": 2})  # any change of geometry: all batches
    assert all(moved[b] != before[b] for b in before)


def test_section_params_change_with_the_sections_decisions(tmp_path: Path) -> None:
    table = read_review(_table(tmp_path, ["s1\tr00001c00002\treject\tdark\t", "s2\tr00001c00002\treject\t\t"]))
    assert section_params(None, "s1") == section_params(table, "s3") == "[]"
    assert json.loads(section_params(table, "s1")) == [["r00001c00002", "reject", "dark"]]


@pytest.fixture
def model(tmp_path: Path, tiny_net) -> str:
    modelpkg.save(tmp_path / "model", tiny_net, name="tiny", diffusion=DiffusionConfig(steps=20), pixel_size_um=1.0,
                  training={"command": "test", "data": [], "seed": 0, "code_version": "test"})
    return str(tmp_path / "model")


def test_the_plan_step_applies_the_review_table(tmp_path: Path, model: str, capsys) -> None:
    section = make_section(tmp_path / "s1.ome.zarr", (64, 64), holes=[(20, 20, 14, 18)])
    mask = f"{section}#labels/artifacts"
    plain = plan_section(Section("s1", str(section), mask), model, TilingConfig(margin_um=2), None, tmp_path / "a")
    assert plain["review"] == {"table": None, "sha256": None, "tiles": {}}
    tile = read_plan(tmp_path / "a" / "tiles.tsv").iloc[0]
    table = _table(tmp_path, [f"s1\t{tile.tile}\treject\tblurred\t"])
    sections = write_sections_table(tmp_path / "sections.tsv", [("s1", "s1.ome.zarr", "s1.ome.zarr#labels/artifacts")])
    args = ["plan", "--sections", str(sections), "--section", "s1", "--model", model, "--tiling",
            '{"margin_um": 2}', "--out-dir", str(tmp_path / "b")]
    assert main([*args, "--review", str(table)]) == 0
    reviewed = json.loads((tmp_path / "b" / "plan.json").read_text())["review"]
    assert reviewed["tiles"][tile.tile]["seeds"][0] == tile.seed
    new = read_plan(tmp_path / "b" / "tiles.tsv")
    assert new.loc[new.tile == tile.tile, "seed"].item() == reviewed["tiles"][tile.tile]["seeds"][1] != tile.seed
    capsys.readouterr()
    assert main([*args, "--review", str(_table(tmp_path, ["s1\tr00042c00042\treject\t\t"]))]) == 2
    assert "section s1 has no tile r00042c00042 in its plan" in capsys.readouterr().err


def test_a_part_of_a_split_tile_is_reviewed_and_reseeded_on_its_own(tmp_path: Path) -> None:
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[17, 17] = mask[30, 30] = 1  # two specks far apart in one core: the tile is split into two parts
    plan = plan_tiles(mask, factor=1, shape=(64, 64), tile_size=32, core_size=16, section="s1", seed=7,
                      min_known=0.25, window_sides=(16, 8, 4))
    assert plan["tile"].tolist() == ["r00001c00001p1", "r00001c00001p2"]
    out, record = apply_review(plan, read_review(_table(tmp_path, ["s1\tr00001c00001p2\treject\t\t"])), "s1", 7)
    seeds = [tile_seed(7, "s1", 1, 1, round=k, part=2) for k in range(2)]
    assert record["tiles"]["r00001c00001p2"]["seeds"] == seeds
    assert out["seed"].tolist() == [plan["seed"].iat[0], seeds[1]]
