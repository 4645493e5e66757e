"""cytopaint bench on a tiny network on the CPU: its output, not its speed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY

from cytopaint.cli import main
from cytopaint.diffusion.sampling import expected_nfe


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """The tiny U-Net config as a JSON file, a network `cytopaint bench` takes with random weights."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY.to_dict()))
    return path


def test_bench_prints_and_writes_every_setting_beside_the_reference(tmp_path: Path, cfg: Path, capsys) -> None:
    assert main(["bench", str(cfg), "--sampler", "ref=20:5:3", "--sampler", "fast=5:1:1", "--batch", "2",
                 "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "ref" in printed and "fast" in printed and "on cpu" in printed
    table = pd.read_csv(tmp_path / "b" / "bench.tsv", sep="\t")
    assert table["setting"].tolist() == ["ref", "fast"]
    assert table["nfe_per_tile"].tolist() == [expected_nfe(20, 5, 3), 5]
    assert table["speedup_vs_reference"].iat[0] == 1 and table["speedup_vs_reference"].iat[1] > 1
    assert (table["ms_per_nfe_per_tile"] > 0).all() and (table["tflops"] > 0).all()
    assert set(table["timing"]) == {"full run"}
    run = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert run["device"] == "cpu" and run["forward_gflops_per_tile"] > 0 and run["code"]["version"]

    assert main(["bench", str(cfg), "--sampler", "ref=20:5:3", "--device", "cpu", "--timed-nfe", "4",
                 "--out", str(tmp_path / "c")]) == 0
    timed = pd.read_csv(tmp_path / "c" / "bench.tsv", sep="\t")
    assert timed["timing"].iat[0] == f"first 4 of {expected_nfe(20, 5, 3)} NFE, extrapolated"


def test_bench_times_the_planners_small_and_oblong_windows(tmp_path: Path, cfg: Path, capsys) -> None:
    assert main(["bench", str(cfg), "--sampler", "ref=10:1:1", "--sampler", "fast=5:1:1", "--shape", "16x16",
                 "--shape", "8x16", "--batch", "2", "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    assert "8x16" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "b" / "bench.tsv", sep="\t")
    assert list(zip(table["height"], table["width"], table["setting"], strict=True)) == [
        (16, 16, "ref"), (16, 16, "fast"), (8, 16, "ref"), (8, 16, "fast")]
    assert table["speedup_vs_reference"].tolist()[::2] == [1, 1]  # each shape against its own reference
    gflops = json.loads((tmp_path / "b" / "bench.json").read_text())["forward_gflops_per_shape"]
    assert set(gflops) == {"16x16", "8x16"} and 0.4 < gflops["8x16"] / gflops["16x16"] < 0.6
    assert main(["bench", str(cfg), "--shape", "12x16", "--device", "cpu"]) == 2
    assert "height and width must each be one of (16, 8, 4, 2)" in capsys.readouterr().err
    assert main(["bench", str(cfg), "--shape", "16by16", "--device", "cpu"]) == 2
    assert "expected HxW" in capsys.readouterr().err


def test_bench_runs_each_execution_of_the_network_side_by_side(tmp_path: Path, cfg: Path, capsys) -> None:
    assert main(["bench", str(cfg), "--sampler", "ref=10:1:1", "--sampler", "fast=5:1:1", "--execution", "eager",
                 "--execution", "channels-last", "--batch", "2", "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    assert "channels-last" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "b" / "bench.tsv", sep="\t")
    assert list(zip(table["execution"], table["setting"], strict=True)) == [
        ("eager", "ref"), ("eager", "fast"), ("channels-last", "ref"), ("channels-last", "fast")]
    assert table["speedup_vs_reference"].iat[0] == 1 and (table["warmup_s"] > 0).all()
    # every row against the first execution's reference, not against its own execution's (no timing asserted)
    expected = table["s_per_tile"].iat[0] / table["s_per_tile"]
    assert table["speedup_vs_reference"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-3)
    assert table["nfe_per_tile"].tolist() == [10, 5, 10, 5]
    assert main(["bench", str(cfg), "--execution", "nhwc", "--device", "cpu"]) == 2
    assert "'nhwc' is not channels-last or compile" in capsys.readouterr().err


def test_the_pareto_scripts_settings_parse_and_stay_under_100_nfe() -> None:
    import re
    from pathlib import Path

    from cytopaint.diffusion.sampling import SamplerSettings

    script = (Path(__file__).parents[1] / "benchmarks" / "sampler_pareto.sh").read_text()
    specs = re.findall(r"--sampler (\S+)", script)
    settings = [(name, SamplerSettings.parse(spec)) for name, _, spec in (s.partition("=") for s in specs)]
    assert settings[0] == ("reference", SamplerSettings(1, 5, 256)) and settings[0][1].nfe(256) == 1276
    assert len({n for n, _ in settings}) == len(settings) >= 6
    assert all(s.nfe(256) <= 100 for _, s in settings[1:])
    assert {s.method for _, s in settings} == {"repaint", "ddnm", "diffpir"}
