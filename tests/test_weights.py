"""nlviz's own safetensors weight files: round trip, strict loading, clear errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from nlviz.models import build
from nlviz.weights import WeightsError, load_weights, read_metadata, save_weights


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = build("tiny_i3d_nl2", pairwise="concatenation", num_classes=5)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    path = save_weights(model, tmp_path / "m.safetensors")
    assert read_metadata(path) == ("tiny_i3d_nl2", {"num_classes": 5, "pairwise": "concatenation"})
    loaded = load_weights(path)
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert not loaded.training


def test_wrong_architecture_lists_the_problems(tmp_path):
    model = build("tiny_i3d_nl2")
    state = model.state_dict()
    state.pop("res3.0.nl.theta.conv.weight")
    state["head.fc.weight"] = torch.zeros(9, 256)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"nlviz.arch": "tiny_i3d_nl2"})
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    msg = str(e.value)
    assert "1 missing: res3.0.nl.theta.conv.weight" in msg
    assert "1 unexpected: extra.weight" in msg
    assert "head.fc.weight: file (9, 256) vs model (4, 256)" in msg


def test_not_a_weight_file(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_weights(path)
    save_file({"a": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(WeightsError, match="not written by nlviz"):
        load_weights(tmp_path / "plain.safetensors")
