"""Whole-block attention statistics: hand-derived cases on synthetic captures, and the demo model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nlviz import zoo
from nlviz.capture import BlockCapture
from nlviz.explore import analyze
from nlviz.nonlocal_block import PAIRWISE
from nlviz.samples import bundled_samples
from nlviz.stats import BlockStats, block_stats, capture_stats, cosine_query_dependence, sample_queries


def make_block(theta: torch.Tensor, phi: torch.Tensor, *, pairwise="embedded_gaussian", dims="spacetime",
               groups=1, input_shape=(4, 16, 16), wf=None) -> BlockCapture:
    return BlockCapture("b", pairwise, dims, 1.0, groups, theta, phi, wf, input_shape)


def centre(box) -> tuple[float, float, float]:
    t0, t1, y0, y1, x0, x1 = box
    return (t0 + t1) / 2, (y0 + y1) / 2, (x0 + x1) / 2


def brute_force(b: BlockCapture) -> dict[str, float]:
    """The statistics from the full matrix and a loop over every (query, key) pair; all-zero rows left out."""
    m = b.matrix().double().abs()
    keep = m.sum(dim=1) > 0
    p = m / m.sum(dim=1, keepdim=True)
    tq, hq, wq = b.query_shape
    tk, hk, wk = b.key_shape
    queries = [(t, h, w) for t in range(tq) for h in range(hq) for w in range(wq)]
    keys = [(t, h, w) for t in range(tk) for h in range(hk) for w in range(wk)]
    d_px = torch.zeros(len(queries), len(keys), dtype=torch.float64)
    d_t = torch.zeros_like(d_px)
    same = torch.zeros_like(d_px)
    for i, q in enumerate(queries):
        qt, qy, qx = centre(b.query_box(q))
        for j, k in enumerate(keys):
            kt, ky, kx = centre(b.key_box(k))
            d_px[i, j] = math.hypot(qy - ky, qx - kx)
            d_t[i, j] = abs(qt - kt)
            t0, t1, *_ = b.key_box(k)
            same[i, j] = float(t0 <= qt < t1)  # the key slice covering the query's frames (centre)
    p, d_px, d_t, same = p[keep], d_px[keep], d_t[keep], same[keep]
    mean_row = p.mean(dim=0)
    ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(dim=1)
    return {
        "px": float((p * d_px).sum(1).mean()),
        "frames": float((p * d_t).sum(1).mean()),
        "entropy": float(ent.mean()),
        "dependence": float((0.5 * (p - mean_row).abs().sum(1)).mean()),
        "own": float((p * same).sum(1).mean()),
    }


def test_uniform_attention_hand_derived():
    # theta = 0: every logit is 0, every query spreads evenly over all 16 keys
    b = make_block(torch.zeros(1, 3, 2, 4, 4), torch.randn(1, 3, 2, 2, 4))
    s = block_stats(b)
    assert s.entropy == pytest.approx(math.log(16), abs=1e-6) and s.max_entropy == pytest.approx(math.log(16))
    assert s.query_dependence == pytest.approx(0.0, abs=1e-7)
    assert s.own_slice_share == pytest.approx(0.5, abs=1e-6)  # 2 key time slices, uniform mass
    ref = brute_force(b)
    assert s.mean_distance_px == pytest.approx(ref["px"], rel=1e-6)
    assert s.mean_distance_frames == pytest.approx(ref["frames"], rel=1e-6)
    # by hand in time: 2 slices, each 2 input frames wide (centres 1 and 3): half the mass is 2 frames away
    assert s.mean_distance_frames == pytest.approx(1.0, rel=1e-6)
    assert (s.query_shape, s.key_shape, s.channels, s.num_queries, s.empty_rows) == ((2, 4, 4), (2, 2, 4), 3, 32, 0)


def test_identical_rows_have_zero_query_dependence():
    # every query has the same theta vector: every row is the same (non-uniform) softmax over the keys
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(1, 4, 1, 1, 1, generator=g).expand(1, 4, 2, 4, 4).contiguous() * 3
    b = make_block(theta, torch.randn(1, 4, 2, 2, 2, generator=g))
    s = block_stats(b)
    assert s.query_dependence == pytest.approx(0.0, abs=1e-7)
    assert s.entropy < s.max_entropy - 0.1  # not uniform, yet the same for every query


def test_one_hot_self_attention_hand_derived():
    # no pooling, theta_i = 40 e_i, phi_j = e_j: query i puts all but ~e^-40 of its mass on key i
    n = 2 * 3 * 3
    eye = torch.eye(n, dtype=torch.float64)
    b = make_block((40 * eye).reshape(1, n, 2, 3, 3), eye.reshape(1, n, 2, 3, 3), input_shape=(4, 12, 12))
    s = block_stats(b)
    assert s.mean_distance_px == pytest.approx(0.0, abs=1e-12)
    assert s.mean_distance_frames == pytest.approx(0.0, abs=1e-12)
    assert s.entropy == pytest.approx(0.0, abs=1e-12)
    assert s.own_slice_share == pytest.approx(1.0, abs=1e-12)
    # mean row uniform 1/n; each one-hot row is 0.5 * ((1 - 1/n) + (n - 1) / n) = 1 - 1/n away from it
    assert s.query_dependence == pytest.approx(1 - 1 / n, abs=1e-12)


@pytest.mark.parametrize("pairwise", PAIRWISE)
@pytest.mark.parametrize("dims,groups", [("spacetime", 1), ("spacetime", 2), ("space", 1), ("time", 1)])
def test_random_blocks_match_brute_force_and_chunks_agree(pairwise, dims, groups):
    g = torch.Generator().manual_seed(7)
    theta = torch.randn(1, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    phi = torch.randn(1, 3, 4, 2, 3, generator=g, dtype=torch.float64)
    wf = torch.randn(6, generator=g, dtype=torch.float64) if pairwise == "concatenation" else None
    b = make_block(theta, phi, pairwise=pairwise, dims=dims, groups=groups, input_shape=(8, 20, 24), wf=wf)
    big, one = block_stats(b, chunk=10_000), block_stats(b, chunk=1)
    for field in ("mean_distance_px", "mean_distance_frames", "entropy", "query_dependence", "own_slice_share"):
        assert getattr(one, field) == pytest.approx(getattr(big, field), rel=1e-10, abs=1e-12), field
    if pairwise == "concatenation":
        assert big.empty_rows > 0  # the ReLU zeroes whole rows here: they must be left out, not counted as 0
    ref = brute_force(b)
    assert big.mean_distance_px == pytest.approx(ref["px"], rel=1e-9)
    assert big.mean_distance_frames == pytest.approx(ref["frames"], rel=1e-9)
    assert big.entropy == pytest.approx(ref["entropy"], rel=1e-9)
    assert big.query_dependence == pytest.approx(ref["dependence"], rel=1e-9)
    assert big.own_slice_share == pytest.approx(ref["own"], rel=1e-9)
    if dims == "space":
        assert big.own_slice_share == pytest.approx(1.0) and big.mean_distance_frames == pytest.approx(0.0)


def test_empty_rows_are_left_out():
    # dot_product with theta = 0 for the first frame's queries: their rows are all zeros
    g = torch.Generator().manual_seed(2)
    theta = torch.randn(1, 2, 2, 2, 2, generator=g)
    theta[:, :, 0] = 0
    b = make_block(theta, torch.randn(1, 2, 2, 2, 2, generator=g), pairwise="dot_product", input_shape=(2, 8, 8))
    s = block_stats(b)
    assert (s.num_queries, s.empty_rows) == (4, 4)
    assert all(math.isfinite(v) for v in (s.entropy, s.query_dependence, s.mean_distance_px))
    s = block_stats(make_block(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 2, 2, 2, 2), pairwise="dot_product"))
    assert s.num_queries == 0 and math.isnan(s.entropy)


def test_as_row_is_rounded_and_readable():
    b = make_block(torch.zeros(1, 3, 2, 4, 4), torch.randn(1, 3, 2, 2, 4))
    row = block_stats(b).as_row()
    assert row["queries (T×H×W)"] == "2×4×4" and row["keys (T×H×W)"] == "2×2×4"
    assert row["entropy (nats)"] == round(math.log(16), 2) and row["query dependence"] == 0.0
    expected = {"block", "pairwise", "dims", "channels", "distance (px)", "distance (frames)", "own-slice share"}
    assert expected <= set(row)


def test_cosine_query_dependence_hand_built():
    """GCNet's measure: identical rows -> 0, disjoint one-hot rows -> 1, and a hand-computed mix."""
    same = torch.tensor([[0.2, 0.3, 0.5]]).repeat(5, 1)
    assert cosine_query_dependence(same) == pytest.approx(0.0, abs=1e-12)
    assert cosine_query_dependence(torch.eye(4)) == pytest.approx(1.0, abs=1e-12)
    # rows a = (1, 0), b = (1, 1) / 2, c = (0, 1): cos(a, b) = cos(b, c) = 1/sqrt(2), cos(a, c) = 0
    rows = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    assert cosine_query_dependence(rows) == pytest.approx(1 - (2 / math.sqrt(2)) / 3, rel=1e-12)
    # signed rows count by |w|, all-zero rows are left out, scale does not matter
    signed = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    assert cosine_query_dependence(signed) == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(cosine_query_dependence(torch.zeros(3, 4)))


