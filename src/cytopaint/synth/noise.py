"""Window-independent random fields.

Every field here is a pure function of global coordinates and a seed: a value at a pixel or a point
does not depend on the window it was computed in, so windows of a section tile seamlessly.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

TILE = 256  # pixels per side of a per-pixel noise tile
LATTICE_TILE = 64  # lattice points per side of a lattice-value tile
_OFFSET = 1 << 24  # keeps tile indices of margins (negative coordinates) non-negative for SeedSequence


def tile_normal(seed: int, stream: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Standard normal float32 noise for the pixel window [y0, y0+h) x [x0, x0+w).

    Each TILE x TILE tile of the global pixel grid is drawn from its own generator.
    """
    out = np.empty((h, w), np.float32)
    for ty in range(y0 // TILE, (y0 + h - 1) // TILE + 1):
        for tx in range(x0 // TILE, (x0 + w - 1) // TILE + 1):
            tile = np.random.default_rng([seed, stream, ty + _OFFSET, tx + _OFFSET]).standard_normal(
                (TILE, TILE), dtype=np.float32)
            ya, yb = max(y0, ty * TILE), min(y0 + h, (ty + 1) * TILE)
            xa, xb = max(x0, tx * TILE), min(x0 + w, (tx + 1) * TILE)
            out[ya - y0:yb - y0, xa - x0:xb - x0] = tile[ya - ty * TILE:yb - ty * TILE, xa - tx * TILE:xb - tx * TILE]
    return out


def _lattice_block(seed: int, stream: int, iy0: int, ix0: int, ny: int, nx: int) -> np.ndarray:
    """Unit-variance lattice values for lattice indices [iy0, iy0+ny) x [ix0, ix0+nx)."""
    out = np.empty((ny, nx), np.float64)
    t = LATTICE_TILE
    for ty in range(iy0 // t, (iy0 + ny - 1) // t + 1):
        for tx in range(ix0 // t, (ix0 + nx - 1) // t + 1):
            vals = np.random.default_rng([seed, stream, ty + _OFFSET, tx + _OFFSET]).standard_normal((t, t))
            ya, yb = max(iy0, ty * t), min(iy0 + ny, (ty + 1) * t)
            xa, xb = max(ix0, tx * t), min(ix0 + nx, (tx + 1) * t)
            out[ya - iy0:yb - iy0, xa - ix0:xb - ix0] = vals[ya - ty * t:yb - ty * t, xa - tx * t:xb - tx * t]
    return out


def _bspline_weights(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cubic B-spline weights of the four lattice points around fractional offsets f in [0, 1)."""
    f2, f3 = f * f, f * f * f
    return ((1 - f) ** 3 / 6, (3 * f3 - 6 * f2 + 4) / 6, (-3 * f3 + 3 * f2 + 3 * f + 1) / 6, f3 / 6)


_BSPLINE_STD = 0.48  # std of 2-D B-spline-interpolated unit-variance lattice values (averaged over phase)


def _interp_matrix(g: np.ndarray, i0: int, n: int) -> sparse.csr_matrix:
    """Sparse (len(g), n) matrix of cubic B-spline weights from lattice indices i0 .. i0+n-1 to positions g."""
    i = np.floor(g).astype(np.int64)
    w = np.stack(_bspline_weights(g - i), 1).astype(np.float32)  # (len(g), 4), taps in increasing order
    cols = (i - i0 - 1)[:, None] + np.arange(4)
    return sparse.csr_matrix((w.ravel(), cols.ravel(), np.arange(0, 4 * len(g) + 1, 4)), shape=(len(g), n))


def lattice_grid(seed: int, stream: int, ys_um: np.ndarray, xs_um: np.ndarray, spacing_um: float) -> np.ndarray:
    """Smooth value noise (unit variance on average) on the grid ys_um x xs_um, lattice spacing spacing_um.

    Separable sparse interpolation: each value is a fixed-order sum over its 4 x 4 lattice neighbours.
    """
    gy, gx = np.asarray(ys_um, np.float64) / spacing_um, np.asarray(xs_um, np.float64) / spacing_um
    ly0, lx0 = int(np.floor(gy.min())) - 1, int(np.floor(gx.min())) - 1
    ny, nx = int(np.floor(gy.max())) + 3 - ly0, int(np.floor(gx.max())) + 3 - lx0
    vals = _lattice_block(seed, stream, ly0, lx0, ny, nx).astype(np.float32) / np.float32(_BSPLINE_STD)
    rows = (_interp_matrix(gx, lx0, nx) @ vals.T).T  # (ny, len(xs))
    return np.ascontiguousarray(_interp_matrix(gy, ly0, ny) @ rows, dtype=np.float32)


def lattice_points(seed: int, stream: int, y_um: np.ndarray, x_um: np.ndarray, spacing_um: float) -> np.ndarray:
    """Smooth value noise at scattered points (same field as lattice_grid up to rounding)."""
    y_um, x_um = np.asarray(y_um, np.float64), np.asarray(x_um, np.float64)
    if y_um.size == 0:
        return np.zeros(0, np.float32)
    gy, gx = y_um / spacing_um, x_um / spacing_um
    iy, ix = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
    ly0, lx0 = int(iy.min()) - 1, int(ix.min()) - 1
    vals = _lattice_block(seed, stream, ly0, lx0, int(iy.max()) + 3 - ly0, int(ix.max()) + 3 - lx0)
    wy, wx = _bspline_weights(gy - iy), _bspline_weights(gx - ix)
    out = np.zeros(y_um.shape, np.float64)
    for a in range(4):
        for b in range(4):
            out += wy[a] * wx[b] * vals[iy - ly0 - 1 + a, ix - lx0 - 1 + b]
    return (out / _BSPLINE_STD).astype(np.float32)


def fbm_grid(seed: int, stream: int, ys_um: np.ndarray, xs_um: np.ndarray, spacings_um: tuple[float, ...],
             weights: tuple[float, ...], min_spacing_um: float = 0.0) -> np.ndarray:
    """Sum of lattice octaves; octaves finer than min_spacing_um (e.g. 1.5 pixels) are skipped."""
    out = np.zeros((len(ys_um), len(xs_um)), np.float32)
    for k, (s, wgt) in enumerate(zip(spacings_um, weights, strict=True)):
        if s >= min_spacing_um:
            out += wgt * lattice_grid(seed, stream * 16 + k, ys_um, xs_um, s)
    return out
