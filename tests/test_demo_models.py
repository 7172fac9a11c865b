"""The shipped demo models load offline, run, and reproduce the dense accuracy recorded in their cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlviz import synthetic, zoo
from nlviz.capture import record
from nlviz.train import evaluate

MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"
CARDS = sorted(MODELS.glob("demo_*.json"))
VARIANTS = {"gaussian", "embedded_gaussian", "dot_product", "concatenation"}


def test_demo_models_are_shipped():
    names = {json.loads(p.read_text())["name"] for p in CARDS}
    assert names == {f"demo.{v}" for v in VARIANTS | {"none"}}, f"bundled demo models: {sorted(names)}"
    total = sum(p.stat().st_size for p in MODELS.iterdir() if p.is_file())
    assert total <= 10 * 2**20, f"assets/models takes {total / 2**20:.1f} MB (budget 10 MB)"


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_demo_model_reproduces_its_card(card_path, monkeypatch):
    card = json.loads(card_path.read_text())
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("a demo model must load without the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    model = zoo.load(card["name"])
    check = card["check"]
    task = synthetic.TrackConfig(**card["synthetic_config"])
    x, classes, _ = synthetic.make_track_dataset(check["clips"], check["first_seed"], task)
    acc = evaluate(model, x, classes, task)
    assert acc.object_cells == check["object_cells"]
    assert abs(acc.objects - check["accuracy"]) <= 2 / check["object_cells"] + 1e-4, (acc, check["accuracy"])
    assert card["seconds"] <= 15 * 60 + 10 and "CPU" in card["machine"]  # the budget, checked before each step
    if card["pairwise"]:
        _, cap = record(model, synthetic.to_tensor(x[:1]))
        assert len(cap) == 2 and all(b.pairwise == card["pairwise"] for b in cap)


def test_the_baseline_fails_and_attention_succeeds():
    """What the cards record (bench/demo_attention.py): the baseline without NL blocks labels the
    last frames near chance, far below the best non-local model."""
    cards = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in CARDS}
    base = cards["demo.none"]["test_accuracy"]
    best = max(c["test_accuracy"] for n, c in cards.items() if n != "demo.none")
    assert base <= cards["demo.none"]["chance_accuracy"] + 0.05 and best >= base + 0.25, (base, best)
