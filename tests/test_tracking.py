"""The object-tracking score, its query-independent control, and GCNet's query dependence (nlviz.tracking)."""

from __future__ import annotations

import math

import pytest
import torch

from nlviz import synthetic
from nlviz.capture import attention_blocks
from nlviz.models import build
from nlviz.tracking import query_dependence_scores, tracking_scores


@pytest.fixture(scope="module")
def data():
    clips, _, masks = synthetic.make_track_dataset(3, 4242)
    return clips, masks


def _model(seed: int = 0, pairwise: str = "embedded_gaussian"):
    torch.manual_seed(seed)
    return build("tiny_i3d_nl2_dense", num_classes=len(synthetic.TRACK_CLASSES), pairwise=pairwise)


def test_a_query_independent_block_scores_exactly_its_control(data):
    """theta(x) = a constant vector: every query's row is softmax_j(b . phi(x_j)), one map for all
    queries, so each query's score is the control's score, and the query dependence is 0."""
    model = _model()
    with torch.no_grad():
        for block in attention_blocks(model).values():
            block.theta.conv.weight.zero_()
            block.theta.conv.bias.normal_(0, 3.0)
    scores = tracking_scores(model, *data)
    assert [s.block for s in scores] == ["res3.0.nl", "res4.0.nl"]
    for s in scores:
        assert s.queries == 12  # 3 clips x 4 queries, every object large enough
        assert s.score == pytest.approx(s.control, rel=1e-6)
        assert s.ratio == pytest.approx(s.control_ratio, rel=1e-6)
        assert s.positive == pytest.approx(s.score, rel=1e-9)  # softmax rows are their own positive part
        assert 0 < s.chance < 1 and 0 <= s.score <= 1
    for d in query_dependence_scores(model, *data, queries=16):
        assert d.random == pytest.approx(0.0, abs=1e-6) and d.on_objects == pytest.approx(0.0, abs=1e-6)
        assert d.zero_rows == 0 and d.clips == 3


def test_uniform_attention_scores_chance_and_so_does_its_control(data):
    """theta(x) = 0: every weight is 1 / N_keys, so the mass on an object is its area share."""
    model = _model()
    with torch.no_grad():
        for block in attention_blocks(model).values():
            block.theta.conv.weight.zero_()
            block.theta.conv.bias.zero_()
    for s in tracking_scores(model, *data, frames=range(10, 16)):
        assert s.ratio == pytest.approx(1.0, rel=1e-6) and s.control_ratio == pytest.approx(1.0, rel=1e-6)


def test_a_dead_concatenation_block_has_only_zero_rows(data):
    """ReLU(w_q . theta_i + w_k . phi_j) with both halves of w_f negative and theta, phi >= 0 (ReLU
    features, zero projections with positive biases): every row is 0, and the measure says so."""
    model = _model(pairwise="concatenation")
    with torch.no_grad():
        for block in attention_blocks(model).values():
            for proj in (block.theta, block.phi):
                proj.conv.weight.zero_()
                proj.conv.bias.fill_(1.0)
            block.concat_project.weight.fill_(-1.0)
    for d in query_dependence_scores(model, *data, queries=8):
        assert d.zero_rows == 1.0 and math.isnan(d.random)


def test_the_shipped_embedded_gaussian_model_follows_the_query(data):
    """The shipped model's res3 block puts its attention on the query's own object, far above its
    query-independent mean row (bench/demo_attention.py measures it on more clips)."""
    from nlviz import zoo

    model = zoo.load("demo.embedded_gaussian")
    res3 = next(s for s in tracking_scores(model, *data, queries_per_clip=6, frames=range(10, 16))
                if s.block == "res3.0.nl")
    assert res3.ratio > 2 * res3.control_ratio and res3.ratio > 3, (res3.ratio, res3.control_ratio)


def test_the_shipped_dot_product_model_tells_the_object_by_sign(data):
    """A dot product's f is linear in the key features: the shipped model's res3 block is positive on
    the query's object and negative on the others, so the positive part max(f, 0) lies on the object
    far more than |f| does (bench/demo_attention.py: 6.4x against 3.5x chance on 50 clips)."""
    from nlviz import zoo

    model = zoo.load("demo.dot_product")
    res3 = next(s for s in tracking_scores(model, *data, queries_per_clip=6, frames=range(10, 16))
                if s.block == "res3.0.nl")
    assert res3.positive_ratio > 4 and res3.positive_ratio > 1.4 * res3.ratio, (res3.positive_ratio, res3.ratio)
