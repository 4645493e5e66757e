"""benchmarks/project_bigbrain.py: the planner's windows times the bench's seconds, and nothing untimed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _rows(setting: str, shapes: list[tuple[int, int]], nfe: int) -> list[dict]:
    return [{"setting": setting, "height": h, "width": w, "nfe_per_tile": nfe, "ms_per_nfe_per_tile": h * w / 100}
            for h, w in shapes]


def _project(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "project_bigbrain.py"), "--bench",
                          str(tmp_path / "bench.json"), "--size", "2048", "--factor", "2", "--sections", "1", "--tile",
                          "64", "--min-window", "16", "--section-px", "8388608", "--stack", "10", "--out",
                          str(tmp_path / name), *extra], capture_output=True, text=True, timeout=300,
                         cwd=REPO / "benchmarks")
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_the_projection_multiplies_planned_windows_by_timed_seconds(tmp_path: Path) -> None:
    sides = (64, 32, 16)
    every = [(h, w) for h in sides for w in sides]
    bench = {"network": "test", "unet": {"image_size": 64}, "device": "cpu", "gpu": None, "code": {"version": "t"},
             "rows": _rows("all shapes", every, 50) + _rows("whole tiles only", [(64, 64)], 95)}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = _project(tmp_path, "p.json")
    result = json.loads((tmp_path / "p.json").read_text())
    assert result["scale"] == 2.0  # 8388608 px = twice the 2048^2 section planned
    whole, small = result["windows_per_planned_section"].values()
    assert set(whole) == {"64x64"} and len(small) > 1 and sum(small.values()) >= sum(whole.values())
    figures = {(p["setting"], p["plan"]): p for p in result["projections"]}
    for plan, counts in (("whole tiles", whole), ("min_window 16", small)):
        expected = sum(n * 50 * int(s.split("x")[0]) * int(s.split("x")[1]) / 100 / 1e3 for s, n in counts.items())
        p = figures[("all shapes", plan)]
        assert p["seconds_per_planned_section"] == pytest.approx(expected)
        assert p["days"] == pytest.approx(expected * 2.0 * 10 / 86400)
    assert figures[("whole tiles only", "whole tiles")]["days"] == pytest.approx(
        whole["64x64"] * 95 * 64 * 64 / 100 / 1e3 * 2.0 * 10 / 86400)
    assert figures[("whole tiles only", "min_window 16")]["days"] is None  # its small windows were not timed
    assert "not measured" in out.stdout
    assert figures[("all shapes", "min_window 16")]["days"] < figures[("all shapes", "whole tiles")]["days"]
    # wider cores with less context needed: fewer whole tiles, the tiling recorded beside the figures
    _project(tmp_path, "wide.json", "--core-fraction", "0.75", "--min-known", "0.125")
    wide = json.loads((tmp_path / "wide.json").read_text())
    assert (wide["core_fraction"], wide["min_known"], result["core_fraction"]) == (0.75, 0.125, 0.5)
    assert sum(wide["windows_per_planned_section"]["whole tiles"].values()) < sum(whole.values())
