"""Packaged DDPM: a directory with safetensors weights and a JSON model card.

Layout::

    <package>/model.json          card (schema: cytopaint/schemas/model_card.schema.json)
    <package>/model.safetensors   weights, sha256 recorded in the card

Loading validates the card, verifies the weights' sha256 and reads them with safetensors: nothing
is ever unpickled. ``"demo"`` names the small model bundled with the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import torch
from safetensors.torch import load_file, save_file

from ..diffusion.execution import Execution
from ..diffusion.gaussian import DiffusionConfig, GaussianDiffusion
from ..diffusion.sampling import Model
from ..diffusion.unet import UNet, UNetConfig
from .normalization import Normalization

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


class ModelPackageError(ValueError):
    """A packaged model is missing, malformed or does not match its card."""


@dataclass
class PackagedModel:
    """A loaded model: card, network (eval mode) and diffusion process; ``forward`` is the network as the
    sampler calls it (`run_as`)."""

    path: Path
    card: dict[str, Any]
    network: UNet
    diffusion_config: DiffusionConfig
    forward: Model | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.network

    def run_as(self, execution: Execution) -> PackagedModel:
        """This model with its network run as ``execution`` says (channels-last, compiled)."""
        return replace(self, forward=execution.prepare(self.network))

    @property
    def pixel_size_um(self) -> float:
        return float(self.card["pixel_size_um"])

    @property
    def tile_size(self) -> int:
        return int(self.card["tile_size"])

    @property
    def sides(self) -> tuple[int, ...]:
        """Tile sides (heights and widths) the network samples at, ``tile_size`` first (`UNetConfig.sides`)."""
        return self.network.config.sides()

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_card(self.card["normalization"])

    @property
    def weights_sha256(self) -> str:
        return self.card["weights"]["sha256"]

    def diffusion(self, respace: int | None = None) -> GaussianDiffusion:
        return self.diffusion_config.build(respace)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of a network (recorded in package cards)."""
    return sum(p.numel() for p in model.parameters())


def card_schema() -> dict[str, Any]:
    return json.loads(files("cytopaint").joinpath("schemas/model_card.schema.json").read_text())


def demo_model_path() -> Path:
    """The directory of the bundled demo model."""
    return Path(str(files("cytopaint").joinpath("models/demo")))


def resolve(path_or_name: str | os.PathLike[str]) -> Path:
    """``demo`` -> the bundled model; anything else is a package directory."""
    return demo_model_path() if str(path_or_name) == "demo" else Path(path_or_name)


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def _check_safetensors_bytes(path: Path) -> None:
    """Refuse anything that is not a safetensors file (pickles and torch.save zips above all)."""
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header. The length's first
    # byte may be anything (0x80 and "PK" included), so it is recognised before pickle and zip are.
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= path.stat().st_size:
        return
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise ModelPackageError(f"{path} is a pickle / torch.save file; cytopaint never unpickles weights, "
                                "convert them to safetensors")
    raise ModelPackageError(f"{path} is not a safetensors file")