def _block_from_rows(rows: torch.Tensor) -> BlockCapture:
    """A dot-product block whose rows are exactly ``rows`` (Q, K) / K: theta = rows, phi = identity."""
    q, k = rows.shape
    theta = rows.T.reshape(1, k, 1, 1, q).double()
    phi = torch.eye(k, dtype=torch.float64).reshape(1, k, 1, 1, k)
    return make_block(theta, phi, pairwise="dot_product", input_shape=(1, 4, 4 * q))


def test_block_stats_report_both_query_dependence_measures():
    # 4 queries attending to 4 disjoint keys: cosine 1, TV to the mean row 1 - 1/4
    s = block_stats(_block_from_rows(torch.eye(4)))
    assert s.query_dependence_cos == pytest.approx(1.0, abs=1e-12)
    assert s.query_dependence == pytest.approx(0.75, abs=1e-12)
    # identical rows: both 0
    s = block_stats(_block_from_rows(torch.tensor([[1.0, 2.0, 3.0]]).repeat(4, 1)))
    assert s.query_dependence_cos == pytest.approx(0.0, abs=1e-12) and s.query_dependence == pytest.approx(0.0, abs=1e-12)
    assert s.sampled_queries is None and s.total_queries == 4
    row = s.as_row()
    assert row["query dependence (cosine, GCNet)"] == 0.0 and row["query dependence"] == 0.0


