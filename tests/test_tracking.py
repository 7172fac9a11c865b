"""The object-tracking score and its query-independent control (nlviz.tracking)."""

from __future__ import annotations

import pytest
import torch

from nlviz import synthetic
from nlviz.capture import attention_blocks
from nlviz.models import build
from nlviz.tracking import tracking_scores


@pytest.fixture(scope="module")
def data():
    clips, _, masks = synthetic.make_dataset(3, 4242)
    return clips, masks


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build("tiny_i3d_nl2", num_classes=4, pairwise="embedded_gaussian")


def test_a_query_independent_block_scores_exactly_its_control(data):
    """theta(x) = a constant vector: every query's row is softmax_j(b . phi(x_j)), one map for all
    queries, so each query's score is the control's score."""
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
        assert 0 < s.chance < 1 and 0 <= s.score <= 1


def test_uniform_attention_scores_chance_and_so_does_its_control(data):
    """theta(x) = 0: every weight is 1 / N_keys, so the mass on an object is its area share."""
    model = _model()
    with torch.no_grad():
        for block in attention_blocks(model).values():
            block.theta.conv.weight.zero_()
            block.theta.conv.bias.zero_()
    for s in tracking_scores(model, *data):
        assert s.ratio == pytest.approx(1.0, rel=1e-6) and s.control_ratio == pytest.approx(1.0, rel=1e-6)


def test_the_gaussian_demo_model_tracks_more_than_its_control(data):
    """The shipped gaussian model follows the query's own object (bench/demo_attention.py: about 10x
    chance in res3, its mean row about 4x): per-query rows beat the query-independent map."""
    from nlviz import zoo

    if "demo.gaussian" not in zoo.names():
        pytest.skip("the gaussian demo model is not bundled")
    res3 = next(s for s in tracking_scores(zoo.load("demo.gaussian"), *data) if s.block == "res3.0.nl")
    assert res3.ratio > 1.5 * res3.control_ratio > 1.5, (res3.ratio, res3.control_ratio)
