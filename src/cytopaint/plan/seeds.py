"""Tile seeds: a stable 63-bit seed per (global seed, section, tile row, column and part, review round).

Every tile draws all its sampling noise from its own seed, so its result does not depend on the
batch, GPU or job it ran in. Seeds are the same on every process and platform: the section is
hashed with blake2b, the tile's grid position mixed in with SplitMix64, then its part (a piece of a
split tile, `cytopaint.plan.windows`; part 0, a whole tile, keeps its grid position's seed).
"""

from __future__ import annotations

import hashlib

import numpy as np

_SEED_PERSON = b"cytopaint-seed-1"  # blake2b personalisation (<= 16 bytes)
_GOLDEN = 0x9E3779B97F4A7C15
_PART_KEY = 0xD1B54A32D192ED03  # odd: distinct parts give distinct keys


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection of uint64 with full avalanche."""
    z = z.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def tile_seeds(global_seed: int, section: str, rows: np.ndarray, cols: np.ndarray, round: int = 0,
               parts: np.ndarray | None = None) -> np.ndarray:
    """Vectorised `tile_seed`: int64 seeds in [0, 2**63) for arrays of tile rows, columns and parts (default 0)."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    parts = np.zeros_like(rows) if parts is None else np.asarray(parts, dtype=np.int64)
    if rows.shape != cols.shape or rows.shape != parts.shape:
        raise ValueError("rows, cols and parts differ in shape")
    if parts.size and parts.min() < 0:
        raise ValueError("tile parts must be >= 0")
    if rows.size and (min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= 1 << 32):
        raise ValueError("tile rows and columns must lie in [0, 2**32)")
    if round < 0:
        raise ValueError(f"review round must be >= 0, got {round}")
    digest = hashlib.blake2b(f"{int(global_seed)}\x00{section}".encode(), digest_size=8, person=_SEED_PERSON)
    key = np.uint64(int.from_bytes(digest.digest(), "big"))
    # (row, col) -> 64 bits injectively, then bijective mixes: distinct tiles get distinct 64-bit
    # values; dropping one bit leaves a collision chance of about n**2 / 2**64 among n tiles
    packed = (rows.astype(np.uint64) << np.uint64(32)) | cols.astype(np.uint64)
    seeds = _mix64(_mix64(packed ^ key)) >> np.uint64(1)
    with np.errstate(over="ignore"):
        split = _mix64(seeds ^ (parts.astype(np.uint64) * np.uint64(_PART_KEY))) >> np.uint64(1)
    seeds = np.where(parts > 0, split, seeds)
    for k in range(1, round + 1):  # a review round re-derives from the previous round's seed
        seeds = _mix64(seeds ^ np.uint64((k * _GOLDEN) & ((1 << 64) - 1))) >> np.uint64(1)
    return seeds.astype(np.int64)


def tile_seed(global_seed: int, section: str, tile_row: int, tile_col: int, round: int = 0, part: int = 0) -> int:
    """Seed of one tile: a 63-bit int, stable across processes and platforms.

    Round 0 hashes (global seed, section) with blake2b and mixes in (row, col), then the part if
    it is not 0; review round k derives its seed from round k-1's, so a rejected tile gets a new,
    reproducible seed.
    """
    return int(tile_seeds(global_seed, section, np.array([tile_row]), np.array([tile_col]), round,
                          np.array([part]))[0])
