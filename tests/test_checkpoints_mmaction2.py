"""mmaction2 checkpoints: detection, key mapping, structure inference, and parity with mmaction2's own outputs.

The fixtures in tests/fixtures/mmaction2/ were made by mmaction2 1.2.0's own I3D NL code (see the
README there): a converted checkpoint must reproduce their logits, every non-local block's output
and its affinity matrix. Run this file as a script to print the largest errors per mode:

    python tests/test_checkpoints_mmaction2.py
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
import torch

from nlviz import zoo
from nlviz.capture import capture_attention
from nlviz.checkpoints import mmaction2 as mm
from nlviz.models import build

FIXTURES = Path(__file__).parent / "fixtures" / "mmaction2"
MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")

# tolerances asked of nlviz (mmaction2's own forward reproduces bit for bit on CPU; see the README)
LOGITS_RTOL = 5e-4  # relative to max |logit|
AFFINITY_TOL = {"gaussian": 2e-2}  # end to end (errors upstream of the block accumulate)
AFFINITY_TOL_DEFAULT = 5e-3
BLOCK_TOL = {"gaussian": 2e-3}  # one block, fed mmaction2's own block input
BLOCK_TOL_DEFAULT = 1e-4


def fixture_path(mode: str) -> Path:
    return FIXTURES / f"i3d_nl_{mode}.pth"


@functools.cache
def load_fixture(mode: str) -> dict:
    return torch.load(fixture_path(mode), weights_only=True)


def ours(mm_block: str) -> str:
    """backbone.layer2.1.non_local_block -> res3.1.nl"""
    _, layer, i, _ = mm_block.split(".")
    return f"res{int(layer[len('layer'):]) + 1}.{i}.nl"


def build_converted(obj, **kwargs):
    arch, overrides, state = mm.convert(obj, **kwargs)
    model = build(arch, **overrides)
    model.load_state_dict(state, strict=True)
    return model.eval()


@functools.cache
def parity(mode: str) -> dict:
    """Every comparison with the fixture of ``mode``: the largest errors and the captures."""
    fx = load_fixture(mode)
    model = build_converted(fx)
    with torch.no_grad(), capture_attention(model) as cap:
        logits = model(fx["input"])
    res = {
        "logits": ((logits - fx["logits"]).abs().max() / fx["logits"].abs().max()).item(),
        "affinity": 0.0,
        "block_output": 0.0,
        "block_affinity": 0.0,
        "grids": {},
        "matrices": {},
    }
    for name, blk in fx["blocks"].items():
        bc = cap[ours(name)]
        a = bc.matrix()
        res["matrices"][name] = a
        res["grids"][name] = (bc.query_shape, bc.key_shape)
        res["affinity"] = max(res["affinity"], (a - blk["affinity"]).abs().max().item())
        # the block alone, on mmaction2's own input of that block
        nl = model.get_submodule(ours(name))
        with torch.no_grad(), capture_attention(nl) as bcap:
            out = nl(blk["input"][None])
        res["block_output"] = max(res["block_output"], (out[0] - blk["output"]).abs().max().item())
        a1 = bcap[""].matrix()
        res["block_affinity"] = max(res["block_affinity"], (a1 - blk["affinity"]).abs().max().item())
    return res


def error_table() -> str:
    lines = [f"{'mode':<18} {'logits (rel)':>13} {'affinity e2e':>13} {'block output':>13} {'block affinity':>15}"]
    for mode in MODES:
        r = parity(mode)
        lines.append(
            f"{mode:<18} {r['logits']:>13.3e} {r['affinity']:>13.3e} {r['block_output']:>13.3e} "
            f"{r['block_affinity']:>15.3e}"
        )
    return "\n".join(lines)


# --- detection and key names ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_detects_fixture_checkpoints_and_bare_state_dicts(mode):
    fx = load_fixture(mode)
    assert mm.detect(fx)
    assert mm.detect(fx["state_dict"])
    assert mm.detect({"module." + k: v for k, v in fx["state_dict"].items()})


def test_does_not_detect_other_formats():
    model = build("tiny_i3d_nl2")
    w = torch.zeros(1)
    for obj in (
        {},
        None,
        "backbone.conv1.conv.weight",
        [("backbone.conv1.conv.weight", w)],
        model.state_dict(),  # our own names
        {"blobs": {"conv1_w": w, "pred_w": w}},  # Caffe2 pickle
        {"model_state": {"s1.pathway0_stem.conv.weight": w, "head.projection.weight": w}},  # PySlowFast
        {"state_dict": {"backbone.conv1.conv.weight": w}},  # no classifier
        {"state_dict": {"cls_head.fc_cls.weight": w}},  # no backbone
    ):
        assert not mm.detect(obj)


def test_map_key_examples():
    cases = {
        "backbone.conv1.conv.weight": "stem.conv.weight",
        "backbone.conv1.bn.running_var": "stem.bn.running_var",
        "backbone.layer1.0.conv1.conv.weight": "res2.0.conv_a.weight",
        "backbone.layer2.3.conv3.bn.num_batches_tracked": "res3.3.bn_c.num_batches_tracked",
        "backbone.layer4.0.downsample.conv.weight": "res5.0.downsample.0.weight",
        "backbone.layer4.0.downsample.bn.bias": "res5.0.downsample.1.bias",
        "backbone.layer2.1.non_local_block.theta.conv.bias": "res3.1.nl.theta.conv.bias",
        "backbone.layer2.1.non_local_block.phi.0.conv.weight": "res3.1.nl.phi.conv.weight",
        "backbone.layer3.5.non_local_block.g.0.conv.bias": "res4.5.nl.g.conv.bias",
        "backbone.layer3.5.non_local_block.g.conv.bias": "res4.5.nl.g.conv.bias",  # sub_sample=False
        "backbone.layer3.1.non_local_block.concat_project.conv.weight": "res4.1.nl.concat_project.weight",
        "backbone.layer3.1.non_local_block.conv_out.conv.weight": "res4.1.nl.out.weight",
        "backbone.layer3.1.non_local_block.conv_out.bn.running_mean": "res4.1.nl.bn.running_mean",
        "cls_head.fc_cls.weight": "head.fc.weight",
        "cls_head.fc_cls.bias": "head.fc.bias",
    }
    for src, dst in cases.items():
        assert mm.map_key(src) == dst, src
    for bad in ("backbone.layer5.0.conv1.conv.weight", "backbone.conv1.conv.bias", "data_preprocessor.mean",
                "backbone.layer1.0.conv4.conv.weight", "cls_head.fc.weight"):
        assert mm.map_key(bad) is None, bad


@pytest.mark.parametrize("subsample", [True, False])
def test_source_key_inverts_map_key_for_every_key(subsample):
    with torch.device("meta"):
        model = build("i3d_nl5_r50", pairwise="concatenation", subsample=subsample, w_bias=True)
    for key in model.state_dict():
        src = mm.source_key(key, subsample=subsample)
        assert src.startswith(("backbone.", "cls_head.")), key
        assert mm.map_key(src) == key


@pytest.mark.parametrize("mode", MODES)
def test_every_source_key_is_used(mode):
    sd = load_fixture(mode)["state_dict"]
    _, _, state = mm.convert(load_fixture(mode))
    assert len(state) == len(sd)
    assert torch.equal(state["stem.conv.weight"], sd["backbone.conv1.conv.weight"])
    nbt = state["res4.5.nl.bn.num_batches_tracked"]
    src_nbt = sd["backbone.layer3.5.non_local_block.conv_out.bn.num_batches_tracked"]
    assert nbt.dtype == torch.int64 and nbt.item() == src_nbt.item() > 0
    if mode == "concatenation":
        w = sd["backbone.layer2.1.non_local_block.concat_project.conv.weight"]
        assert w.shape == (1, 32, 1, 1) and state["res3.1.nl.concat_project.weight"].shape == (1, 32, 1)
        assert torch.equal(state["res3.1.nl.concat_project.weight"].flatten(), w.flatten())


# --- what is inferred -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_inferred_architecture_is_the_zoo_entry_s(mode):
    """Real-size mmaction2 checkpoints must build exactly what the zoo entry builds (base 64 instead of 4)."""
    arch, overrides = mm.infer(load_fixture(mode))
    entry = zoo.get(f"i3d_nl5_r50.kinetics400_mmaction2_{'embedded_gaussian' if mode == 'concatenation' else mode}")
    expected = entry.build_kwargs()
    expected["pairwise"] = mode  # concatenation: no zoo entry (no trained checkpoint); the rest is the same
    assert arch == entry.arch == "i3d_nl5_r50"
    assert overrides["base_channels"] == 4
    with torch.device("meta"):
        ours_model = build(arch, **{**overrides, "base_channels": 64})
        zoo_model = build(entry.arch, **expected)
    assert ours_model.cfg == zoo_model.cfg
    assert ours_model.spec == zoo_model.spec


def built(arch: str, overrides: dict):
    """The model build() makes of (arch, overrides), on the meta device (cfg and spec are what matter)."""
    with torch.device("meta"):
        return build(arch, **overrides)


def test_overrides_say_mmaction2_graph():
    model = built(*mm.infer(load_fixture("embedded_gaussian")))
    cfg, nl, spec = model.cfg, model.cfg.nonlocal_cfg, model.spec
    assert cfg.conv1_kernel == (5, 7, 7) and cfg.conv1_stride == (2, 2, 2)
    assert cfg.pool1_kernel == (1, 3, 3) and cfg.pool1_stride == (2, 2, 2) and cfg.pool1_padding == (0, 1, 1)
    assert cfg.pool2 and cfg.stage_strides == (1, 2, 2, 2) and cfg.inflate_conv == "a"
    assert cfg.temporal_kernels == ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
    assert cfg.nonlocal_blocks == ((), (1, 3), (1, 3, 5), ()) and cfg.blocks == (3, 4, 6, 3)
    assert cfg.base_channels == 4 and cfg.num_classes == 400 and cfg.bn_eps == 1e-5
    assert (nl.pairwise, nl.dims, nl.subsample, nl.pool_first, nl.use_scale, nl.norm, nl.w_bias, nl.bn_eps) == (
        "embedded_gaussian", "spacetime", True, False, False, True, False, 1e-5)
    assert (spec.num_frames, spec.stride, spec.crop_size, spec.short_side) == (32, 2, 224, 256)
    assert spec.mean == (123.675, 116.28, 103.53) and spec.std == (58.395, 57.12, 57.375)
    assert spec.channel_order == "RGB" and spec.labels == "kinetics400"


def test_dot_product_and_embedded_gaussian_need_a_name():
    fx = load_fixture("dot_product")
    bare = fx["state_dict"]
    with pytest.warns(mm.AmbiguousPairwiseWarning, match="dot_product"):
        arch, ov = mm.infer(bare)
    assert ov["pairwise"] == "embedded_gaussian"
    # ... which computes something else: the name matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.AmbiguousPairwiseWarning)
        wrong = build_converted(bare)
    with torch.no_grad():
        assert (wrong(fx["input"]) - fx["logits"]).abs().max() > 1e-2 * fx["logits"].abs().max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kw in ({"pairwise": "dot_product"}, {"mode": "dot_product"}, {"pairwise": "dot-product"}):
            assert mm.infer(bare, **kw)[1]["pairwise"] == "dot_product"
        assert mm.infer(fx)[1]["pairwise"] == "dot_product"  # from meta["experiment_name"]
        name = "i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb_20220812-8e1f2148.pth"
        assert mm.infer(bare, filename=name)[1]["pairwise"] == "dot_product"  # from the file's name
        assert mm.infer(load_fixture("embedded_gaussian"))[1]["pairwise"] == "embedded_gaussian"
        # an explicit choice wins over meta
        assert mm.infer(fx, pairwise="embedded_gaussian")[1]["pairwise"] == "embedded_gaussian"


def test_mode_from_meta():
    name = "i3d_imagenet-pretrained-r50-nl-{}_8xb8-32x2x1-100e_kinetics400-rgb"
    assert mm.mode_from_meta({"experiment_name": name.format("dot-product") + "_20220812_125512"}) == "dot_product"
    assert mm.mode_from_meta({"experiment_name": name.format("embedded-gaussian")}) == "embedded_gaussian"
    assert mm.mode_from_meta({"experiment_name": name.format("gaussian")}) == "gaussian"
    assert mm.mode_from_meta({"exp_name": "i3d_nl_dot_product_r50_32x2x1_100e_kinetics400_rgb.py"}) == "dot_product"
    cfg = ("model = dict(type='Recognizer3D', backbone=dict(type='ResNet3d', non_local=((0, 0, 0), (0, 1, 0, 1)),\n"
           "    non_local_cfg=dict(sub_sample=True, use_scale=False,\n"
           "        norm_cfg=dict(type='BN3d', requires_grad=True), mode='dot_product')))")
    assert mm.mode_from_meta({"cfg": cfg}) == "dot_product"
    assert mm.mode_from_meta({"cfg": cfg.replace("dot_product", "embedded_gaussian"),
                              "experiment_name": name.format("dot-product")}) == "embedded_gaussian"  # cfg first
    assert mm.mode_from_meta({"seed": 1, "note": "nothing here"}) is None
    assert mm.mode_from_meta(None) is None
    # a saved config also states the stem strides and the scale
    fx = load_fixture("dot_product")
    cfg2 = cfg.replace("type='ResNet3d',", "type='ResNet3d', conv1_stride_t=1, pool1_stride_t=1,").replace(
        "use_scale=False", "use_scale=True")
    model = built(*mm.infer({"state_dict": fx["state_dict"], "meta": {"cfg": cfg2}}))
    assert model.cfg.nonlocal_cfg.pairwise == "dot_product" and model.cfg.nonlocal_cfg.use_scale is True
    assert model.cfg.conv1_stride == (1, 2, 2) and model.cfg.pool1_stride == (1, 2, 2)


def test_pairwise_that_contradicts_the_weights_is_refused():
    with pytest.raises(mm.MMAction2CheckpointError, match="gaussian"):
        mm.convert(load_fixture("dot_product"), pairwise="gaussian")
    with pytest.raises(mm.MMAction2CheckpointError, match="theta/phi"):
        mm.convert(load_fixture("dot_product"), pairwise="concatenation")
    with pytest.raises(mm.MMAction2CheckpointError, match="'gaussian'"):
        mm.convert(load_fixture("gaussian"), pairwise="dot_product")
    with pytest.raises(mm.MMAction2CheckpointError, match="unknown pairwise"):
        mm.convert(load_fixture("dot_product"), pairwise="cosine")
    with pytest.raises(mm.MMAction2CheckpointError, match="disagree"):
        mm.convert(load_fixture("dot_product"), pairwise="dot_product", mode="embedded_gaussian")
    # meta naming a mode the weights rule out: the weights win, with a warning
    sd = load_fixture("dot_product")["state_dict"]
    with pytest.warns(mm.AmbiguousPairwiseWarning, match="meta names NL mode 'gaussian'"):
        assert mm.infer({"state_dict": sd, "meta": {"experiment_name": "x-nl-gaussian"}})[1]["pairwise"] == (
            "embedded_gaussian")


def _to_mmaction2(model, subsample: bool = True) -> dict:
    """Our state dict under mmaction2's names (the inverse conversion), for synthetic variants."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("concat_project.weight"):
            v = v[..., None]
        out[mm.source_key(k, subsample=subsample)] = v.clone()
    return out


