"""The console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cytopaint.models import package as modelpkg
from cytopaint.cli import main
from cytopaint.diffusion.gaussian import DiffusionConfig


def test_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "cytopaint.cli", "--help"], capture_output=True, text=True, check=True)
    assert "model-info" in out.stdout


def test_model_info_prints_card_and_reports_errors(tmp_path: Path, tiny_net, capsys) -> None:
    modelpkg.save(tmp_path / "m", tiny_net, name="tiny", diffusion=DiffusionConfig(steps=8), pixel_size_um=1.0,
                  training={"command": "x", "data": [], "seed": 1, "code_version": "t"})
    assert main(["model-info", str(tmp_path / "m")]) == 0
    assert '"name": "tiny"' in capsys.readouterr().out
    assert main(["model-info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_info_reads_classifier_packages(tmp_path: Path, capsys) -> None:
    import shutil

    from cytopaint.models.classifier import demo_classifier_path

    assert main(["model-info", str(demo_classifier_path())]) == 0
    out = capsys.readouterr()
    assert '"format": "cytopaint-classifier"' in out.out and "verified" in out.err
    shutil.copytree(demo_classifier_path(), tmp_path / "c")
    with open(tmp_path / "c" / "model.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    assert main(["model-info", str(tmp_path / "c")]) == 2
    assert "sha256" in capsys.readouterr().err
    assert main(["model-info", "--no-verify", str(tmp_path / "c")]) == 0


def test_pareto_refuses_bad_sampler_settings_before_any_work(tmp_path: Path, capsys) -> None:
    import pytest

    base = ["pareto", "--config", "config/config.yaml", "--sections", str(tmp_path / "none.tsv"),
            "--out", str(tmp_path / "p")]
    assert main([*base, "--sampler", "ref=256:1:5,method=dps"]) == 2
    assert "dps" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="its own NAME"):
        main([*base, "--sampler", "a=256:1:5", "--sampler", "a=50:5:2"])
    assert not (tmp_path / "p").exists()
