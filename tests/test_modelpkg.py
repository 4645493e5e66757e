"""Packaged DDPM: round trip, integrity checks, refusal of pickles, intensity normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cytopaint.models import package as modelpkg
from cytopaint.diffusion.gaussian import DiffusionConfig
from cytopaint.models.normalization import Normalization
from cytopaint.models.package import ModelPackageError

TRAINING = {"command": "cytopaint train --steps 1", "data": ["synthetic"], "seed": 0, "code_version": "test"}


@pytest.fixture
def package(tmp_path: Path, tiny_net) -> Path:
    modelpkg.save(tmp_path / "pkg", tiny_net, name="tiny", diffusion=DiffusionConfig(steps=40), pixel_size_um=2.0,
                  training=TRAINING)
    return tmp_path / "pkg"


def test_round_trip(package: Path, tiny_net) -> None:
    loaded = modelpkg.load(package)
    for (k, a), (k2, b) in zip(tiny_net.state_dict().items(), loaded.network.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 30])
    with torch.no_grad():
        assert torch.equal(tiny_net(x, t), loaded.network(x, t))
    assert loaded.pixel_size_um == 2.0 and loaded.tile_size == 16
    assert loaded.diffusion().num_timesteps == 40 and loaded.diffusion(10).num_timesteps == 10
    assert loaded.card["training"] == TRAINING
    assert not loaded.network.training


def test_changed_weight_byte_is_refused(package: Path) -> None:
    weights = package / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256"):
        modelpkg.load(package)


@pytest.mark.parametrize("field", ["pixel_size_um", "weights", "training"])
def test_missing_card_field_is_named(package: Path, field: str) -> None:
    card_path = package / "model.json"
    card = json.loads(card_path.read_text())
    del card[field]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelPackageError, match=field):
        modelpkg.load(package)


def test_missing_nested_field_is_named(package: Path) -> None:
    card_path = package / "model.json"
    card = json.loads(card_path.read_text())
    del card["training"]["seed"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelPackageError, match="training.*seed"):
        modelpkg.read_card(package)


def test_pickled_weights_are_refused_without_unpickling(package: Path, tiny_net, monkeypatch) -> None:
    monkeypatch.setattr("pickle.loads", lambda *a, **k: pytest.fail("unpickled"))
    torch.save(tiny_net.state_dict(), package / "model.safetensors")  # a torch.save zip under the right name
    with pytest.raises(ModelPackageError, match="pickle"):
        modelpkg.load(package, verify=False)


def test_raw_pickle_under_weights_name_is_refused(package: Path) -> None:
    import pickle

    (package / "model.safetensors").write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(ModelPackageError, match="pickle"):
        modelpkg.load(package)


def test_pickle_file_in_package_is_refused(package: Path, tiny_net) -> None:
    torch.save(tiny_net.state_dict(), package / "extra.pt")
    with pytest.raises(ModelPackageError, match="pickle"):
        modelpkg.load(package)


def test_missing_package_and_card(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="does not exist"):
        modelpkg.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPackageError, match="model.json"):
        modelpkg.load(tmp_path / "empty")


def test_tile_size_must_match_the_network(package: Path) -> None:
    card_path = package / "model.json"
    card = json.loads(card_path.read_text())
    card["tile_size"] = 32
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelPackageError, match="tile_size"):
        modelpkg.read_card(package)


def test_uint8_normalisation_round_trips_exactly() -> None:
    norm = Normalization()
    values = np.arange(256, dtype=np.uint8)
    x = norm.to_model(values)
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 1.0
    assert np.array_equal(norm.from_model(x), values)
    assert np.array_equal(norm.from_model(np.array([-3.0, 3.0])), np.array([0, 255], dtype=np.uint8))


@pytest.mark.parametrize("first_bytes", [b"\x80", b"PK"])
def test_safetensors_whose_header_length_looks_like_a_pickle_or_zip_are_accepted(tmp_path: Path,
                                                                                first_bytes: bytes) -> None:
    """The header length is little-endian: 0x..80 or 0x..4b50 bytes are safetensors, not pickles."""
    from safetensors.torch import load_file, save_file

    from cytopaint.models.package import _check_safetensors_bytes

    target = int.from_bytes(first_bytes.ljust(2, b"\x00"), "little")
    modulus = 256 if len(first_bytes) == 1 else 65536
    path = tmp_path / "w.safetensors"
    for pad in range(70000):
        save_file({"w": torch.zeros(3)}, str(path), metadata={"pad": "x" * pad})
        if int.from_bytes(path.read_bytes()[:8], "little") % modulus == target:
            break
    assert path.read_bytes()[:len(first_bytes)] == first_bytes
    _check_safetensors_bytes(path)
    assert torch.equal(load_file(str(path))["w"], torch.zeros(3))
