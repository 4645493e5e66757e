"""``repaint.gpu_batch: auto``: the call size from two probe peaks and the free memory."""

from __future__ import annotations

import torch

from cytopaint.repaint.memory import CPU_TILES_PER_CALL, Fit, fit_tiles_per_call, tiles_that_fit

GIB = 2**30


def test_the_largest_batch_whose_peak_fits_in_the_share_of_free_memory() -> None:
    # peak(b) = 0.5 GiB + b GiB; 80% of 10 GiB is 8 GiB: 7 tiles fit, 8 would not
    assert tiles_that_fit(10 * GIB, 1.5 * GIB, 2.5 * GIB) == 7
    assert tiles_that_fit(10 * GIB, 1.5 * GIB, 2.5 * GIB, share=1.0) == 9
    assert tiles_that_fit(1 * GIB, 1.5 * GIB, 2.5 * GIB) == 1  # not even one: one, and a real shortage raises
    assert tiles_that_fit(10 * GIB, 1.5 * GIB, 1.5 * GIB) > 10**9  # no growth measured: bounded by the job


def test_on_the_cpu_calls_take_a_fixed_number_of_tiles(tiny_net) -> None:
    assert fit_tiles_per_call(tiny_net, (16, 16), 1, torch.device("cpu"), tiles=37) == Fit(CPU_TILES_PER_CALL)
    assert fit_tiles_per_call(tiny_net, (16, 16), 1, torch.device("cpu"), tiles=3) == Fit(3)
    assert Fit(5, 12.5, 4096.0).as_dict() == {"tiles_per_call": 5, "per_tile_mib": 12.5, "free_mib": 4096.0}
