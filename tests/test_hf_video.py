"""The Hugging Face video transformers family: nlviz's rows are the models' own attention.

Tiny random configurations of VideoMAE, TimeSformer, ViViT and V-JEPA 2 (built in-process; no hub
download). The reference is each model's own probabilities: ``output_attentions=True`` under
``attn_implementation="eager"`` for the encoder layers, the eager attention function's returned
weights for V-JEPA 2's pooler, and TimeSformer's own attention module called with
``output_attentions=True`` on its captured input for the temporal factor (the model returns
only the spatial one). Rows must match within 1e-5 per head and for the head mean, every layer,
whether the captured model runs SDPA or eager.
"""

from __future__ import annotations

import importlib
from pathlib import Path
import json
import sys

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")

from nlviz.capture import capture_attention, record  # noqa: E402
from nlviz.download import OfflineError  # noqa: E402
from nlviz.models import hf_video as hv  # noqa: E402
from nlviz.models.hf_video.structure import find_sites, resolve_site, short_name  # noqa: E402

TINY = ["videomae_tiny", "timesformer_tiny", "vivit_tiny", "vjepa2_tiny"]
TOL = 1e-5


def _clip(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    s = model.spec
    return torch.randn(1, 3, s.num_frames, s.crop_size, s.crop_size, generator=g)


def _short(model):
    """{short name ("layer.0", "layer.0.time", "pooler.0"): block name} of a model."""
    found = find_sites(model.hf)
    return {short_name(s, found): hv.block_name(s) for s in found}


def _pair(arch):
    """(eager reference model, {impl: model with the same weights}) for every implementation the class has."""
    torch.manual_seed(0)
    ref = hv.build(arch, attn_implementation="eager")
    models = {}
    for impl in hv.ARCHS[arch].attn_options:
        m = hv.build(arch, attn_implementation=impl)
        m.load_state_dict(ref.state_dict())
        models[impl] = m
    return ref, models


def _reference(ref, clip):
    """{capture name: (heads, N_tok, N_tok)} the model's own probabilities, in the capture's token order."""
    hf = ref.hf
    cfg = hf.config
    names = [b.name for b in hv.blocks(ref)]
    kept, handles = {}, []
    sites = hv.hooks.sites(ref)
    for name, (site, module) in sites.items():
        if site.kind == "divided_time":
            def pre(_m, args, name=name):
                kept[name] = args[0]
            handles.append(module.register_forward_pre_hook(pre))
        elif site.where == "pooler":
            def post(_m, _args, out, name=name):
                kept[name] = out[1]
            handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad():
            out = hf(clip.transpose(1, 2), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    kinds = {name: site for name, (site, _) in sites.items()}
    enc = [n for n in names if kinds[n].where == "encoder" and kinds[n].kind != "divided_time"]
    assert len(out.attentions) == len(enc)
    lay = hv.layout(cfg)
    t, h, w = lay.grid(tuple(clip.shape[2:]))
    hw = h * w
    result = {}
    for name, att in zip(enc, out.attentions):
        if kinds[name].kind == "divided_space":  # (B*T, heads, 1+HW, 1+HW) -> capture order [cls_0..cls_T-1, grid]
            heads = att.shape[1]
            full = torch.zeros(heads, t + t * hw, t + t * hw)
            for f in range(t):
                idx = torch.tensor([f] + [t + f * hw + j for j in range(hw)])
                full[:, idx[:, None], idx[None, :]] = att[f]
            result[name] = full
        else:
            result[name] = att[0]
    for name, (site, module) in sites.items():
        if site.kind == "divided_time":  # the module's own probabilities on its own input
            with torch.no_grad():
                att = module(kept[name], output_attentions=True)[1]  # (B*H*W, heads, T, T)
            heads = att.shape[1]
            full = torch.zeros(heads, t * hw, t * hw)
            for p in range(hw):
                idx = torch.tensor([f * hw + p for f in range(t)])
                full[:, idx[:, None], idx[None, :]] = att[p]
            result[name] = full
        elif site.where == "pooler":
            result[name] = kept[name][0]
    assert set(result) == set(names)
    return result


@pytest.mark.parametrize("arch", TINY)
def test_rows_are_the_models_own_probabilities(arch):
    ref, models = _pair(arch)
    clip = _clip(ref)
    expected = _reference(ref, clip)
    for impl, model in models.items():
        assert model.hf.config._attn_implementation == impl
        with torch.no_grad():
            logits, cap = record(model, clip)
            ref_logits = ref(clip)
        assert torch.allclose(logits, ref_logits, atol=1e-5), impl
        assert cap.blocks == [b.name for b in hv.blocks(model)]
        for name, probs in expected.items():
            b = cap[name]
            n_tok = b.q.shape[2]
            mine = b.token_probs(range(n_tok), per_head=True)
            assert mine.shape == probs.shape, name
            assert (mine - probs).abs().max() <= TOL, (impl, name)  # every head, every token, class tokens too
            e_q, e_k = b.query_extra, b.key_extra
            grid = probs[:, e_q:, e_k:]
            for head in range(b.num_heads):
                assert (b.matrix(head=head) - grid[head]).abs().max() <= TOL, (impl, name, head)
            assert (b.matrix() - grid.mean(0)).abs().max() <= TOL, (impl, name)
            cells = [(0, 0, 0), tuple(s - 1 for s in b.query_shape), (b.query_shape[0] // 2, 1, 2)]
            for cell in cells:
                flat = b.flat_query(cell)
                row = b.row(cell)
                assert row.shape == b.key_shape
                assert (row.reshape(-1) - grid.mean(0)[flat]).abs().max() <= TOL
                assert abs(b.extra_weight(cell) - float(probs.mean(0)[e_q + flat, :e_k].sum())) <= TOL


def test_sdpa_stays_the_default_and_capture_needs_no_eager():
    for arch in ("videomae_tiny", "vivit_tiny", "vjepa2_tiny"):
        model = hv.build(arch)
        assert model.hf.config._attn_implementation == "sdpa"
        with torch.no_grad():
            _, cap = record(model, _clip(model))
        assert len(cap) == len(hv.blocks(model))
    assert hv.build("timesformer_tiny").hf.config._attn_implementation == "eager"  # the class has no SDPA


def test_layouts_and_block_metadata():
    vm = hv.build("videomae_tiny")
    assert [b.name for b in hv.blocks(vm)] == [f"hf.videomae.encoder.layer.{i}.attention.attention" for i in (0, 1)]
    assert [b.stage for b in hv.blocks(vm)] == ["layer.0", "layer.1"]
    assert {b.stride for b in hv.blocks(vm)} == {(2, 8, 8)}
    for b in hv.blocks(vm):
        assert vm.get_submodule(b.name) is not None  # a qualified module name of the wrapper
    ts = hv.build("timesformer_tiny")
    blocks = hv.blocks(ts)
    assert list(_short(ts)) == ["layer.0.time", "layer.0.space", "layer.1.time", "layer.1.space"]
    assert blocks[0].name == "hf.timesformer.encoder.layer.0.temporal_attention.attention"
    assert [b.kind for b in blocks] == ["divided_time", "divided_space"] * 2
    assert [b.depth for b in blocks] == [0, 1, 2, 3] and blocks[0].stage == blocks[1].stage == "layer.0"
    assert blocks[0].label.startswith("layer 0 time") and blocks[1].label.startswith("layer 0 space")
    assert hv.default_block(ts) == _short(ts)["layer.1.space"]
    vj = hv.build("vjepa2_tiny")
    assert list(_short(vj)) == ["layer.0", "layer.1", "pooler.0"]  # the predictor never runs
    assert [b.stage for b in hv.blocks(vj)] == ["layer.0", "layer.1", "pooler.0"]
    assert "RoPE" in hv.blocks(vj)[0].label and all(b.heads == 3 for b in hv.blocks(vj))
    with torch.no_grad():
        _, cap = record(ts, _clip(ts))
    names = _short(ts)
    sp, tm = cap[names["layer.0.space"]], cap[names["layer.0.time"]]
    assert sp.query_shape == tm.query_shape == (3, 4, 4) and sp.input_shape == (3, 32, 32)
    assert (sp.query_extra, sp.key_extra, tm.query_extra) == (3, 3, 0)
    row = sp.row((1, 2, 3))
    assert row[0].abs().max() == 0 and row[2].abs().max() == 0  # within the frame only
    assert abs(float(row.sum()) + sp.extra_weight((1, 2, 3)) - 1) < 1e-6
    trow = tm.row((1, 2, 3))
    assert trow.sum(0).count_nonzero() == 1 and abs(float(trow.sum()) - 1) < 1e-6  # over T at one patch
    cls_row = sp.extra_row(2)  # the class token as frame 2's query
    assert cls_row[:2].abs().max() == 0 and cls_row[2].sum() > 0
    vv = hv.build("vivit_tiny")
    with torch.no_grad():
        _, cap = record(vv, _clip(vv))
    b = cap[_short(vv)["layer.0"]]
    assert b.extra_tokens == ("class token",) and b.query_shape == (2, 4, 4)


def test_two_hop_composition_is_the_product_of_the_factors():
    ts = hv.build("timesformer_tiny")
    with torch.no_grad():
        _, cap = record(ts, _clip(ts))
    names = _short(ts)
    tm, sp = cap[names["layer.1.time"]], cap[names["layer.1.space"]]
    cell = (2, 1, 3)
    for head in (None, 1):
        two = hv.two_hop_row(tm, sp, cell, head=head)
        brute = (sp.matrix(head=head) @ tm.matrix(head=head))[sp.flat_query(cell)].reshape(sp.key_shape)
        assert torch.allclose(two, brute, atol=1e-6)
        assert abs(float(two.sum()) - (1 - sp.extra_weight(cell, head=head))) < 1e-5
    assert "not attention the model computed" in hv.TWO_HOP_LABEL
    with pytest.raises(ValueError, match="divided_time"):
        hv.two_hop_row(sp, tm, cell)


def test_capture_memory_is_the_qk_tensors_and_hooks_are_removed():
    for arch in TINY:
        model = hv.build(arch)
        with torch.no_grad(), capture_attention(model) as cap:
            model(_clip(model))
        for b in cap:
            qk = (b.q.numel() + b.k.numel()) * b.q.element_size()
            assert b.nbytes <= 1.1 * qk, (arch, b.name)
        leftover = [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
        assert leftover == [], arch


def test_structure_resolution_by_shape_not_one_version():
    class Old(nn.Module):  # transformers 4.x ViViT: query/key/value under attention.attention
        def __init__(self):
            super().__init__()
            self.num_attention_heads = 2
            self.query, self.key, self.value = (nn.Linear(8, 8) for _ in range(3))

        def forward(self, hidden_states, head_mask=None):
            return hidden_states

    class New(Old):
        def __init__(self):
            nn.Module.__init__(self)
            self.num_heads, self.scale = 4, 0.25
            self.q_proj, self.k_proj, self.v_proj = (nn.Linear(8, 8) for _ in range(3))

    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads = 2
            self.qkv = nn.Linear(8, 24)

        def forward(self, x):
            return x

    class Cross(New):
        def forward(self, queries, keys, values):
            return queries

    old, new, fused = resolve_site("a", Old()), resolve_site("b", New()), resolve_site("c", Fused())
    assert (old.query, old.key, old.heads, old.head_dim, old.scale) == ("query", "key", 2, 4, 4 ** -0.5)
    assert (new.query, new.key, new.heads, new.head_dim, new.scale) == ("q_proj", "k_proj", 4, 2, 0.25)
    assert fused.fused and fused.heads == 2 and fused.head_dim == 4
    assert resolve_site("d", Cross()) is None  # a learned query over the tokens is not a per-pixel map
    assert resolve_site("e", nn.Linear(8, 8)) is None


def test_wrapper_checks_the_clip():
    from nlviz.video.errors import VideoError

    model = hv.build("videomae_tiny")
    with pytest.raises(hv.InputShapeError, match="exactly 4 frames of 32x32"):
        model(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(VideoError, match="centre crop of 32 pixels"), torch.no_grad(), capture_attention(model):
        model(torch.zeros(1, 3, 4, 48, 64))  # the full frame instead of the crop
    with pytest.raises(hv.InputShapeError, match=r"\(N, 3, T, H, W\)"):
        model(torch.zeros(1, 4, 3, 32, 32))
    vj = hv.build("vjepa2_tiny")
    with torch.no_grad():
        assert vj(torch.zeros(1, 3, 6, 32, 32)).shape == (1, 5)  # any whole number of tubelets
    with pytest.raises(hv.InputShapeError, match="a multiple of 2 frames"):
        vj(torch.zeros(1, 3, 5, 32, 32))
    with pytest.raises(TypeError, match="unknown override"):
        hv.build("videomae_tiny", hidden_sise=8)
    assert hv.build("vivit_tiny", num_classes=7).hf.config.num_labels == 7
    assert hv.build("vivit_tiny", pairwise="embedded_gaussian", dims="spacetime").hf.config.num_labels == 5
    with pytest.raises(TypeError, match="cannot change"):
        hv.build("vivit_tiny", pairwise="dot_product")


def _save(model, path, processor=None, labels=None):
    if labels:
        model.hf.config.id2label = dict(enumerate(labels))
        model.hf.config.label2id = {n: i for i, n in enumerate(labels)}
    model.hf.save_pretrained(path)
    if processor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(processor))
    return path


def test_local_directory_loads_offline_with_its_clip_and_labels(tmp_path):
    torch.manual_seed(3)
    model = hv.build("vivit_tiny")
    labels = ["archery", "bowling", "cooking", "dancing", "eating"]
    processor = {"do_rescale": True, "rescale_factor": 1 / 127.5, "offset": True, "do_normalize": True,
                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"shortest_edge": 36},
                 "crop_size": {"height": 32, "width": 32}, "do_center_crop": True}
    path = _save(model, tmp_path / "vivit", processor, labels)
    loaded = hv.load_dir(path)
    assert loaded.arch == "vivit_base" and loaded.class_names == labels
    assert loaded.hf.config._attn_implementation == "sdpa"
    spec = loaded.spec
    assert (spec.num_frames, spec.short_side, spec.crop_size) == (4, 36, 32)
    # x / 127.5 - 1, then (. - 0.5) / 0.5  ==  (x - 191.25) / 63.75 on 0-255 pixels
    assert spec.mean == pytest.approx((191.25,) * 3) and spec.std == pytest.approx((63.75,) * 3)
    clip = _clip(model)
    with torch.no_grad():
        assert torch.allclose(loaded(clip), model(clip), atol=1e-6)
    assert hv.is_snapshot(path) and not hv.is_snapshot(tmp_path)
    assert hv.fetch_snapshot("google/vivit-b-16x2-kinetics400", path) == path  # present: no network


def test_processor_settings_map_to_clip_specs(tmp_path):
    model = hv.build("videomae_tiny")
    path = _save(model, tmp_path / "vm", {"do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
                                         "image_std": [0.229, 0.224, 0.225], "rescale_factor": 1 / 255,
                                         "size": {"shortest_edge": 40}, "crop_size": 32})
    spec = hv.load_dir(path).spec
    assert spec.mean == pytest.approx((123.675, 116.28, 103.53)) and spec.std == pytest.approx((58.395, 57.12, 57.375))
    assert spec.short_side == 40 and spec.crop_size == 32 and spec.stride == hv.ARCHS["videomae_base"].spec.stride
    ts = hv.load_dir(_save(hv.build("timesformer_tiny"), tmp_path / "ts"))
    assert ts.class_names is None  # LABEL_i only
    assert (ts.spec.short_side, ts.spec.crop_size) == (32, 32)  # no processor saved: the default's ratio


def test_bad_directories_and_offline_fetch_say_what_to_do(tmp_path):
    with pytest.raises(hv.NotASnapshotError, match="no config.json"):
        hv.load_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(hv.NotASnapshotError, match="unsupported model type 'bert'"):
        hv.load_dir(tmp_path)
    with pytest.raises(OfflineError, match="local checkpoint directory"):
        hv.fetch_snapshot("MCG-NJU/videomae-base-finetuned-kinetics", tmp_path / "snap",
                          endpoint="http://127.0.0.1:9")
    assert hv.repo_id_of("https://huggingface.co/MCG-NJU/videomae-base-finetuned-kinetics") == \
        "MCG-NJU/videomae-base-finetuned-kinetics"
    assert hv.snapshot_dirname("facebook/timesformer-base-finetuned-k400") == "facebook--timesformer-base-finetuned-k400"


def test_full_size_architectures_describe_the_published_graphs():
    cfg, spec = hv.config("videomae_base")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.tubelet_size, cfg.num_frames) == (768, 12, 2, 16)
    cfg, spec = hv.config("vjepa2_large")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, spec.crop_size) == (1024, 24, 16, 256)
    assert hv.config("timesformer_base")[0].attention_type == "divided_space_time"
    for arch in hv.ARCHS:
        d = hv.FAMILY.describe(arch)
        assert d["transformers class"].endswith("ForVideoClassification")


def test_family_contract():
    fam = hv.FAMILY
    assert fam.name == "hf_video" and fam.requires == "transformers"
    assert set(fam.archs) == set(hv.ARCHS)
    model = fam.build("vjepa2_tiny", num_pooler_layers=2)
    assert [b.stage for b in fam.blocks(model)][-2:] == ["pooler.0", "pooler.1"]
    assert fam.blocks(model)[-1].name == "hf.pooler.self_attention_layers.1.self_attn"
    from nlviz.names import SOURCES

    try:
        from nlviz.entry import FILE_FORMATS
    except ImportError:
        from nlviz.zoo import FILE_FORMATS
    if "hf_hub" not in FILE_FORMATS or "huggingface" not in SOURCES:
        with pytest.warns(UserWarning, match="hf_hub"):
            assert list(fam.entries()) == []
        return
    entries = list(fam.entries())
    assert [e.name for e in entries] == ["videomae_base.kinetics400_mcg_nju", "timesformer_base.kinetics400_facebook",
                                         "vivit_base.kinetics400_google", "vjepa2_large.ssv2_facebook"]
    for e in entries:
        assert e.pairwise == "embedded_gaussian"  # listed among the models with attention
        fam.build("vivit_tiny", **{k: v for k, v in e.build_kwargs().items() if k in ("pairwise", "dims")})
        if e.arch != "videomae_base":  # (its sinusoid table takes transformers seconds to build)
            with torch.device("meta"):
                m = fam.build(e.arch, **e.build_kwargs())  # the entry's own graph and clip
            assert m.spec.num_frames == e.spec.num_frames and m.spec.crop_size == e.spec.crop_size
            assert m.hf.config.num_labels == e.num_classes
        assert e.url.startswith("https://huggingface.co/") and e.arch in fam.archs and e.file_format == "hf_hub"


def test_import_without_transformers_says_how_to_install(monkeypatch):
    saved = {k: v for k, v in sys.modules.items() if k == "nlviz.models.hf_video" or k.startswith("nlviz.models.hf_video.")}
    for k in saved:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setitem(sys.modules, "transformers", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'nlviz\[transformers\]'"):
            importlib.import_module("nlviz.models.hf_video")
    finally:
        sys.modules.update(saved)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_vjepa2_keeps_the_rotated_qk_it_multiplies_or_rotates_them_again(impl, monkeypatch):
    """The rotated q/k are taken from the attention product when it is seen; otherwise the module's
    own RoPE functions are re-applied to the projections. Both give the model's probabilities."""
    ref, models = _pair("vjepa2_tiny")
    clip = _clip(ref)
    expected = _reference(ref, clip)
    model = models[impl]
    offered = []
    real_offer = hv.hooks._Product._offer

    def spy(self, q, k):
        real_offer(self, q, k)
        offered.append(self.q is not None)

    monkeypatch.setattr(hv.hooks._Product, "_offer", spy)
    with torch.no_grad():
        _, kept = record(model, clip)
    assert offered.count(True) == 2  # both encoder layers: the product's own tensors
    monkeypatch.setattr(hv.hooks._Product, "_offer", lambda self, q, k: None)  # as if a fused kernel ran
    with torch.no_grad():
        _, again = record(model, clip)
    for name, probs in expected.items():
        for cap in (kept, again):
            b = cap[name]
            assert (b.token_probs(range(b.q.shape[2]), per_head=True) - probs).abs().max() <= TOL, name
        assert torch.allclose(kept[name].q, again[name].q, atol=1e-6) and torch.allclose(kept[name].k, again[name].k, atol=1e-6)


def test_no_torch_function_mode_is_left_behind_when_a_forward_raises():
    from torch.overrides import _get_current_function_mode_stack

    model = hv.build("vjepa2_tiny")
    value = model.hf.vjepa2.encoder.layer[1].attention.value

    def boom(_m, _a, _o):
        raise RuntimeError("boom")

    handle = value.register_forward_hook(boom)  # inside the attention module, after its pre-hook
    try:
        with pytest.raises(RuntimeError, match="boom"), torch.no_grad(), capture_attention(model):
            assert _get_current_function_mode_stack() == []
            model(_clip(model))
    finally:
        handle.remove()
    assert _get_current_function_mode_stack() == []
    with torch.no_grad():
        _, cap = record(model, _clip(model))  # and capture works again
    assert len(cap) == 3 and _get_current_function_mode_stack() == []


def test_zoo_and_resolver_load_a_snapshot_offline(tmp_path):
    """The zoo entry's snapshot directory (already in the cache) and a bare checkpoint directory both
    load through nlviz's one resolver, with no network."""
    from nlviz import zoo
    from nlviz.resolve import load

    names = zoo.names("huggingface")
    assert names == ["videomae_base.kinetics400_mcg_nju", "timesformer_base.kinetics400_facebook",
                     "vivit_base.kinetics400_google", "vjepa2_large.ssv2_facebook"]
    entry = zoo.get("vivit_base.kinetics400_google")
    assert not zoo.is_cached(entry.name, tmp_path)
    torch.manual_seed(4)
    tiny = hv.build("vivit_tiny")
    _save(tiny, tmp_path / entry.filename, labels=["a", "b", "c", "d", "e"])  # stands in for the hub snapshot
    assert zoo.is_cached(entry.name, tmp_path)
    assert zoo.fetch(entry.name, dest_dir=tmp_path) == tmp_path / entry.filename
    lm = load(entry.name, dest_dir=tmp_path)
    assert lm.family.name == "hf_video" and lm.arch == "vivit_base" and lm.labels == ["a", "b", "c", "d", "e"]
    assert [b.name for b in lm.blocks] == [b.name for b in hv.blocks(tiny)]
    clip = _clip(tiny)
    with torch.no_grad():
        assert torch.allclose(lm.model(clip), tiny(clip), atol=1e-6)
    direct = load(str(tmp_path / entry.filename))
    assert direct.name.startswith("file:") and direct.family.name == "hf_video"
    assert hv.open_dir(tmp_path) is None  # not a checkpoint directory
    assert hv.owns_keys(list(tiny.state_dict())) and hv.owns_keys(list(tiny.hf.state_dict()))
    assert not hv.owns_keys(["backbone.conv1.weight", "cls_head.fc_cls.weight"])


def test_attend_exports_and_view_spec_reproduce_from_a_checkpoint_directory(tmp_path):
    """`nlviz attend` on a checkpoint directory writes the view's files, and the view spec it writes
    (the directory hashed file by file) reproduces the same row."""
    import numpy as np

    from nlviz import cli
    from nlviz.export import ViewSpec, checkpoint_sha256, reproduce

    torch.manual_seed(5)
    ts = hv.build("timesformer_tiny")
    snap = _save(ts, tmp_path / "snap")
    block = hv.blocks(ts)[0].name  # layer 0's temporal factor
    out = tmp_path / "views"
    assert cli.main(["attend", "sample:synthetic_11", "--model", str(snap), "--frame", "1", "--xy", "30", "20",
                     "--block", block, "--out", str(out)]) == 0
    stem = out / f"{block}_f1_x30_y20"
    spec = ViewSpec.from_json(Path(f"{stem}.json").read_text())
    view, _ = reproduce(spec)
    saved = np.load(f"{stem}.npy")
    assert saved.shape == (3, 4, 4) and np.abs(np.asarray(view.row) - saved).max() == 0
    digest = checkpoint_sha256(snap)
    (snap / ".cache").mkdir()
    (snap / ".cache" / "meta").write_text("a download tool's own bookkeeping")
    assert checkpoint_sha256(snap) == digest  # hidden files are not part of the checkpoint
