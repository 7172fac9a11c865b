"""Heads and token-grid attention in capture: BlockCapture's head argument, TokenCapture's rows
against a plain softmax, the rules (bias, divided space/time), and a capture adapter."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from nlviz.capture import (
    CaptureAdapter,
    OutOfGridError,
    adapters,
    capturable_blocks,
    capture_attention,
    record,
    register_adapter,
)
from nlviz.capture_tokens import AttentionRule, DividedRule, Terms, TokenCapture
from nlviz.nonlocal_block import NonLocalBlock


def _tiny_nl_capture():
    torch.manual_seed(0)
    block = NonLocalBlock(8, pairwise="embedded_gaussian", subsample=True).eval()
    model = nn.Sequential(nn.Conv3d(3, 8, 1), block).eval()
    _, cap = record(model, torch.randn(1, 3, 4, 6, 6))
    return cap[cap.blocks[0]]


def test_block_capture_takes_a_head_and_has_one():
    b = _tiny_nl_capture()
    assert b.num_heads == 1 and b.channels == b.theta.shape[1]
    cell = (1, 2, 3)
    assert torch.equal(b.row(cell), b.row(cell, head=None))
    assert torch.equal(b.row(cell), b.row(cell, head=0))
    assert torch.equal(b.rows([cell], head=0), b.rows([cell]))
    assert torch.equal(b.matrix(head=0), b.matrix())
    assert torch.equal(b.column((0, 0, 0), head=0), b.column((0, 0, 0)))
    assert [s for s, _ in b.row_chunks(chunk=20, head=0)] == [s for s, _ in b.row_chunks(chunk=20)]
    assert b.extra_weight(cell) == 0.0 and b.extra_tokens == () and b.extra_label is None
    for bad in (1, -1, True):
        with pytest.raises(OutOfGridError, match="one head"):
            b.row(cell, head=bad)


def _reference(q, k, scale, bias=None, valid=None):
    """Per-head softmax (B=1): q (h, Nq, d), k (h, Nk, d) -> (h, Nq, Nk)."""
    logits = scale * q @ k.transpose(1, 2)
    if bias is not None:
        logits = logits + bias
    if valid is not None:
        logits = logits.masked_fill(~valid, float("-inf"))
    return logits.softmax(-1)


def _token_capture(rule=None, extra=1, grid=(2, 3, 4), heads=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = extra + grid[0] * grid[1] * grid[2]
    q = torch.randn(1, heads, n, d, generator=g)
    k = torch.randn(1, heads, n, d, generator=g)
    return TokenCapture(name="blk", q=q, k=k, query_grid=grid, key_grid=grid, input_shape=(4, 12, 16),
                        scale=d ** -0.5, query_extra=extra, key_extra=extra, extra_label="class token", rule=rule)


def test_token_rows_are_the_per_head_softmax_and_their_mean():
    b = _token_capture()
    ref = _reference(b.q[0], b.k[0], b.scale)  # (h, 25, 25)
    assert b.num_heads == 3 and b.query_shape == (2, 3, 4) and b.key_shape == (2, 3, 4) and not b.signed
    cell = (1, 2, 1)
    tok = 1 + b.flat_query(cell)
    for h in range(3):
        torch.testing.assert_close(b.row(cell, head=h).reshape(-1), ref[h, tok, 1:], atol=1e-6, rtol=0)
        assert b.extra_weight(cell, head=h) == pytest.approx(float(ref[h, tok, 0]), abs=1e-6)
    torch.testing.assert_close(b.row(cell).reshape(-1), ref[:, tok, 1:].mean(0), atol=1e-6, rtol=0)
    assert float(b.row(cell).sum()) + b.extra_weight(cell) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(b.token_probs(range(25), per_head=True), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.extra_row(0, head=1).reshape(-1), ref[1, 0, 1:], atol=1e-6, rtol=0)
    full = b.matrix()
    torch.testing.assert_close(full, ref[:, 1:, 1:].mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(b.matrix(head=2), ref[2, 1:, 1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(b.column((0, 1, 1)).reshape(-1), full[:, b.flat_key((0, 1, 1))], atol=1e-6, rtol=0)
    starts = [s for s, rows in b.row_chunks(chunk=7)]
    assert starts == [0, 7, 14, 21]
    assert b.allowed_mask(0, 5) is None
    assert b.nbytes == b.q.nbytes + b.k.nbytes
    with pytest.raises(OutOfGridError, match="3 heads"):
        b.row(cell, head=3)
    with pytest.raises(OutOfGridError):
        b.row((2, 0, 0))


class _RandomBias(AttentionRule):
    """A per-query additive bias, computed for the queries asked for only."""

    def __init__(self, table):
        self.table = table  # (h, Nq_tokens, Nk_tokens)
        self.asked = []

    def terms(self, capture, tokens, batch):
        self.asked.append(len(tokens))
        return Terms(bias=self.table[:, tokens])


def test_bias_rule_is_exact_and_computed_for_the_asked_queries_only():
    g = torch.Generator().manual_seed(1)
    table = torch.randn(3, 25, 25, generator=g)
    rule = _RandomBias(table)
    b = _token_capture(rule)
    ref = _reference(b.q[0], b.k[0], b.scale, bias=table)
    cell = (0, 2, 3)
    tok = 1 + b.flat_query(cell)
    for h in (None, 0, 2):
        got = b.row(cell, head=h).reshape(-1)
        want = ref[:, tok, 1:].mean(0) if h is None else ref[h, tok, 1:]
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert rule.asked and set(rule.asked) == {1}


@pytest.mark.parametrize("dims", ["space", "time"])
def test_divided_rule_keys_outside_are_exactly_zero(dims):
    b = _token_capture(DividedRule(dims))
    grid = b.query_shape
    t, h, w = torch.meshgrid(*(torch.arange(s) for s in grid), indexing="ij")
    t, hw = t.reshape(-1), (h * grid[2] + w).reshape(-1)
    same = (t[:, None] == t[None, :]) if dims == "space" else (hw[:, None] == hw[None, :])
    valid = torch.ones(25, 25, dtype=torch.bool)
    valid[1:, 1:] = same
    ref = _reference(b.q[0], b.k[0], b.scale, valid=valid)
    cell = (1, 1, 2)
    tok = 1 + b.flat_query(cell)
    row = b.row(cell, head=1).reshape(-1)
    torch.testing.assert_close(row, ref[1, tok, 1:], atol=1e-6, rtol=0)
    assert torch.all(row[~same[tok - 1]] == 0)
    torch.testing.assert_close(b.allowed_mask(0, 24), same, rtol=0, atol=0)
    torch.testing.assert_close(b.matrix(), ref[:, 1:, 1:].mean(0), atol=1e-6, rtol=0)


class _KeyListRule(AttentionRule):
    """Each query sees a listed subset of keys (a window), given as indices."""

    def terms(self, capture, tokens, batch):
        n = capture.k.shape[2]
        keys = torch.stack([(tokens + j) % n for j in range(4)], dim=1)  # 4 keys per query
        valid = torch.ones_like(keys, dtype=torch.bool)
        valid[:, 3] = tokens % 2 == 0  # odd queries see only 3
        return Terms(keys=keys, valid=valid)


def test_key_list_rule_scatters_onto_the_grid():
    b = _token_capture(_KeyListRule(), extra=0)
    n = 24
    tok = torch.arange(n)
    keys = torch.stack([(tok + j) % n for j in range(4)], dim=1)
    valid = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(4 if i % 2 == 0 else 3):
            valid[i, keys[i, j]] = True
    ref = _reference(b.q[0], b.k[0], b.scale, valid=valid)
    torch.testing.assert_close(b.matrix(), ref.mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(b.allowed_mask(0, n), valid, rtol=0, atol=0)
    assert b.extra_weight((0, 0, 0)) == 0.0


# -- an adapter: a toy token transformer captured through the plug-in point


class ToyAttention(nn.Module):
    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.heads, self.qkv = heads, nn.Linear(dim, 3 * dim)

    def forward(self, x):  # (B, 1 + N, C)
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)
        return (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


class ToyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv3d(3, 8, (1, 2, 2), stride=(1, 2, 2))
        self.cls = nn.Parameter(torch.randn(8))
        self.attn = nn.ModuleList([ToyAttention(), ToyAttention()])

    def forward(self, clip):
        x = self.embed(clip)
        self.grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), 1, -1), x], dim=1)
        for a in self.attn:
            x = x + a(x)
        return x[:, 0]


def _find_toy(model):
    return {f"{name}": m for name, m in model.named_modules() if isinstance(m, ToyAttention)}


def _hook_toy(name, module, ctx):
    def on_qkv(_m, args, out):
        if not ctx.mine():
            return
        b, n, c3 = out.shape
        c = c3 // 3
        q, k, _ = out.reshape(b, n, 3, module.heads, c // module.heads).permute(2, 0, 3, 1, 4)
        t, h, w = ctx.input_shape[0], ctx.input_shape[1] // 2, ctx.input_shape[2] // 2
        ctx.store(TokenCapture(name=name, q=ctx.keep(q).clone(), k=ctx.keep(k).clone(), query_grid=(t, h, w),
                               key_grid=(t, h, w), input_shape=ctx.input_shape, scale=(c // module.heads) ** -0.5,
                               query_extra=1, key_extra=1, extra_label="class token"))

    return [module.qkv.register_forward_hook(on_qkv)]


TOY = CaptureAdapter(name="toy-test", find=_find_toy, hook=_hook_toy)


def _toy_probs(model, clip, i):
    """The toy block's own softmax, from its input (a test-only re-run of its math)."""
    kept = {}
    h = model.attn[i].register_forward_pre_hook(lambda m, a: kept.setdefault("x", a[0]))
    model(clip)
    h.remove()
    a = model.attn[i]
    b, n, c = kept["x"].shape
    q, k, _ = a.qkv(kept["x"]).reshape(b, n, 3, a.heads, c // a.heads).permute(2, 0, 3, 1, 4)
    return ((q * (c // a.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)  # (B, h, N, N)


def test_a_registered_adapter_captures_and_leaves_nothing_on_the_model():
    register_adapter(TOY)
    register_adapter(TOY)  # again: replaced, not doubled
    assert [a.name for a in adapters()].count("toy-test") == 1 and adapters()[0].name == "nonlocal"
    torch.manual_seed(0)
    model = ToyNet().eval()
    clip = torch.randn(1, 3, 2, 4, 6)
    assert list(capturable_blocks(model)) == ["attn.0", "attn.1"]
    with torch.no_grad():
        _, cap = record(model, clip)
        ref = _toy_probs(model, clip, 1)
    assert cap.blocks == ["attn.0", "attn.1"]
    b = cap["attn.1"]
    assert b.query_shape == (2, 2, 3) and b.num_heads == 2
    cell = (1, 0, 2)
    tok = 1 + b.flat_query(cell)
    for h in range(2):
        torch.testing.assert_close(b.row(cell, head=h).reshape(-1), ref[0, h, tok, 1:], atol=1e-6, rtol=0)
        assert b.extra_weight(cell, head=h) == pytest.approx(float(ref[0, h, tok, 0]), abs=1e-6)
    torch.testing.assert_close(b.token_probs(range(13), per_head=True), ref[0], atol=1e-6, rtol=0)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    with capture_attention(model, blocks=["attn.0"]) as only:
        with torch.no_grad():
            model(clip)
    assert only.blocks == ["attn.0"]


def test_adapter_hooks_record_only_the_owner_thread():
    register_adapter(TOY)
    torch.manual_seed(0)
    model = ToyNet().eval()
    results, errors = {}, []

    def run(i):
        try:
            clip = torch.full((1, 3, 2, 4, 2 * (i + 1)), float(i))
            with torch.no_grad():
                _, cap = record(model, clip)
            results[i] = cap["attn.0"].query_shape
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {i: (2, 2, i + 1) for i in range(4)}


def test_with_heads_binds_one_head_for_views_written_for_blocks():
    from nlviz.capture import Capture, CaptureError, HeadView

    b = _token_capture()
    cap = Capture({"blk": b})
    one = cap.with_heads({"blk": 2})
    hb = one["blk"]
    assert isinstance(hb, HeadView) and hb.head == 2 and hb.query_shape == b.query_shape and hb.num_heads == 3
    cell = (1, 0, 3)
    assert torch.equal(hb.row(cell), b.row(cell, head=2))
    assert torch.equal(hb.row(cell, head=None), b.row(cell))  # an explicit head still wins
    assert torch.equal(hb.rows([cell]), b.rows([cell], head=2))
    assert torch.equal(hb.matrix(), b.matrix(head=2))
    assert torch.equal(hb.column((0, 0, 0)), b.column((0, 0, 0), head=2))
    assert hb.extra_weight(cell) == b.extra_weight(cell, head=2)
    assert [s for s, _ in hb.row_chunks(chunk=10)] == [0, 10, 20]
    assert cap.with_heads({"blk": None})["blk"] is b
    assert one.with_heads({"blk": 0})["blk"].head == 0  # re-binding starts from the block itself
    with pytest.raises(OutOfGridError):
        cap.with_heads({"blk": 3})
    with pytest.raises(CaptureError):
        cap.with_heads({"nope": 0})
    nl = _tiny_nl_capture()
    assert Capture({nl.name: nl}).with_heads({nl.name: 0})[nl.name].row((0, 0, 0)).shape == nl.key_shape


def test_stats_and_query_view_take_a_head_bound_block():
    from nlviz import stats
    from nlviz.capture import Capture

    b = _token_capture()
    hb = Capture({"blk": b}).with_heads({"blk": 1})["blk"]
    s_mean, s_one = stats.block_stats(b, queries=None), stats.block_stats(hb, queries=None)
    assert s_one.num_queries == s_mean.num_queries == 24 and s_one.entropy != s_mean.entropy


def test_view_specs_carry_the_head_and_older_specs_still_read():
    import json

    from nlviz.export import ViewSpec, ViewSpecError

    base = dict(model="m", checkpoint_sha256="a" * 64, video="sample:x", video_sha256="b" * 64,
                sampling={}, frame=1, x=2.0, y=3.0, block="blocks.1.attn", pairwise="embedded_gaussian", version=1)
    old = ViewSpec.from_json(json.dumps(base))  # written before heads: the mean
    assert old.head is None
    spec = ViewSpec.from_json(json.dumps({**base, "head": 3}))
    assert spec.head == 3 and json.loads(spec.to_json())["head"] == 3
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ViewSpecError, match="head"):
            ViewSpec.from_json(json.dumps({**base, "head": bad}))


def test_attend_takes_a_head_and_says_when_a_block_has_none(tmp_path, capsys):
    from nlviz import cli
    from nlviz.export import export_stem
    from nlviz.samples import bundled_samples

    video = "sample:" + next(n for n in bundled_samples() if n.startswith("synthetic_"))
    code = cli.main(["attend", video, "--model", "demo.gaussian", "--block", "res3.0.nl", "--head", "1",
                     "--frame", "8", "--xy", "32.5", "20.5", "--out", str(tmp_path), "--formats", "json"])
    err = capsys.readouterr().err
    assert code == 2 and "has 1 head: no head 1" in err
    code = cli.main(["attend", video, "--model", "demo.gaussian", "--head", "0", "--frame", "8",
                     "--xy", "32.5", "20.5", "--out", str(tmp_path), "--formats", "json"])
    out, err = capsys.readouterr()
    assert code == 0 and "its files show the mean" in err
    assert all("_h" not in Path(line).name for line in out.split())  # one-head blocks: the usual names
    assert export_stem("blocks.1.attn", 3, 1.5, 2.0, head=2) == "blocks.1.attn_h2_f3_x1.5_y2"
