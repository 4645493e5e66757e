"""The real workflow through `snakemake --profile profiles/slurm` on a local single-node Slurm cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_slurm import SLURM_PROFILE, _env, _run
from test_workflow import REPO, write_stack

from cytopaint.io import volume
from slurm_cluster import slurm_cluster  # noqa: F401  (pytest fixture)


@pytest.mark.slurm
def test_two_section_stack_is_repaired_through_slurm(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    work = tmp_path / "stack"
    write_stack(work, ("s0", "s1"))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--profile", str(SLURM_PROFILE),
           "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(work / "config.yaml"),
           "--retries", "0", "--default-resources", f"slurm_partition={slurm_cluster.partition}", "runtime=30",
           "mem_mb=2000"]
    out, seconds = _run(cmd, work, _env(slurm_cluster.env, tmp_path), timeout=900, diagnostics=slurm_cluster.logs)
    for s in ("s0", "s1"):
        section = work / "results" / "sections" / s
        receipt = json.loads((section / "blend.json").read_text())
        assert receipt["pixels_repaired"] > 0
        src = np.asarray(volume.open_level(str(work / "data" / f"{s}.ome.zarr")))
        dst = np.asarray(volume.open_level(str(section / "repaired.ome.zarr")))
        repaired = np.asarray(volume.open_level(f"{section / 'repaired.ome.zarr'}#labels/repaired")) > 0
        assert np.array_equal(src[~repaired], dst[~repaired]) and repaired.any()
        for batch in (section / "batches").glob("batch_*.npz"):
            with np.load(batch) as z:
                assert json.loads(str(z["meta"]))["slurm_job_id"]  # sampled inside a SLURM job
    print(f"2-section stack through SLURM in {seconds:.0f} s")
