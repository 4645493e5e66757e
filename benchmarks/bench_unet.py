"""Forward-pass time and parameter count of the U-Net configurations (batch 1, fp32, CPU by default).

    python benchmarks/bench_unet.py [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from cytopaint.diffusion.unet import PAPER_1024, TINY_64, UNet, UNetConfig
from cytopaint.models.package import count_parameters


def time_forward(cfg: UNetConfig, device: str, repeats: int, batch: int = 1) -> float:
    net = UNet(cfg).to(device).eval()
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    t = torch.full((batch,), 100, device=device)
    with torch.no_grad():
        net(x, t)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(x, t)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"device {args.device}")
    print(f"{'config':<12}{'tile':>6}{'params':>12}{'forward s':>12}")
    for name, cfg in (("tiny-64", TINY_64), ("paper-1024", PAPER_1024)):
        seconds = time_forward(cfg, args.device, args.repeats)
        print(f"{name:<12}{cfg.image_size:>6}{count_parameters(UNet(cfg)) / 1e6:>11.2f}M{seconds:>12.4f}")


if __name__ == "__main__":
    main()
