"""Tiles per sampler call from the GPU's free memory (``repaint.gpu_batch: auto``).

The network's activations dominate a sampler call's memory and grow linearly with the batch, so
two probe evaluations (batch 1 and 2, at the job's largest tile shape, as the sampler runs them:
no gradients, the device's autocast) give a line ``peak(b) = base + b * per_tile``; the call size
is the largest ``b`` whose peak fits in a share of the memory free to this process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cytopaint.diffusion.sampling import Model, forward_once

FREE_SHARE = 0.8  # of the free memory, for the sampler's own tensors and the allocator's fragmentation
CPU_TILES_PER_CALL = 8  # the CPU sampler evaluates tiles one at a time: a larger call gains nothing, holds more


@dataclass(frozen=True)
class Fit:
    """What a probe measured and the call size it gives."""

    tiles_per_call: int
    per_tile_mib: float | None = None
    free_mib: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"tiles_per_call": self.tiles_per_call, "per_tile_mib": self.per_tile_mib, "free_mib": self.free_mib}


def tiles_that_fit(free_bytes: float, peak_1: float, peak_2: float, share: float = FREE_SHARE) -> int:
    """The largest batch ``b >= 1`` with ``base + b * per_tile <= share * free_bytes``, from the peaks of
    batches 1 and 2 (``per_tile = peak_2 - peak_1``, at least a byte); 1 when even that does not fit
    (the sampler then halves nothing and a real shortage raises)."""
    per_tile = max(peak_2 - peak_1, 1.0)
    base = peak_1 - per_tile
    return max(1, math.floor((share * free_bytes - base) / per_tile))


def _peak_bytes(network: Model, batch: int, shape: tuple[int, int], channels: int, device: torch.device) -> int:
    """Peak allocated bytes above what is allocated now, of one network evaluation on ``batch`` tiles."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    forward_once(network, torch.zeros(batch, channels, *shape, device=device))
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def fit_tiles_per_call(network: Model, shape: tuple[int, int], channels: int, device: torch.device,
                       tiles: int) -> Fit:
    """Tiles of ``shape`` per sampler call on ``device``, at most ``tiles`` (the job's): measured on a GPU,
    `CPU_TILES_PER_CALL` elsewhere."""
    if device.type != "cuda":
        return Fit(min(tiles, CPU_TILES_PER_CALL))
    peaks = [_peak_bytes(network, b, shape, channels, device) for b in (1, 2)]
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached, reusable
    return Fit(min(tiles, tiles_that_fit(free, *peaks)), (peaks[1] - peaks[0]) / 2**20, free / 2**20)
