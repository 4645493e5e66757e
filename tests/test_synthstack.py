"""`cytopaint synth`: synthetic sections written as OME-Zarr with masks and ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cytopaint.io import volume
from cytopaint.cli import main
from cytopaint.io.sections import read_sections
from cytopaint.synth.spec import SectionSpec
from cytopaint.synth.stack import pyramid_levels, write_synthetic_section


def _write(out: Path) -> None:
    assert main(["synth", "--out", str(out), "--sections", "a", "b", "--shape", "200", "300", "--pixel-size", "2",
                 "--seed", "3", "--damage", "0.1", "--chunks", "64", "--quiet"]) == 0


def test_synth_writes_a_valid_stack_with_truth(tmp_path: Path) -> None:
    import ome_zarr_models

    _write(tmp_path / "s")
    table = read_sections(tmp_path / "s" / "sections.tsv", base=tmp_path / "s")
    assert table.index.tolist() == ["a", "b"]
    for row in table.itertuples():
        ome_zarr_models.open_ome_zarr(row.image)
        info = volume.read_info(row.image)
        assert info.plane_shape == (200, 300) and info.pixel_size_um == (2.0, 2.0)
        assert info.n_levels == pyramid_levels((200, 300)) == 2
        image = np.asarray(volume.open_level(row.image))
        mask = np.asarray(volume.open_level(row.mask))
        intact = np.asarray(volume.open_level(str(tmp_path / "s" / "truth" / f"{row.section}.ome.zarr")))
        assert image.dtype == np.uint8 and mask.any() and set(np.unique(mask)) <= {0, 1, 2, 3, 4}
        assert not np.array_equal(image, intact)
        cells = pd.read_csv(tmp_path / "s" / "truth" / f"{row.section}.cells.tsv", sep="\t")
        assert len(cells) > 50 and {"y", "x", "area_um2"} <= set(cells.columns)


def test_cell_centroids_are_in_section_pixels_across_rendering_windows(tmp_path: Path) -> None:
    spec = SectionSpec(seed=5, shape=(200, 300), pixel_size_um=2.0, damaged_fraction=0.0)
    paths = write_synthetic_section(spec, "w", tmp_path, chunks=64, window=64)  # 4 x 5 windows
    cells = pd.read_csv(paths["cells"], sep="\t")
    assert np.allclose(cells["y"], cells["y_um"] / 2.0 - 0.5) and np.allclose(cells["x"], cells["x_um"] / 2.0 - 0.5)
    assert cells["y"].max() > 136 and cells["x"].max() > 236  # cells of the last window row and column
    assert (cells[["y", "x"]] >= -0.5).all().all() and (cells["y"] < 199.5).all() and (cells["x"] < 299.5).all()


def test_synth_is_deterministic(tmp_path: Path) -> None:
    _write(tmp_path / "one")
    _write(tmp_path / "two")
    for s in ("a", "b"):
        a = np.asarray(volume.open_level(str(tmp_path / "one" / f"{s}.ome.zarr")))
        b = np.asarray(volume.open_level(str(tmp_path / "two" / f"{s}.ome.zarr")))
        assert np.array_equal(a, b)
    assert not np.array_equal(np.asarray(volume.open_level(str(tmp_path / "one" / "a.ome.zarr"))),
                              np.asarray(volume.open_level(str(tmp_path / "one" / "b.ome.zarr"))))


def test_synth_in_parallel_writes_the_same_stack(tmp_path: Path) -> None:
    args = ["synth", "--sections", "a", "b", "--shape", "96", "128", "--pixel-size", "2", "--seed", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "serial")]) == 0
    assert main([*args, "--out", str(tmp_path / "parallel"), "--workers", "2"]) == 0
    assert (tmp_path / "serial" / "sections.tsv").read_text() == (tmp_path / "parallel" / "sections.tsv").read_text()
    for s in ("a", "b"):
        for sub in ("", "truth/"):
            a = np.asarray(volume.open_level(tmp_path / "serial" / f"{sub}{s}.ome.zarr"))
            b = np.asarray(volume.open_level(tmp_path / "parallel" / f"{sub}{s}.ome.zarr"))
            assert np.array_equal(a, b)