def validate_card(card: dict[str, Any], where: str = "model card") -> None:
    """Validate a card against the schema and the architecture config; errors name the field."""
    try:
        jsonschema.validate(card, card_schema())
    except jsonschema.ValidationError as e:
        field = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ModelPackageError(f"{where}: invalid at {field}: {e.message}") from None
    try:
        cfg = UNetConfig.from_dict(card["architecture"]["config"])
        DiffusionConfig(**card["diffusion"])
    except (TypeError, ValueError) as e:
        raise ModelPackageError(f"{where}: {e}") from None
    if cfg.image_size != card["tile_size"]:
        raise ModelPackageError(f"{where}: tile_size {card['tile_size']} differs from the network's "
                                f"image_size {cfg.image_size}")
    if card["diffusion"]["variance"] == "learned_range" and not cfg.learn_sigma:
        raise ModelPackageError(f"{where}: learned_range variance needs learn_sigma in the architecture")


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate the card of a package (without loading weights)."""
    pkg = resolve(path)
    card = read_card_json(pkg)
    validate_card(card, str(pkg / CARD_NAME))
    return card


def read_card_json(pkg: Path) -> dict[str, Any]:
    """The parsed (not yet validated) card of a package directory of any format."""
    card_path = pkg / CARD_NAME
    if not pkg.is_dir():
        raise ModelPackageError(f"model package {pkg} does not exist or is not a directory")
    if not card_path.is_file():
        raise ModelPackageError(f"model package {pkg} has no {CARD_NAME}")
    try:
        return json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelPackageError(f"{card_path} is not valid JSON: {e}") from None


def verified_weights(pkg: Path, card: dict[str, Any], verify: bool = True) -> Path:
    """The card's weights file, after refusing pickles, checking it is safetensors and (``verify``) its sha256."""
    pickles = sorted(p.name for p in pkg.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ModelPackageError(f"model package {pkg} contains pickle files {pickles}; cytopaint never unpickles, "
                                "a package holds only model.json and safetensors weights")
    weights = pkg / card["weights"]["file"]
    if not weights.is_file():
        raise ModelPackageError(f"model package {pkg}: weights file {weights.name} named in the card is missing")
    _check_safetensors_bytes(weights)
    if verify:
        digest = sha256_file(weights)
        if digest != card["weights"]["sha256"]:
            raise ModelPackageError(f"model package {pkg}: sha256 of {weights.name} is {digest}, the card says "
                                    f"{card['weights']['sha256']} (corrupted or altered weights)")
    return weights


def write_weights(pkg: Path, network: torch.nn.Module, weights_dtype: str, fmt: str) -> Path:
    """Write a network's state as ``pkg/model.safetensors`` (atomically, cast to ``weights_dtype``)."""
    weights = pkg / WEIGHTS_NAME
    tmp = weights.with_suffix(".tmp")
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[weights_dtype]
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": fmt})
    os.replace(tmp, weights)
    weights.chmod(0o644)
    return weights


def load(path: str | os.PathLike[str], device: torch.device | str = "cpu", verify: bool = True) -> PackagedModel:
    """Load a package: validate the card, verify the weights' sha256, build the network in eval mode."""
    pkg = resolve(path)
    card = read_card(pkg)
    weights = verified_weights(pkg, card, verify)
    network = UNet(UNetConfig.from_dict(card["architecture"]["config"]))
    try:
        network.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as e:
        raise ModelPackageError(f"model package {pkg}: weights do not match the architecture: {e}") from None
    network.to(device).eval()
    return PackagedModel(path=pkg, card=card, network=network, diffusion_config=DiffusionConfig(**card["diffusion"]))


def save(path: str | os.PathLike[str], network: UNet, *, name: str, diffusion: DiffusionConfig, pixel_size_um: float,
         training: dict[str, Any], normalization: Normalization = Normalization(), ema: bool = True,
         description: str = "", created: str | None = None, weights_dtype: str = "float32") -> dict[str, Any]:
    """Write a package directory (weights first, then the card) and return the card.

    ``weights_dtype`` ``float16`` halves the file (weights are cast back to float32 on loading).
    """
    pkg = Path(path)
    pkg.mkdir(parents=True, exist_ok=True)
    weights = write_weights(pkg, network, weights_dtype, "cytopaint-ddpm")
    cfg = network.config
    card: dict[str, Any] = {
        "format": "cytopaint-ddpm",
        "format_version": 1,
        "name": name,
        "description": description,
        "architecture": {"type": "adm-unet", "config": cfg.to_dict(), "parameters": count_parameters(network)},
        "diffusion": {"steps": diffusion.steps, "schedule": diffusion.schedule, "variance": diffusion.variance},
        "pixel_size_um": float(pixel_size_um),
        "tile_size": cfg.image_size,
        "normalization": normalization.to_card(),
        "training": training,
        "weights": {"file": WEIGHTS_NAME, "sha256": sha256_file(weights), "ema": ema, "dtype": weights_dtype},
    }
    if created:
        card["created"] = created
    validate_card(card, f"card for {pkg}")
    (pkg / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
    return card
