"""GPU seconds per tile of the RePaint sampler, from timed network evaluations (the sampler's cost).

    python benchmarks/bench_gpu_sampler.py [--repeats 5]

For each U-Net configuration, batch size and precision (fp32 with TF32 matmuls off, bf16 autocast
as the sampler runs), prints the time of one network evaluation per tile and the resulting
seconds per tile for RePaint settings: the paper's (256 steps, j=10, r=10: 2,506 evaluations,
35 s per 1024 px tile on an A100) and the demo config's (50 steps, j=5, r=2: 95 evaluations).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

from cytopaint.diffusion.sampling import expected_nfe
from cytopaint.diffusion.unet import PAPER_1024, TINY_64, UNet, UNetConfig

SETTINGS = {"paper 256/j10/r10": expected_nfe(256, 10, 10), "demo 50/j5/r2": expected_nfe(50, 5, 2)}


def per_tile_seconds(cfg: UNetConfig, batch: int, precision: str, repeats: int) -> float:
    net = UNet(cfg).cuda().eval()
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device="cuda")
    t = torch.full((batch,), 100, device="cuda")
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with torch.no_grad(), ctx:
        for _ in range(2):
            net(x, t)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            net(x, t)
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("config      batch  precision  ms/eval/tile  " + "  ".join(f"s/tile {k}" for k in SETTINGS))
    for name, cfg, batches in (("paper-1024", PAPER_1024, (1, 4)), ("tiny-64", TINY_64, (1, 64, 512))):
        for batch in batches:
            for precision in ("fp32", "bf16"):
                s = per_tile_seconds(cfg, batch, precision, args.repeats)
                cols = "  ".join(f"{s * nfe:>{len('s/tile ' + k)}.3f}" for k, nfe in SETTINGS.items())
                print(f"{name:<11} {batch:>5}  {precision:<9}  {s * 1e3:>12.3f}  {cols}", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
