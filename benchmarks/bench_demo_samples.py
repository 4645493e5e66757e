"""Does the demo model's tissue look like its training tissue? Cell statistics of samples vs real patches.

    python benchmarks/bench_demo_samples.py [--model demo] [--n 64] [--steps 256] [--png docs/demo_samples.png]

Draws ``--n`` unconditional samples (the model's full reverse process, respaced to ``--steps``) and
``--n`` random tissue patches of held-out synthetic sections (seeds never used for training), runs the
project's cell detector on both and prints pooled cell density and mean cell area side by side.
Writes a picture of samples next to real patches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cytopaint.models import package as modelpkg

from cytopaint.diffusion.sampling import SamplerSettings, make_generators, sample
from cytopaint.models.patches import load_section
from cytopaint.qc.cells import cell_stats, detect_cells
from cytopaint.synth.stack import write_synthetic_stack


def pooled_stats(patches: np.ndarray, pixel_size_um: float) -> tuple[float, float, int]:
    """Pooled density (cells/mm²) and mean area (µm²) over all patches, and the cell count."""
    count, area_sum, region_mm2 = 0, 0.0, 0.0
    for p in patches:
        _, cells = detect_cells(p, pixel_size_um)
        s = cell_stats(cells, np.ones(p.shape, bool), pixel_size_um)
        count += s.count
        area_sum += s.mean_area_um2 * s.count if s.count else 0.0
        region_mm2 += s.region_mm2
    return count / region_mm2, area_sum / max(count, 1), count


def real_patches(n: int, size: int, pixel_size_um: float, seed: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        ids = [f"held_{i}" for i in range(3)]
        write_synthetic_stack(Path(tmp), ids, shape=(1024, 1024), pixel_size_um=pixel_size_um, seed=seed,
                              damaged_fraction=0.02, progress=False)
        secs = [load_section(s, f"{tmp}/{s}.ome.zarr", f"{tmp}/{s}.ome.zarr#labels/artifacts", pixel_size_um, size)
                for s in ids]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sec = secs[i % len(secs)]
        y, x = sec.origins[rng.integers(len(sec.origins))]
        out.append(sec.image[y:y + size, x:x + size])
    return np.stack(out)


def samples(model: modelpkg.PackagedModel, n: int, steps: int, seed: int) -> np.ndarray:
    size = model.tile_size
    known = torch.zeros(n, 1, size, size)
    unknown = torch.ones(n, 1, size, size, dtype=torch.bool)
    res = sample(model.network, model.diffusion(), known, unknown, make_generators(range(seed, seed + n)),
                 SamplerSettings(jump_length=1, jump_n_sample=1, steps=steps), progress=True,
                 description="samples", batch_invariant=False)
    return model.normalization.from_model(res.images[:, 0].numpy())


def picture(gen: np.ndarray, real: np.ndarray, path: Path, per_row: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(per_row * 1.3, 3.0))
    for ax, imgs, title in ((axes[0], real, "real synthetic patches (held-out sections)"),
                            (axes[1], gen, "demo model samples")):
        ax.imshow(np.concatenate(list(imgs[:per_row]), axis=1), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--seed", type=int, default=200, help="held-out synthetic sections (training used 100)")
    parser.add_argument("--png", default="docs/demo_samples.png")
    args = parser.parse_args()
    model = modelpkg.load(args.model)
    ps = model.pixel_size_um
    t0 = time.perf_counter()
    gen = samples(model, args.n, args.steps, seed=args.seed)
    t_gen = time.perf_counter() - t0
    real = real_patches(args.n, model.tile_size, ps, args.seed)
    (d_gen, a_gen, c_gen), (d_real, a_real, c_real) = pooled_stats(gen, ps), pooled_stats(real, ps)
    print(f"model {model.card['name']} ({model.weights_sha256[:12]}), {args.n} patches of {model.tile_size} px "
          f"at {ps:g} µm, samples with {args.steps} steps in {t_gen:.0f} s")
    print(f"{'':<10}{'density /mm²':>14}{'mean area µm²':>15}{'cells':>8}")
    print(f"{'real':<10}{d_real:>14.0f}{a_real:>15.1f}{c_real:>8}")
    print(f"{'samples':<10}{d_gen:>14.0f}{a_gen:>15.1f}{c_gen:>8}")
    print(f"{'ratio':<10}{d_gen / d_real:>14.2f}{a_gen / a_real:>15.2f}")
    print(f"intensity mean real {real.mean():.1f}, samples {gen.mean():.1f}; "
          f"std real {real.std():.1f}, samples {gen.std():.1f}")
    picture(gen, real, Path(args.png))
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
