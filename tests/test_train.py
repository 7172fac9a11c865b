"""The trainer learns (a few seconds of training lowers the loss) and writes loadable demo files."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from nlviz import synthetic
from nlviz.train import TrainConfig, make_data, save_demo, train
from nlviz.weights import load_weights


def test_short_training_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(pairwise="embedded_gaussian", n_train=16, n_test=8, steps=12, batch_size=8, lr=3e-3, warmup=2)
    data = make_data(cfg)
    xtr, ytr = synthetic.to_tensor(data[0]), torch.as_tensor(data[1])
    from nlviz.models import build

    torch.manual_seed(cfg.seed)
    before_model = build(cfg.model_arch, **cfg.build_overrides())
    with torch.no_grad():
        before = F.cross_entropy(before_model(xtr), ytr).item()
    result = train(cfg, data=data)
    with torch.no_grad():
        after = F.cross_entropy(result.model(xtr), ytr).item()
    assert after < before - 0.05, (before, after)
    weights, card_path = save_demo(result, tmp_path, "nlviz train --test")
    card = json.loads(card_path.read_text())
    assert card["name"] == "demo.embedded_gaussian" and card["pairwise"] == "embedded_gaussian"
    assert card["check"]["clips"] == 200 and 0 <= card["check"]["accuracy"] <= 1
    loaded = load_weights(weights)
    with torch.no_grad():
        torch.testing.assert_close(loaded(xtr[:2]), result.model(xtr[:2]))


def test_baseline_has_no_nonlocal_block():
    cfg = TrainConfig(pairwise="none")
    assert cfg.model_arch == "tiny_i3d_nl0" and "pairwise" not in cfg.build_overrides()
