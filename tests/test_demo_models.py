"""The shipped demo models load offline, run, and reproduce the accuracy recorded in their cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlviz import synthetic, zoo
from nlviz.capture import record
from nlviz.train import evaluate

MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"
CARDS = sorted(MODELS.glob("demo_*.json"))


def test_demo_models_are_shipped():
    names = {json.loads(p.read_text())["name"] for p in CARDS}
    assert "demo.embedded_gaussian" in names, f"bundled demo models: {sorted(names)}"
    total = sum(p.stat().st_size for p in MODELS.glob("demo_*.safetensors"))
    assert total <= 10 * 2**20, f"demo weights take {total / 2**20:.1f} MB (budget 10 MB)"


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_demo_model_reproduces_its_card(card_path, monkeypatch):
    card = json.loads(card_path.read_text())
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("a demo model must load without the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    model = zoo.load(card["name"])
    check = card["check"]
    x, y, _ = synthetic.make_dataset(check["clips"], check["first_seed"])
    acc = evaluate(model, x, y)
    assert abs(acc - check["accuracy"]) <= 1 / check["clips"] + 1e-9, (acc, check["accuracy"])
    assert acc > card["chance_accuracy"] + 0.1, "a shipped model must beat chance clearly"
    if card["pairwise"]:
        _, cap = record(model, synthetic.to_tensor(x[:1]))
        assert len(cap) == 2 and all(b.pairwise == card["pairwise"] for b in cap)
