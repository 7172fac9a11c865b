"""The reverse view, "who attends here": columns of the affinity computed in chunks of queries."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nlviz import zoo
from nlviz.capture import BlockCapture, OutOfGridError
from nlviz.explore import analyze, incoming_attention, reverse_view
from nlviz.render import QueryCells
from nlviz.nonlocal_block import PAIRWISE
from nlviz.samples import bundled_samples
from nlviz.video import OutsideCropError


def synthetic_block(pairwise: str, dims: str = "spacetime", *, query_shape=(4, 5, 6), key_shape=(4, 2, 3),
                    time_groups: int = 1, channels: int = 3, seed: int = 0, scale: float = 1.0) -> BlockCapture:
    """A capture with random factors on the given grids (odd sizes: the pool drops a row)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(2, channels, *query_shape, generator=g, dtype=torch.float64)
    phi = torch.randn(2, channels, *key_shape, generator=g, dtype=torch.float64)
    wf = torch.randn(2 * channels, generator=g, dtype=torch.float64) if pairwise == "concatenation" else None
    t_in = query_shape[0] * 2
    input_shape = (t_in, 4 * query_shape[1], 4 * query_shape[2])
    return BlockCapture("b", pairwise, dims, scale, time_groups, theta, phi, wf, input_shape)


VARIANTS = [(p, d, 1) for p in PAIRWISE for d in ("spacetime", "space", "time")]
VARIANTS += [(p, "spacetime", 2) for p in PAIRWISE]  # time groups


@pytest.mark.parametrize("pairwise,dims,groups", VARIANTS)
def test_column_equals_the_matrix_column(pairwise, dims, groups):
    b = synthetic_block(pairwise, dims, time_groups=groups, scale=0.7)
    for batch in (0, 1):
        m = b.matrix(batch)
        for cell in [(0, 0, 0), (1, 1, 2), (3, 1, 0), (2, 0, 1)]:
            k = b.flat_key(cell)
            expected = m[:, k].reshape(b.query_shape)
            for chunk in (1, 7, 4096):  # chunks that split the 120 queries evenly, unevenly, not at all
                torch.testing.assert_close(b.column(cell, batch, chunk=chunk), expected, rtol=0, atol=1e-6)
    # queries that may not attend to a key give it exactly 0
    col = b.column((1, 1, 2))
    mask = b.allowed_mask(0, 120)
    if mask is not None:
        assert (col.reshape(-1)[~mask[:, b.flat_key((1, 1, 2))]] == 0).all()


def test_column_float32_within_1e6():
    b = synthetic_block("embedded_gaussian", query_shape=(8, 16, 16), key_shape=(8, 8, 8), channels=16)
    b.theta, b.phi = b.theta.float(), b.phi.float()
    expected = b.matrix()[:, b.flat_key((5, 3, 7))].reshape(b.query_shape)
    torch.testing.assert_close(b.column((5, 3, 7), chunk=300), expected, rtol=0, atol=1e-6)


def hand_column(pairwise: str, theta: torch.Tensor, phi: torch.Tensor, k: int, wf=None, same_frame_only=False,
                key_frames=None, query_frames=None) -> torch.Tensor:
    """Weight of key k for every query, from the definitions written out one query at a time."""
    queries, keys = theta.reshape(theta.shape[0], -1).T, phi.reshape(phi.shape[0], -1).T
    out = []
    for i, q in enumerate(queries):
        allowed = [j for j in range(len(keys)) if not same_frame_only or key_frames[j] == query_frames[i]]
        if pairwise == "concatenation":
            c = len(q)
            f = {j: max(0.0, float(wf[:c] @ q + wf[c:] @ keys[j])) for j in allowed}
        else:
            f = {j: float(q @ keys[j]) for j in allowed}
        if pairwise in ("gaussian", "embedded_gaussian"):
            z = sum(math.exp(v) for v in f.values())
            out.append(math.exp(f[k]) / z if k in f else 0.0)
        else:
            out.append(f[k] / len(allowed) if k in f else 0.0)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("pairwise", PAIRWISE)
def test_column_matches_a_hand_computation(pairwise):
    # 1 frame x 2 x 2 queries, keys pooled to 1 x 1 x 2; explicit dot products, exp and sums
    b = synthetic_block(pairwise, query_shape=(1, 2, 2), key_shape=(1, 1, 2), channels=2, seed=3)
    for key in [(0, 0, 0), (0, 0, 1)]:
        k = b.flat_key(key)
        expected = hand_column(pairwise, b.theta[0], b.phi[0], k, b.concat_weight)
        torch.testing.assert_close(b.column(key).reshape(-1), expected, rtol=1e-12, atol=1e-12)
    # "space": 2 frames; queries see only the keys of their own frame
    b = synthetic_block(pairwise, "space", query_shape=(2, 2, 2), key_shape=(2, 1, 2), channels=2, seed=4)
    key_frames, query_frames = [0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1]
    for key in itertools.product(range(2), range(1), range(2)):
        k = b.flat_key(key)
        expected = hand_column(pairwise, b.theta[0], b.phi[0], k, b.concat_weight, True, key_frames, query_frames)
        torch.testing.assert_close(b.column(key, chunk=3).reshape(-1), expected, rtol=1e-12, atol=1e-12)


