"""How the U-Net is run on its device: memory format and compilation (the ``execution`` config block).

Neither changes the maths: a network run channels-last or compiled computes the same function,
up to the rounding of its float sums (on this repository's CPU the demo network's outputs were
bit-identical; on a GPU fused kernels may change the last bits, as another batch size does).
Each batch's metadata records the execution it ran with.

- ``channels_last``: NHWC tensors (`torch.channels_last`), the layout tensor-core convolutions
  use natively; the weights are converted once, each input on the way in.
- ``compile``: `torch.compile` with one of its modes (``default``, ``reduce-overhead``: CUDA graphs,
  ``max-autotune``: also searches kernels), or ``off``. Each new input shape (tile height, width,
  batch) compiles once per process; past torch's recompile limit (8 shapes) the rest run eagerly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .sampling import Model
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
_CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class Execution:
    """The network's memory format and compilation mode."""

    channels_last: bool = False
    compile: str = "off"

    def __post_init__(self) -> None:
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"execution.channels_last must be true or false, got {self.channels_last!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"execution.compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")

    @classmethod
    def parse(cls, spec: str) -> Execution:
        """From ``eager`` or ``+``-joined parts ``channels-last`` and ``compile[=MODE]``, e.g.
        ``channels-last+compile=max-autotune``."""
        if spec == "eager":
            return cls()
        options: dict[str, Any] = {}
        for part in spec.split("+"):
            key, sep, value = part.partition("=")
            if part == "channels-last":
                options["channels_last"] = True
            elif key == "compile":
                options["compile"] = value if sep else "default"
            else:
                raise ValueError(f"execution {spec!r}: {part!r} is not channels-last or compile[=MODE] "
                                 f"(MODE one of {list(COMPILE_MODES[1:])}); or give 'eager'")
        try:
            return cls(**options)
        except ValueError as err:
            raise ValueError(f"execution {spec!r}: {err}") from None

    @property
    def label(self) -> str:
        """The spec `parse` reads back."""
        parts = ["channels-last"] if self.channels_last else []
        if self.compile != "off":
            parts.append("compile" if self.compile == "default" else f"compile={self.compile}")
        return "+".join(parts) or "eager"

    def prepare(self, network: torch.nn.Module) -> Model:
        """``network`` as the sampler should call it. Channels-last converts its weights in place."""
        if self.channels_last:
            network.to(memory_format=torch.channels_last)
        run: Model = network if self.compile == "off" else torch.compile(network, mode=self.compile)
        if not self.channels_last and self.compile not in _CUDA_GRAPH_MODES:
            return run

        def forward(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.compile not in _CUDA_GRAPH_MODES:
                return run(x, t)
            torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs are no longer read
            return run(x, t).clone()  # a CUDA graph's output buffer is overwritten by its next replay

        return forward
