"""torchvision's MViT and Swin3D through nlviz's capture: rows against the model's own softmax.

The references re-run torchvision's attention code with the probabilities exposed (test-only
wrappers, checked to reproduce each module's real output), for every block of small random
configurations built with ``MViT(...)`` / ``SwinTransformer3d(...)`` and, marked slow, for the
full-size builders with random weights on 16x224x224.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.video import mvit as tv_mvit
from torchvision.models.video import swin_transformer as tv_swin
from torchvision.models.video.mvit import MSBlockConfig, MViT
from torchvision.models.video.swin_transformer import SwinTransformer3d

from nlviz.capture import capturable_blocks, capture_attention, record
from nlviz.capture_tokens import TokenCapture
from nlviz.models import torchvision_video as tvv

ATOL = 1e-5


# --- test-only references: torchvision's attention math, probabilities exposed ------------------


def _inputs(model, clip):
    """{module name: the args each attention module got} in one plain forward."""
    seen, handles = {}, []
    for name, m in tvv._attention_modules(model).items():
        handles.append(m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args)))
        handles.append(m.register_forward_hook(
            lambda mod, args, out, name=name: seen.__setitem__(name + "#out", out)))
    try:
        with torch.no_grad():
            model(clip)
    finally:
        for h in handles:
            h.remove()
    return seen


def mvit_probs(attn, x, thw):
    """MultiscaleAttention.forward re-run: (probs (B, heads, 1+Nq, 1+Nk), its output)."""
    b, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).transpose(1, 3).unbind(dim=2)
    k, k_thw = attn.pool_k(k, thw) if attn.pool_k is not None else (k, thw)
    if attn.pool_v is not None:
        v = attn.pool_v(v, thw)[0]
    q, q_thw = attn.pool_q(q, thw) if attn.pool_q is not None else (q, thw)
    a = torch.matmul(attn.scaler * q, k.transpose(2, 3))
    if attn.rel_pos_h is not None:
        a = tv_mvit._add_rel_pos(a, q, q_thw, k_thw, attn.rel_pos_h, attn.rel_pos_w, attn.rel_pos_t)
    p = a.softmax(dim=-1)
    out = torch.matmul(p, v)
    if attn.residual_pool:
        tv_mvit._add_shortcut(out, q, attn.residual_with_cls_embed)
    out = attn.project(out.transpose(1, 2).reshape(b, -1, attn.output_dim))
    return p, (out, q_thw)


def swin_probs(attn, x):
    """shifted_window_attention_3d re-run: (probs (B*nW, heads, M, M), padded positions (nW, M), output)."""
    b, t, h, w, c = x.shape
    window, shift = tv_swin._get_window_and_shift_size(list(attn.shift_size), [t, h, w], list(attn.window_size))
    rpb = attn.get_relative_position_bias(window)
    pad = tv_swin._compute_pad_size_3d((t, h, w), tuple(window))
    xp = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
    _, tp, hp, wp, _ = xp.shape
    pos = torch.arange(tp * hp * wp).reshape(1, tp, hp, wp, 1).float()
    if sum(shift) > 0:
        xp = torch.roll(xp, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        pos = torch.roll(pos, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    nw = (tp // window[0]) * (hp // window[1]) * (wp // window[2])

    def part(z):
        z = z.view(z.shape[0], tp // window[0], window[0], hp // window[1], window[1], wp // window[2], window[2], -1)
        return z.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(z.shape[0] * nw, window[0] * window[1] * window[2], -1)

    xw, posw = part(xp), part(pos)[..., 0].long()
    qkv = F.linear(xw, attn.qkv.weight, attn.qkv.bias)
    qkv = qkv.reshape(xw.size(0), xw.size(1), 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = (q * (c // attn.num_heads) ** -0.5).matmul(k.transpose(-2, -1)) + rpb
    if sum(shift) > 0:
        mask = tv_swin._compute_attention_mask_3d(xw, (tp, hp, wp), tuple(window), tuple(shift))
        a = a.view(b, nw, attn.num_heads, xw.size(1), xw.size(1)) + mask.unsqueeze(1).unsqueeze(0)
        a = a.view(-1, attn.num_heads, xw.size(1), xw.size(1))
    p = F.softmax(a, dim=-1)
    return p, posw, (p.matmul(v), attn)


# --- small configurations ------------------------------------------------------------------------


def small_mvit(v2: bool = True, seed: int = 0) -> MViT:
    torch.manual_seed(seed)
    cfgs = [
        MSBlockConfig(1, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
        MSBlockConfig(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 1, 1]),
        MSBlockConfig(2, 32, 32, [], [3, 3, 3], [], [1, 2, 2]),  # no pool_q: q off the qkv projection
        MSBlockConfig(2, 32, 32, [], [], [], []),  # neither pooled
    ]
    model = MViT(spatial_size=(32, 32), temporal_size=8, block_setting=cfgs, residual_pool=v2,
                 residual_with_cls_embed=not v2, rel_pos_embed=v2, proj_after_attn=v2, num_classes=5).eval()
    with torch.no_grad():  # make the relative position tables matter (trunc_normal 0.02 is near zero)
        for m in model.modules():
            if isinstance(m, tv_mvit.MultiscaleAttention) and m.rel_pos_h is not None:
                for p in (m.rel_pos_h, m.rel_pos_w, m.rel_pos_t):
                    p.normal_(0, 1.0)
    return model


def small_swin(window=(2, 3, 3), seed: int = 0) -> SwinTransformer3d:
    torch.manual_seed(seed)
    model = SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                              window_size=list(window), stochastic_depth_prob=0.0, num_classes=5).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, tv_swin.ShiftedWindowAttention3d):
                m.relative_position_bias_table.normal_(0, 1.0)
    return model


def _check_mvit(model, clip, queries=None):
    seen = _inputs(model, clip)
    with torch.no_grad():
        _, cap = record(model, clip)
    names = list(tvv._attention_modules(model))
    assert cap.blocks == names
    for name in names:
        attn = model.get_submodule(name)
        x, thw = seen[name]
        with torch.no_grad():
            ref, out = mvit_probs(attn, x, thw)
        torch.testing.assert_close(out[0], seen[name + "#out"][0], atol=1e-5, rtol=1e-5)  # the wrapper is the model
        b = cap[name]
        assert isinstance(b, TokenCapture) and b.num_heads == attn.num_heads and b.extra_label == "class token"
        assert b.query_shape == tuple(out[1])
        assert ref.shape[2] == 1 + b.flat_query(tuple(s - 1 for s in b.query_shape)) + 1
        n_tok = ref.shape[2]
        sample = torch.randint(0, n_tok, (queries or 1,), generator=torch.Generator().manual_seed(0))
        tokens = torch.arange(n_tok) if queries is None else torch.unique(torch.cat([torch.tensor([0, n_tok - 1]), sample]))
        got = b.token_probs(tokens, per_head=True)
        torch.testing.assert_close(got, ref[0][:, tokens], atol=ATOL, rtol=0)  # class token row and column included
        torch.testing.assert_close(b.token_probs(tokens), ref[0][:, tokens].mean(0), atol=ATOL, rtol=0)
        cell = tuple(s // 2 for s in b.query_shape)
        tok = 1 + b.flat_query(cell)
        for head in [None, *range(b.num_heads)]:
            want = ref[0][:, tok] if head is None else ref[0][head:head + 1, tok]
            want = want.mean(0)
            torch.testing.assert_close(b.row(cell, head=head).reshape(-1), want[1:], atol=ATOL, rtol=0)
            assert b.extra_weight(cell, head=head) == pytest.approx(float(want[0]), abs=ATOL)
        torch.testing.assert_close(b.extra_row(0, head=0).reshape(-1), ref[0, 0, 0, 1:], atol=ATOL, rtol=0)
    return cap


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
def test_mvit_small_every_block_equals_the_models_softmax(v2):
    model = small_mvit(v2)
    clip = torch.randn(1, 3, 8, 32, 32)
    cap = _check_mvit(model, clip)
    b0 = cap["blocks.0.attn"]
    assert b0.query_shape == (4, 8, 8) and b0.key_shape == (4, 4, 4)
    assert isinstance(b0.rule, tvv.MViTRelPosRule) == v2
    assert b0.nbytes == b0.q.nbytes + b0.k.nbytes + b0.rule.nbytes  # q/k once, plus the small rel-pos tables
    # the class token's weight is off the grid: grid rows sum to 1 minus it
    cell = (1, 2, 3)
    assert float(b0.row(cell).sum()) + b0.extra_weight(cell) == pytest.approx(1.0, abs=1e-5)


def test_mvit_rows_use_the_pooled_grids_and_blocks_are_described():
    model = small_mvit(True)
    infos = tvv.blocks(model)
    assert [i.name for i in infos] == [f"blocks.{i}.attn" for i in range(4)]
    assert [i.stride for i in infos] == [(2, 4, 4), (2, 8, 8), (2, 8, 8), (2, 8, 8)]
    assert [i.heads for i in infos] == [1, 2, 2, 2] and {i.kind for i in infos} == {"self_attention"}
    assert [i.stage for i in infos] == ["scale1", "scale2", "scale2", "scale2"]
    assert tvv.default_block(model) == "blocks.1.attn"


def _check_swin(model, clip, queries=None):
    seen = _inputs(model, clip)
    with torch.no_grad():
        _, cap = record(model, clip)
    names = list(tvv._attention_modules(model))
    assert cap.blocks == names
    for name in names:
        attn = model.get_submodule(name)
        (x,) = seen[name]
        with torch.no_grad():
            p, posw, _ = swin_probs(attn, x)
        torch.testing.assert_close(attn(x), seen[name + "#out"], atol=1e-5, rtol=1e-5)
        b = cap[name]
        rule = b.rule
        assert isinstance(rule, tvv.SwinWindowRule) and b.kind == "window_attention"
        assert b.query_shape == tuple(x.shape[1:4]) and b.num_heads == attn.num_heads
        # the model's rows, scattered onto our key tokens (padding first, then the grid)
        nw, m = posw.shape
        key_tok = rule.key_token[posw]  # (nW, M): our key token of each window position
        is_real = key_tok >= rule.n_pad
        where = torch.full((b.q.shape[2],), -1, dtype=torch.long)  # our query token -> its n * M + i
        where[(key_tok - rule.n_pad)[is_real]] = torch.arange(nw * m).reshape(nw, m)[is_real]
        assert torch.all(where >= 0)
        n_q = b.q.shape[2]
        tokens = torch.arange(n_q) if queries is None else torch.randint(
            0, n_q, (queries,), generator=torch.Generator().manual_seed(0))
        pw = p.reshape(x.shape[0], nw, b.num_heads, m, m)[0]  # batch 0
        n_of, i_of = where[tokens] // m, where[tokens] % m
        ref_rows = torch.zeros(b.num_heads, len(tokens), b.k.shape[2])
        ref_rows[:, torch.arange(len(tokens))[:, None], key_tok[n_of]] = pw[n_of, :, i_of].permute(1, 0, 2)
        got = b.token_probs(tokens, per_head=True)
        torch.testing.assert_close(got, ref_rows, atol=ATOL, rtol=0)
        torch.testing.assert_close(b.token_probs(tokens), ref_rows.mean(0), atol=ATOL, rtol=0)
        # keys outside the query's (shifted) window are exactly 0; row() is the grid part
        j = 0
        cell = tuple(int(c) for c in torch.unravel_index(tokens[j], b.query_shape))
        row = b.row(cell, head=0).reshape(-1)
        torch.testing.assert_close(row, ref_rows[0, j, rule.n_pad:], atol=ATOL, rtol=0)
        seen_keys = ref_rows[0, j, rule.n_pad:] > 1e-30
        assert torch.all(row[~seen_keys] == 0) and torch.all(row[seen_keys] > 0)
    return cap


def test_swin_small_every_block_equals_the_models_softmax_with_padding_and_shift():
    model = small_swin()
    clip = torch.randn(1, 3, 6, 40, 44)  # grid 3x10x11: padded to window multiples 4x12x12
    cap = _check_swin(model, clip)
    shifted = cap["features.0.1.attn"]
    assert shifted.rule.shifted and shifted.key_extra == 4 * 12 * 12 - 3 * 10 * 11
    assert shifted.extra_label == "padding"
    assert not cap["features.0.0.attn"].rule.shifted
    infos = tvv.blocks(model)
    assert [i.name for i in infos] == ["features.0.0.attn", "features.0.1.attn", "features.2.0.attn",
                                       "features.2.1.attn"]
    assert [i.stride for i in infos] == [(2, 4, 4), (2, 4, 4), (2, 8, 8), (2, 8, 8)]
    assert tvv.default_block(model) == "features.0.1.attn"


def test_swin_small_window_larger_than_the_grid():
    model = small_swin(window=(4, 8, 8), seed=1)  # the grid (2x5x6) is smaller: torchvision shrinks the window
    _check_swin(model, torch.randn(1, 3, 4, 20, 24))


def test_capture_on_torchvision_models_leaves_no_hooks():
    for model in (small_mvit(), small_swin()):
        assert set(capturable_blocks(model)) == set(tvv._attention_modules(model))
        with capture_attention(model) as cap:
            with torch.no_grad():
                model(torch.randn(1, 3, 8, 32, 32))
        assert len(cap) == len(tvv._attention_modules(model))
        for m in model.modules():
            assert not m._forward_hooks and not m._forward_pre_hooks


# --- the family: building, specs from the weight enums, entries, loading ---------------------------


def test_specs_and_entries_come_from_torchvisions_weight_enums():
    from torchvision.models.video import MViT_V2_S_Weights, Swin3D_T_Weights

    _, spec = tvv.ARCHS["mvit_v2_s"]()
    w = MViT_V2_S_Weights.KINETICS400_V1
    assert spec.num_frames == 16 and spec.stride == 4 and spec.crop_size == 224 and spec.short_side == 256
    assert spec.mean == tuple(round(255 * m, 4) for m in w.transforms().mean) and spec.labels == "kinetics400"
    _, sspec = tvv.ARCHS["swin3d_t"]()
    assert sspec.num_frames == 32 and sspec.stride == 2
    assert sspec.std == tuple(round(255 * s, 4) for s in Swin3D_T_Weights.KINETICS400_V1.transforms().std)
    entries = {e.arch: e for e in tvv.entries()}
    assert sorted(entries) == sorted(tvv.ARCH_NAMES)
    e = entries["mvit_v2_s"]
    assert e.url == w.url and e.filename == "mvit_v2_s-ae3be167.pth" and e.hash_prefix == "ae3be167"
    assert e.source == "torchvision" and e.file_format == "torch"
    assert e.top1 == w.meta["_metrics"]["Kinetics-400"]["acc@1"]
    assert tvv.FAMILY.name == "torchvision_video" and set(tvv.FAMILY.archs) == set(tvv.ARCH_NAMES)


def test_build_meta_and_block_tables_for_every_arch():
    for arch in tvv.ARCH_NAMES:
        with torch.device("meta"):
            model = tvv.build(arch)
        infos = tvv.blocks(model)
        assert infos and all(i.heads >= 1 for i in infos) and tvv.FAMILY.config(arch)[1].labels == "kinetics400"
        assert not hasattr(model, "spec") and not hasattr(model, "arch")  # nothing attached to torchvision's module
    with torch.device("meta"):
        assert len(tvv.blocks(tvv.build("mvit_v2_s"))) == 16
        assert len(tvv.blocks(tvv.build("swin3d_t"))) == 12
    with pytest.raises(TypeError, match="cannot change"):
        tvv.build("swin3d_t", pairwise="gaussian")
    with pytest.raises(TypeError, match="unknown override"):
        tvv.build("swin3d_t", depth=3)
    entry = {e.arch: e for e in tvv.entries()}["mvit_v2_s"]
    assert entry.pairwise == "embedded_gaussian"  # the app lists models with attention by it
    with torch.device("meta"):
        tvv.build("mvit_v2_s", **entry.build_kwargs())  # the entry's arguments build its graph


def test_mvit_clip_of_the_wrong_length_is_refused_with_how():
    with torch.device("meta"):
        model = tvv.build("mvit_v2_s")
    tvv.check_clip(model, (1, 3, 16, 224, 224))
    with pytest.raises(tvv.ClipLengthError, match="num_frames=16"):
        tvv.check_clip(model, (1, 3, 8, 224, 224))
    with torch.device("meta"):
        tvv.check_clip(tvv.build("swin3d_t"), (1, 3, 8, 100, 120))  # Swin takes any size


def test_load_reads_a_torchvision_state_dict_and_reports_another_models(tmp_path):
    from nlviz.checkpoints.common import CheckpointMismatchError

    entry = {e.arch: e for e in tvv.entries()}["swin3d_t"]
    torch.manual_seed(0)
    src = tvv.build("swin3d_t")
    path = tmp_path / entry.filename
    torch.save(src.state_dict(), path)
    model = tvv.load(entry, path, {})
    assert not model.training
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    wrong = {e.arch: e for e in tvv.entries()}["swin3d_s"]
    with pytest.raises(CheckpointMismatchError, match="swin3d_s"):
        tvv.load(wrong, path, {})


def test_download_of_a_torchvision_file_name_checks_its_hash_prefix(tmp_path):
    """nlviz's download path against a loopback server, with a file named as torchvision names
    its weights (``<arch>-<sha256 prefix>.pth``)."""
    import hashlib
    import http.server
    import io
    import threading

    from nlviz import download as dl

    buf = io.BytesIO()
    torch.save({"w": torch.arange(10)}, buf)
    payload = buf.getvalue()
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    name = f"tiny_mvit-{prefix}.pth"
    assert dl.filename_hash_prefix(name) == prefix

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            body = payload if self.path.endswith(name) else payload[::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        path = dl.download(f"{base}/models/{name}", tmp_path, hash_prefix=dl.filename_hash_prefix(name))
        assert torch.load(path, weights_only=True)["w"].tolist() == list(range(10))
        with pytest.raises(dl.DownloadError):
            dl.download(f"{base}/models/other-{prefix}.pth", tmp_path / "b", hash_prefix=prefix)
    finally:
        server.shutdown()


# --- full size, random weights, 16x224x224 -------------------------------------------------------


@pytest.mark.slow
def test_mvit_v2_s_full_size_rows_equal_the_models_softmax():
    torch.manual_seed(0)
    model = tvv.build("mvit_v2_s")
    cap = _check_mvit(model, torch.randn(1, 3, 16, 224, 224), queries=48)
    b0 = cap["blocks.0.attn"]
    assert b0.q.shape[2] == 25089 and b0.k.shape[2] == 393


@pytest.mark.slow
def test_swin3d_t_full_size_rows_equal_the_models_softmax():
    torch.manual_seed(0)
    model = tvv.build("swin3d_t")
    _check_swin(model, torch.randn(1, 3, 16, 224, 224), queries=48)


def test_swin_bias_rows_are_torchvisions_bias():
    model = small_swin(window=(4, 8, 8), seed=2)
    with torch.no_grad():
        _, cap = record(model, torch.randn(1, 3, 4, 20, 24))  # windows shrink to the grid
    for b in cap:
        rule = b.rule
        full = rule.full_bias()
        i_q = torch.arange(full.shape[1])
        assert torch.equal(rule.bias_rows(i_q), full)


def test_capture_refuses_a_clip_mvit_cannot_take_with_how_to_fix_it():
    from nlviz.video import VideoError

    model = small_mvit(True)  # built for 8 frames of 32x32
    with pytest.raises(tvv.ClipLengthError, match="exactly 8 frames of 32x32") as e:
        with torch.no_grad():
            record(model, torch.randn(1, 3, 4, 32, 32))
    assert isinstance(e.value, VideoError) and "num_frames=8" in str(e.value)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_swin_window_box_is_where_a_row_is_not_zero():
    model = small_swin()
    with torch.no_grad():
        _, cap = record(model, torch.randn(1, 3, 6, 40, 44))
    for name in ("features.0.0.attn", "features.0.1.attn", "features.2.1.attn"):
        b = cap[name]
        m = b.matrix(head=0).reshape(-1, *b.key_shape)
        for flat in range(m.shape[0]):
            cell = tuple(int(c) for c in torch.unravel_index(torch.tensor(flat), b.query_shape))
            (t0, t1), (h0, h1), (w0, w1) = b.rule.window_box(cell)
            inside = torch.zeros(b.key_shape, dtype=torch.bool)
            inside[t0:t1, h0:h1, w0:w1] = True
            assert torch.equal(m[flat] > 0, inside), (name, cell)


def test_swin_caught_and_recomputed_qk_agree_and_no_mode_is_left(monkeypatch):
    from torch.overrides import _get_current_function_mode_stack

    model = small_swin()
    clip = torch.randn(1, 3, 6, 40, 44)
    seen = []
    original = tvv._ProjectionCatcher.__torch_function__

    def counting(self, func, types, args=(), kwargs=None):
        out = original(self, func, types, args, kwargs)
        if func is F.linear and out is self.out:
            seen.append(1)
        return out

    monkeypatch.setattr(tvv._ProjectionCatcher, "__torch_function__", counting)
    with torch.no_grad():
        _, caught = record(model, clip)
        assert len(seen) == len(caught.blocks)  # every block's q/k came from the model's own projection
        monkeypatch.setattr(tvv, "RECOMPUTE_SWIN_QK", True)
        _, recomputed = record(model, clip)
    for name in caught.blocks:
        torch.testing.assert_close(caught[name].q, recomputed[name].q, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(caught[name].k, recomputed[name].k, atol=1e-5, rtol=1e-5)
    assert not _get_current_function_mode_stack()
    monkeypatch.setattr(tvv, "RECOMPUTE_SWIN_QK", False)

    class Boom(RuntimeError):
        pass

    def fail(*_, **__):
        raise Boom

    h = model.features[0][0].mlp.register_forward_hook(fail)  # the forward dies after the first attention
    try:
        with pytest.raises(Boom), torch.no_grad():
            record(model, clip)
    finally:
        h.remove()
    assert not _get_current_function_mode_stack()
    monkeypatch.setattr(tv_swin, "shifted_window_attention_3d", fail)  # dies inside the attention, mode entered
    with pytest.raises(Boom), torch.no_grad():
        record(model, clip)
    assert not _get_current_function_mode_stack()


def test_owns_keys_knows_torchvisions_state_dicts():
    with torch.device("meta"):
        for arch in ("mvit_v1_b", "swin3d_t"):
            assert tvv.owns_keys(list(tvv.build(arch).state_dict()))
    assert not tvv.owns_keys(["backbone.conv1.conv.weight", "cls_head.fc_cls.weight"])


def test_a_zoo_entry_loads_through_the_resolver_from_its_cached_file(tmp_path):
    """The zoo's fetch (the file already in the cache, its hash prefix checked) and the family's
    load, through nlviz.resolve.load: no network."""
    import dataclasses
    import hashlib

    from nlviz import resolve, zoo

    torch.manual_seed(0)
    src = tvv.build("swin3d_t", num_classes=7)
    path = tmp_path / "weights.pth"
    torch.save(src.state_dict(), path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    path.rename(tmp_path / f"swin3d_t_test-{prefix}.pth")
    base = {e.arch: e for e in tvv.entries()}["swin3d_t"]
    entry = dataclasses.replace(base, name="swin3d_t.nlviz_test_local", filename=f"swin3d_t_test-{prefix}.pth",
                                hash_prefix=prefix, num_classes=7)
    zoo.register(entry, replace_existing=True)
    try:
        lm = resolve.load(entry.name, dest_dir=tmp_path)
        assert lm.arch == "swin3d_t" and lm.family.name == "torchvision_video" and lm.spec == base.spec
        assert [b.name for b in lm.blocks][:2] == ["features.0.0.attn", "features.0.1.attn"]
        assert lm.default_block == "features.0.1.attn"
        for k, v in src.state_dict().items():
            assert torch.equal(lm.model.state_dict()[k], v)
        bad = dataclasses.replace(entry, name="swin3d_t.nlviz_test_bad", hash_prefix="0" * 8)
        zoo.register(bad, replace_existing=True)
        with pytest.raises(Exception, match="sha256"):
            resolve.load(bad.name, dest_dir=tmp_path)
    finally:
        with zoo._lock:
            zoo._REGISTRY.pop(entry.name, None)
            zoo._REGISTRY.pop("swin3d_t.nlviz_test_bad", None)


def test_threads_capturing_one_shared_swin_and_mvit_get_their_own_rows():
    import threading

    for model, shapes in ((small_swin(), [(6, 40, 44), (4, 32, 32), (6, 24, 48)]),
                          (small_mvit(), [(8, 32, 32)] * 3)):
        clips = [torch.randn(1, 3, *s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(shapes)]
        with torch.no_grad():
            want = [record(model, c)[1] for c in clips]
        got, errors = {}, []

        def run(i):
            try:
                for _ in range(2):
                    with torch.no_grad():
                        got[i] = record(model, clips[i])[1]
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clips))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for i, cap in got.items():
            assert cap.blocks == want[i].blocks
            for name in cap.blocks:
                torch.testing.assert_close(cap[name].q, want[i][name].q, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(cap[name].k, want[i][name].k, atol=1e-5, rtol=1e-5)