@pytest.mark.parametrize(
    "arch, kwargs, expect",
    [
        ("c2d_nl10_r50", {"pairwise": "dot_product"}, {}),
        ("i3d_nl0_r50", {}, {}),
        ("i3d_nl5_r50", {"pairwise": "gaussian", "subsample": False, "norm": False, "w_bias": True},
         {"subsample": False, "norm": False, "w_bias": True}),
        ("i3d_nl5_r50", {"pairwise": "concatenation", "inflate_conv": "b", "blocks": (2, 2, 2, 2),
                         "temporal_kernels": ((3, 1), (1, 3), (3, 3), (1, 1)),
                         "nonlocal_blocks": ((0,), (), (1,), ()), "conv1_kernel": (3, 7, 7)},
         {"inflate_conv": "b", "blocks": (2, 2, 2, 2), "temporal_kernels": ((3, 1), (1, 3), (3, 3), (1, 1)),
          "nonlocal_blocks": ((0,), (), (1,), ()), "conv1_kernel": (3, 7, 7)}),
    ],
    ids=["c2d-nl10-dot", "i3d-nl0", "gauss-unpooled-nobn", "odd-structure"],
)
def test_structure_variants_round_trip(arch, kwargs, expect):
    src = build(arch, base_channels=2, num_classes=7, **{**mm.GRAPH_OVERRIDES, **kwargs})
    torch.manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics and NL weights (a new NL block is the identity)
        for name, t in src.state_dict().items():
            if name.endswith(("bn.weight", "bn_a.weight", "bn_b.weight", "bn_c.weight", "downsample.1.weight")):
                t.uniform_(0.4, 0.9)
            elif name.endswith(("running_mean", "bias")):
                t.normal_(0, 0.1)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif ".nl." in name and name.endswith("weight"):
                t.normal_(0, 0.1)  # dot product is cubic in x: larger weights blow up over ten blocks
    sd = _to_mmaction2(src, subsample=kwargs.get("subsample", True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dot_product is named; gaussian/concatenation are read from the weights
        got_arch, ov, state = mm.convert({"state_dict": sd}, pairwise=kwargs.get("pairwise"))
    assert got_arch == arch
    assert ov["num_classes"] == 7 and ov["base_channels"] == 2
    for k, v in expect.items():
        assert ov[k] == v, k
    if "pairwise" not in kwargs:
        assert "pairwise" not in ov  # no NL blocks: nothing to choose
    assert state.keys() == src.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in src.state_dict().items())
    model = build(got_arch, **ov)
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        want = src(x)
        assert torch.isfinite(want).all() and want.abs().max() > 1e-3
        assert torch.allclose(model(x), want, atol=1e-5, rtol=1e-5)


# --- parity with mmaction2 --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_logits_match_mmaction2(mode):
    assert parity(mode)["logits"] <= LOGITS_RTOL


@pytest.mark.parametrize("mode", MODES)
def test_affinities_end_to_end_match_mmaction2(mode):
    r = parity(mode)
    fx = load_fixture(mode)
    assert len(r["matrices"]) == len(fx["blocks"]) == 5
    for name, blk in fx["blocks"].items():
        q, k = r["grids"][name]
        assert list(q) == blk["query_grid"] and list(k) == blk["key_grid"], name
        assert q[0] == 4  # the time axis inside every NL block: conv1 and pool1 both halve time, pool2 too
    assert r["affinity"] <= AFFINITY_TOL.get(mode, AFFINITY_TOL_DEFAULT)


@pytest.mark.parametrize("mode", MODES)
def test_each_block_on_its_own_input_matches_mmaction2(mode):
    r = parity(mode)
    tol = BLOCK_TOL.get(mode, BLOCK_TOL_DEFAULT)
    assert r["block_output"] <= tol
    assert r["block_affinity"] <= tol


@pytest.mark.parametrize("mode", ["embedded_gaussian", "gaussian"])
def test_theta_and_phi_are_mmaction2_s(mode):
    """The captured factors themselves, flattened (t, h, w) like mmcv's theta_x / phi_x."""
    fx = load_fixture(mode)
    name = "backbone.layer2.1.non_local_block"
    blk = fx["blocks"][name]
    nl = build_converted(fx).get_submodule(ours(name))
    with torch.no_grad(), capture_attention(nl) as cap:
        nl(blk["input"][None])
    bc = cap[""]
    c = bc.theta.shape[1]
    assert torch.allclose(bc.theta[0].reshape(c, -1).T, blk["theta"], atol=1e-5)
    assert torch.allclose(bc.phi[0].reshape(c, -1).T, blk["phi"], atol=1e-5)


def test_a_wrong_flattening_order_would_fail():
    """The (T, H, W) order is what matches: H/W swapped, or time last, is far outside the tolerance."""
    fx = load_fixture("embedded_gaussian")
    name = "backbone.layer2.1.non_local_block"  # query grid 4x8x7, key grid 4x4x3: no two axes alike
    ref = fx["blocks"][name]["affinity"]
    a = parity("embedded_gaussian")["matrices"][name]
    (t, h, w), (tk, hk, wk) = parity("embedded_gaussian")["grids"][name]
    assert (t, h, w) == (4, 8, 7) and (tk, hk, wk) == (4, 4, 3)
    assert (a - ref).abs().max() <= AFFINITY_TOL_DEFAULT
    rows = a.reshape(t, h, w, -1)
    wrong_rows = {
        "(T, W, H)": rows.permute(0, 2, 1, 3).reshape(t * h * w, -1),
        "(H, W, T)": rows.permute(1, 2, 0, 3).reshape(t * h * w, -1),
    }
    cols = a.reshape(-1, tk, hk, wk)
    wrong_cols = {
        "keys (T, W, H)": cols.permute(0, 1, 3, 2).reshape(t * h * w, -1),
        "keys (H, W, T)": cols.permute(0, 2, 3, 1).reshape(t * h * w, -1),
    }
    for label, wrong in {**wrong_rows, **wrong_cols}.items():
        err = (wrong - ref).abs().max().item()
        assert err > 10 * AFFINITY_TOL_DEFAULT, f"{label}: {err}"


def test_caffe2_stem_would_not_match():
    """Without mmaction2's stem (temporal strides 2, pool1 padding 1) the grids and logits differ."""
    fx = load_fixture("embedded_gaussian")
    arch, ov, state = mm.convert(fx)
    for change in ({"conv1_stride": (1, 2, 2), "pool1_stride": (1, 2, 2)}, {"pool1_padding": (0, 0, 0)}):
        model = build(arch, **{**ov, **change})
        model.load_state_dict(state, strict=True)
        with torch.no_grad(), capture_attention(model) as cap:
            logits = model(fx["input"])
        grid = list(cap["res3.1.nl"].query_shape)
        if "conv1_stride" in change:  # time inside the NL blocks would be 16, not 4
            assert grid == [16, 8, 7] != fx["blocks"]["backbone.layer2.1.non_local_block"]["query_grid"]
        # no padding on pool1 gives 15x13 after the stem instead of 16x14: the same res3 grid, other numbers
        assert (logits - fx["logits"]).abs().max() > 1e-2 * fx["logits"].abs().max(), change


def test_load_convenience():
    fx = load_fixture("concatenation")
    model = mm.load(fx)
    assert not model.training and model.arch == "i3d_nl5_r50"
    with torch.no_grad():
        assert torch.allclose(model(fx["input"]), fx["logits"], atol=1e-4, rtol=1e-4)


def _package_loader():
    """nlviz.resolve.load (the one loader), or a skip while the package (written alongside) is incomplete."""
    try:
        from nlviz import checkpoints

        checkpoints.formats()  # every registered format module imports
    except (ImportError, AttributeError) as e:
        pytest.skip(f"nlviz.checkpoints is not complete yet: {e}")
    from nlviz.resolve import load

    return load


@pytest.mark.parametrize("mode", MODES)
def test_through_checkpoints_load_model(mode):
    """The package entry point: a fixture file in, mmaction2's logits out (the pairwise from meta)."""
    load_model = _package_loader()
    fx = load_fixture(mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mm.AmbiguousPairwiseWarning)
        model = load_model(fixture_path(mode))
    assert model.cfg.nonlocal_cfg.pairwise == mode
    with torch.no_grad():
        logits = model(fx["input"])
    assert ((logits - fx["logits"]).abs().max() / fx["logits"].abs().max()).item() <= LOGITS_RTOL


def test_through_checkpoints_load_model_with_the_zoo_s_arguments():
    """What nlviz.zoo.load passes for an mmaction2 entry (here with the fixtures' width) is accepted."""
    load_model = _package_loader()
    entry = zoo.get("i3d_nl5_r50.kinetics400_mmaction2_dot_product")
    fx = load_fixture("dot_product")
    model = load_model(fixture_path("dot_product"), arch=entry.arch,
                       overrides={**entry.build_kwargs(), "base_channels": 4}, spec=entry.spec)
    assert model.spec == entry.spec
    with torch.no_grad():
        logits = model(fx["input"])
    assert ((logits - fx["logits"]).abs().max() / fx["logits"].abs().max()).item() <= LOGITS_RTOL


def test_print_largest_errors(capsys):
    table = error_table()
    with capsys.disabled():
        print("\nmmaction2 parity, largest errors per mode:\n" + table)
    for mode in MODES:
        r = parity(mode)
        assert r["logits"] <= LOGITS_RTOL and r["affinity"] <= AFFINITY_TOL.get(mode, AFFINITY_TOL_DEFAULT)


# --- broken checkpoints -----------------------------------------------------------------------


def _sd(mode: str = "embedded_gaussian") -> dict:
    return dict(load_fixture(mode)["state_dict"])


def test_a_removed_key_is_named():
    sd = _sd()
    del sd["backbone.layer3.2.conv2.bn.running_var"]
    with pytest.raises(mm.MMAction2CheckpointError, match=r"1 key\(s\) missing.*layer3\.2\.conv2\.bn\.running_var"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")
    sd = _sd()
    del sd["backbone.layer2.1.non_local_block.theta.conv.weight"]  # theta.conv.bias still says: not gaussian
    with pytest.raises(mm.MMAction2CheckpointError, match=r"non_local_block\.theta\.conv\.weight"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")


def test_a_changed_shape_is_named():
    sd = _sd()
    sd["backbone.layer2.1.non_local_block.g.0.conv.bias"] = torch.zeros(15)
    with pytest.raises(mm.MMAction2CheckpointError, match=r"mismatch.*g\.0\.conv\.bias \(15,\) \(expected \(16,\)\)"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")
    sd = _sd()
    sd["backbone.layer1.0.conv2.conv.weight"] = torch.zeros(4, 4, 1, 5, 5)
    with pytest.raises(mm.MMAction2CheckpointError, match="not a bottleneck"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")
    sd = _sd()
    sd["cls_head.fc_cls.bias"] = torch.zeros(401)
    with pytest.raises(mm.MMAction2CheckpointError, match=r"cls_head\.fc_cls\.bias \(401,\)"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")


def test_extra_keys_are_listed_first_few_then_count():
    sd = _sd()
    sd["backbone.layer1.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(mm.MMAction2CheckpointError, match=r"1 key\(s\) nlviz has no place for: backbone\.layer1\.0"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")
    sd = _sd()
    for i in range(12):
        sd[f"neck.fc{i}.weight"] = torch.zeros(1)
    with pytest.raises(mm.MMAction2CheckpointError) as err:
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")
    msg = str(err.value)
    assert "12 key(s) nlviz has no place for" in msg and "neck.fc0.weight" in msg and "(12 in all)" in msg
    assert "neck.fc11.weight" not in msg
    sd = _sd()
    sd["backbone.layer2.1.conv2.conv.bias"] = torch.zeros(8)  # a bias nlviz's BN-followed convs do not have
    with pytest.raises(mm.MMAction2CheckpointError, match=r"conv2\.conv\.bias"):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")


def test_unknown_structures_are_refused_clearly():
    def fails(sd, match):
        with pytest.raises(mm.MMAction2CheckpointError, match=match):
            mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")

    sd = _sd()
    sd["backbone.layer5.0.conv1.conv.weight"] = torch.zeros(1, 1, 1, 1, 1)
    fails(sd, "layer1..layer4")
    sd = {k: v for k, v in _sd().items() if not k.startswith("backbone.layer3.2.")}
    fails(sd, r"layer3 has blocks \[0, 1, 3, 4, 5\]")
    sd = {k: v for k, v in _sd().items() if not k.startswith("backbone.layer4.")}
    fails(sd, "no residual blocks in backbone.layer4")
    sd = {k: v for k, v in _sd().items() if not k.startswith("cls_head.")}
    fails(sd, "fc_cls.weight is missing")
    sd = _sd()
    del sd["backbone.conv1.conv.weight"]
    fails(sd, "conv1.conv.weight is missing")
    sd = _sd()
    sd["backbone.layer2.0.conv1.conv.weight"] = torch.zeros(8, 16, 2, 1, 1)
    fails(sd, "even temporal kernel")
    # one block of gaussian kind among embedded ones
    sd = {k: v for k, v in _sd().items() if not k.startswith(("backbone.layer3.3.non_local_block.theta",
                                                              "backbone.layer3.3.non_local_block.phi"))}
    fails(sd, "different kinds.*layer3.3: gaussian")
    # 2-D backbones (e.g. TSN's ResNet) are mmaction2 too, but not a network nlviz has
    sd = _sd()
    sd["backbone.conv1.conv.weight"] = torch.zeros(4, 3, 7, 7)
    fails(sd, "3-D conv")
    for obj in ({}, {"state_dict": {}}):
        with pytest.raises(mm.MMAction2CheckpointError, match="no state dict"):
            mm.convert(obj)
    assert issubclass(mm.MMAction2CheckpointError, ValueError)


def test_errors_and_warnings_belong_to_the_checkpoint_families():
    from nlviz.checkpoints.common import AssumptionWarning, CheckpointError, CheckpointMismatchError

    assert issubclass(mm.MMAction2CheckpointError, CheckpointError)
    sd = _sd()
    sd["cls_head.fc_cls.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError):
        mm.convert({"state_dict": sd}, pairwise="embedded_gaussian")
    with pytest.raises(CheckpointError):
        mm.convert({"state_dict": {}})
    with pytest.warns(AssumptionWarning) as rec:
        mm.infer(_sd("dot_product"))
    assert [w.message.fields for w in rec] == [frozenset({"pairwise"})]


def test_module_prefix_is_dropped():
    sd = {"module." + k: v for k, v in _sd("gaussian").items()}
    arch, ov, state = mm.convert({"state_dict": sd})
    assert ov["pairwise"] == "gaussian" and "stem.conv.weight" in state


if __name__ == "__main__":
    print("mmaction2 parity, largest errors per mode (logits relative to max |logit|, the rest absolute):")
    print(error_table())