def test_incoming_attention_ranks_and_means():
    # uniform attention: every key ties for first place in every row
    b = synthetic_block("embedded_gaussian", query_shape=(2, 4, 4), key_shape=(2, 2, 2))
    b.theta = torch.zeros_like(b.theta)
    inc = incoming_attention(b, (1, 0, 1), chunk=5)
    assert inc.num_queries == 32 and inc.top1_share == 1.0 and inc.top5_share == 1.0
    assert inc.total == pytest.approx(32 / 8) and inc.mean_weight == pytest.approx(1 / 8)
    assert inc.uniform_weight == pytest.approx(1 / 8)
    # one-hot keys: query i attends to key i only (no pooling), so key k is top-1 for query k alone
    n = 8
    theta = (torch.eye(n, dtype=torch.float64) * 30).reshape(1, n, 2, 2, 2)
    phi = torch.eye(n, dtype=torch.float64).reshape(1, n, 2, 2, 2)
    b = BlockCapture("b", "embedded_gaussian", "spacetime", 1.0, 1, theta, phi, None, (2, 2, 2))
    inc = incoming_attention(b, (1, 0, 1))
    assert inc.top1_share == pytest.approx(1 / n) and inc.top5_share == pytest.approx(1.0)  # ties at ~0 for the rest
    assert inc.column.argmax() == b.flat_key((1, 0, 1))
    # "space": only the 16 queries of frame 1 may attend to a key of frame 1; shares are over them
    b = synthetic_block("dot_product", "space", query_shape=(2, 4, 4), key_shape=(2, 2, 2))
    inc = incoming_attention(b, (1, 0, 1))
    assert inc.num_queries == 16 and inc.uniform_weight == pytest.approx(1 / 4)
    assert (inc.column[0] == 0).all()
    rows = b.matrix()[16:].numpy()  # rows of frame 1; its allowed keys are columns 4..7
    k = b.flat_key((1, 0, 1))
    ranks = (rows[:, 4:] > rows[:, [k]]).sum(axis=1)
    assert inc.top1_share == pytest.approx((ranks < 1).mean()) and inc.top5_share == 1.0
    assert inc.mean_weight == pytest.approx(rows[:, k].mean())


def test_query_cells_are_the_query_grid():
    b = synthetic_block("embedded_gaussian")
    grid = QueryCells(b)
    assert grid.shape == b.query_shape
    assert grid.box((1, 2, 3)) == b.query_box((1, 2, 3))


@pytest.fixture(scope="module")
def demo():
    model = zoo.load("demo.embedded_gaussian")
    # the bundled real clip is 640x360: the 64 px centre crop leaves both sides outside the model's view
    return analyze(model, bundled_samples()["bigbuckbunny"])


def test_reverse_view_on_the_demo_model(demo):
    clip, cap = demo.clip, demo.capture
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    frame, x, y = 5, (x0 + x1) / 2 + 17.0, (y0 + y1) / 2 - 40.0
    for name in cap.blocks:
        v = reverse_view(cap, clip, name, frame, x, y, thumbs=demo.thumbs)
        b = cap[name]
        thumbs, factor = demo.thumbs
        assert v.column.shape == b.query_shape
        np.testing.assert_allclose(v.column, b.column(v.cell).numpy(), atol=1e-7)
        assert v.heat.shape == thumbs.shape[:3] and v.overlays.shape == thumbs.shape
        # NaN outside the crop, finite inside it, on every frame
        assert np.isnan(v.heat[:, :, : int(x0 * factor) - 1]).all()
        assert np.isnan(v.heat[:, :, int(math.ceil(x1 * factor)) + 1 :]).all()
        inside = v.heat[:, :, int(math.ceil(x0 * factor)) + 1 : int(x1 * factor) - 1]
        assert np.isfinite(inside).all()
        # the key picked is the one under the click: its region holds the pixel and the frame
        frames, (rx0, ry0, rx1, ry1) = v.region
        assert frame in frames and rx0 <= x < rx1 and ry0 <= y < ry1
        assert v.cell == b.key_at(*clip.geometry.to_input(frame, x, y))
        # softmax: the column is each query's share; together they sum to the total
        assert v.total == pytest.approx(float(v.column.sum()), rel=1e-6)
        assert v.mean_weight == pytest.approx(v.total / np.prod(b.query_shape), rel=1e-6)
        assert 0 <= v.top1_share <= v.top5_share <= 1 and v.num_queries == np.prod(b.query_shape)
        assert not v.scale.signed and v.scale.vmax == pytest.approx(float(v.column.max()))


def test_reverse_view_outside_the_crop_raises(demo):
    x0, _, _, _ = demo.clip.geometry.crop_rect()
    with pytest.raises(OutsideCropError, match="outside the centre crop"):
        reverse_view(demo.capture, demo.clip, "res3.0.nl", 0, x0 / 2, 10.0, thumbs=demo.thumbs)
    with pytest.raises(OutsideCropError, match="not one of the"):
        reverse_view(demo.capture, demo.clip, "res3.0.nl", 99, 320.0, 10.0, thumbs=demo.thumbs)


def test_key_at_outside_the_input_raises():
    b = synthetic_block("dot_product")
    with pytest.raises(OutOfGridError, match="outside the model input"):
        b.key_at(0, -1, 3)
