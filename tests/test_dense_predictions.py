"""A dense model's label at the query (the demo models label every position): nlviz.explore.Analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlviz.explore import analyze
from nlviz.models import build, list_models
from nlviz.samples import bundled_samples
from nlviz.video import OutsideCropError

DENSE = "tiny_i3d_nl2_dense"


@pytest.fixture(scope="module")
def dense():
    if DENSE not in list_models():
        pytest.skip(f"{DENSE} is not registered")
    torch.manual_seed(0)
    model = build(DENSE)
    video = next(p for n, p in bundled_samples().items() if n.startswith("synthetic"))
    return model, analyze(model, video)


def test_label_at_the_query_is_the_heads_cell_under_the_pixel(dense):
    model, a = dense
    with torch.no_grad():
        want = torch.softmax(model.dense_logits(a.clip.input), dim=1)[0].numpy()  # (classes, T', H', W')
    np.testing.assert_allclose(a.dense_probs, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.probs, torch.softmax(model(a.clip.input), -1)[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    t_in, h_in, w_in = a.clip.geometry.input_shape
    tq, hq, wq = want.shape[1:]
    frame, x, y = 5, 40.3, 17.8  # displayed pixel -> model input (t + 0.5, y, x) -> the head's cell
    t, yi, xi = a.clip.geometry.to_input(frame, x, y)
    cell = (int(t * tq // t_in), int(yi * hq // h_in), int(xi * wq // w_in))
    top = a.predictions_at(frame, x, y, k=7)
    assert [p for _, p in top] == pytest.approx(sorted(want[:, cell[0], cell[1], cell[2]], reverse=True), abs=1e-6)
    assert {n for n, _ in top} == set(a.labels)
    assert not model.head._forward_hooks  # nothing left on the shared model


def test_clip_classifiers_have_no_label_at_a_pixel():
    torch.manual_seed(0)
    video = next(p for n, p in bundled_samples().items() if n.startswith("synthetic"))
    a = analyze(build("tiny_i3d_nl2"), video)
    assert a.dense_probs is None and a.predictions_at(0, 10.0, 10.0) is None


def test_off_the_crop_says_so(dense):
    _, a = dense
    w, h = a.clip.geometry.frame_size
    with pytest.raises(OutsideCropError):
        a.predictions_at(0, w + 5.0, 1.0)