@pytest.mark.parametrize("pairwise", PAIRWISE)
def test_cosine_dependence_of_all_queries_matches_the_pairwise_definition(pairwise):
    g = torch.Generator().manual_seed(11)
    theta = torch.randn(1, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    phi = torch.randn(1, 3, 4, 2, 3, generator=g, dtype=torch.float64)
    wf = torch.randn(6, generator=g, dtype=torch.float64) if pairwise == "concatenation" else None
    b = make_block(theta, phi, pairwise=pairwise, input_shape=(8, 20, 24), wf=wf)
    m = b.matrix().double().abs()
    m = m[m.sum(1) > 0]
    u = m / m.norm(dim=1, keepdim=True)
    cos = u @ u.T
    n = len(u)
    ref = float(1 - (cos.sum() - cos.diagonal().sum()) / (n * (n - 1)))
    assert block_stats(b, queries=None, chunk=7).query_dependence_cos == pytest.approx(ref, rel=1e-9)


def test_sampled_statistics_are_seeded_and_bounded():
    g = torch.Generator().manual_seed(5)
    theta = torch.randn(1, 4, 4, 16, 16, generator=g, dtype=torch.float64)  # 1024 queries
    phi = torch.randn(1, 4, 4, 8, 8, generator=g, dtype=torch.float64)
    b = make_block(theta, phi, input_shape=(8, 32, 32))
    flat = sample_queries(b, 100, seed=3)
    assert len(flat) == 100 and len(set(flat.tolist())) == 100 and torch.equal(flat, sample_queries(b, 100, seed=3))
    assert sample_queries(b, 2000) is None  # more than the grid: every query
    a, again, full = block_stats(b, queries=100, seed=3), block_stats(b, queries=100, seed=3), block_stats(b, queries=None)
    assert a == again and a.sampled_queries == 100 and a.num_queries == 100 and a.total_queries == 1024
    assert full.sampled_queries is None and full.num_queries == 1024
    # the sample's statistics are those of exactly the sampled rows
    m = b.matrix().double()[flat]
    p = m / m.sum(1, keepdim=True)
    ent = float((-(p * p.log()).sum(1)).mean())
    assert a.entropy == pytest.approx(ent, rel=1e-9)
    assert a.query_dependence_cos == pytest.approx(cosine_query_dependence(m), rel=1e-9)
    # and near the full figures (256-ish samples estimate a mean to a few per cent here)
    assert a.entropy == pytest.approx(full.entropy, rel=0.05)


def test_demo_model_stats_are_finite_and_in_range():
    model = zoo.load("demo.embedded_gaussian")
    analysis = analyze(model, bundled_samples()["synthetic_11"])
    stats = capture_stats(analysis.capture)
    assert list(stats) == analysis.capture.blocks
    for name, s in stats.items():
        assert isinstance(s, BlockStats) and s.name == name and s.empty_rows == 0
        t_in, h_in, w_in = s.input_shape
        values = [s.mean_distance_px, s.mean_distance_frames, s.entropy, s.query_dependence, s.own_slice_share]
        assert np.isfinite(np.array(values)).all()
        assert 0 <= s.mean_distance_px <= math.hypot(h_in, w_in)
        assert 0 <= s.mean_distance_frames <= t_in
        assert 0 <= s.entropy <= s.max_entropy + 1e-6
        assert s.max_entropy == pytest.approx(math.log(np.prod(s.key_shape)))
        assert 0 <= s.query_dependence <= 1 and 0 <= s.own_slice_share <= 1 + 1e-9
        assert 0 <= s.query_dependence_cos <= 1
        assert s.channels == analysis.capture[name].theta.shape[1]
