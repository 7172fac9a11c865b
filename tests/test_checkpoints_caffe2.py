"""Caffe2 checkpoints (video-nonlocal-net): names, inference, strictness, and the forward pass.

No Caffe2 runs here, so the checkpoints are synthetic, built in this file with the blob names
and shapes of the reference code (``lib/models/resnet_video.py``, ``resnet_helper.py``,
``nonlocal_helper.py``, ``model_builder_video.py``) at a narrow width. The numbers are checked
against :func:`c2_forward`, a plain functional forward written from those files (not from
nlviz's modules): conv1, ``res_conv1_bn``, ``pool1``, ``res{s}_{i}`` bottlenecks with
``branch1`` shortcuts, ``pool2`` after res2, ``nonlocal_conv{s}_{i}`` blocks, ``pred``.
"""

from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlviz.resolve import load as load_model  # the one loader: names and checkpoint files
from nlviz.checkpoints import (
    AssumptionWarning,
    CheckpointError,
    CheckpointMismatchError,
    caffe2,
    load_state,
    read_checkpoint,
)

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
EPS = 1.0000001e-5  # lib/core/config.py: MODEL.BN_EPSILON, NONLOCAL.BN_EPSILON


# --- synthetic checkpoints with the reference names --------------------------------------------


def use_temp_convs(arch: str, depth: int) -> list[list[int]]:
    """obtain_arc() of resnet_video.py: 1 = a 3x1x1 branch2a, per stage res2..res5 (I3D), all 0 for C2D."""
    n = DEPTHS[depth]
    if arch == "c2d":
        return [[0] * k for k in n]
    res4 = [1, 0, 1, 0, 1, 0] if depth == 50 else [1 if i % 2 == 0 else 0 for i in range(23)]
    return [[1, 1, 1], [1, 0, 1, 0], res4, [0, 1, 0]]


def nonlocal_indices(depth: int, n_blocks: int, stage: int) -> list[int]:
    """resnet_video.py: layer_mod 2 (res3 of R101: 2; res4 of R101: 2 * 4 - 1 = 7); idx % mod == mod - 1."""
    mod = 2 if stage == 3 or depth == 50 else 7
    return [i for i in range(n_blocks) if i % mod == mod - 1]


def c2_blob_shapes(
    arch: str = "i3d",
    depth: int = 50,
    width: int = 4,
    *,
    nonlocal_: bool = True,
    affine: bool = False,
    nl_bn: bool = True,
    classes: int = 400,
    pred_conv: bool = False,
) -> dict[str, tuple[int, ...]]:
    """Blob name -> shape of a Caffe2 video ResNet, as create_model() names its params and computed params."""
    bn = ("s", "b") if affine else ("s", "b", "rm", "riv")
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(prefix: str, cout: int, cin: int, k: tuple[int, int, int]) -> None:
        shapes[f"{prefix}_w"] = (cout, cin, *k)
        for p in bn:
            shapes[f"{prefix}_bn_{p}"] = (cout,)

    temp = use_temp_convs(arch, depth)
    shapes["conv1_w"] = (width, 3, 5 if arch == "i3d" else 1, 7, 7)
    for p in bn:
        shapes[f"res_conv1_bn_{p}"] = (width,)
    dim_in = width
    for s, n in zip(range(2, 6), DEPTHS[depth]):
        inner, out = width * 2 ** (s - 2), width * 4 * 2 ** (s - 2)
        for i in range(n):
            pre = f"res{s}_{i}"
            conv_bn(f"{pre}_branch2a", inner, dim_in, (1 + 2 * temp[s - 2][i], 1, 1))
            conv_bn(f"{pre}_branch2b", inner, inner, (1, 3, 3))
            conv_bn(f"{pre}_branch2c", out, inner, (1, 1, 1))
            if i == 0:  # dim_in != dim_out or stride 2: _add_shortcut_3d
                conv_bn(f"{pre}_branch1", out, dim_in, (1, 1, 1))
            dim_in = out
            if nonlocal_ and s in (3, 4) and i in nonlocal_indices(depth, n, s):
                nl, half = f"nonlocal_conv{s}_{i}", out // 2
                for part in ("theta", "phi", "g"):
                    shapes[f"{nl}_{part}_w"] = (half, out, 1, 1, 1)
                    shapes[f"{nl}_{part}_b"] = (half,)
                shapes[f"{nl}_out_w"] = (out, half, 1, 1, 1)
                shapes[f"{nl}_out_b"] = (out,)
                if nl_bn:
                    for p in bn:
                        shapes[f"{nl}_bn_{p}"] = (out,)
    shapes["pred_w"] = (classes, dim_in, 1, 1, 1) if pred_conv else (classes, dim_in)
    shapes["pred_b"] = (classes,)
    return shapes


def fill(shapes: dict[str, tuple[int, ...]], seed: int = 0, *, training_state: bool = True) -> dict[str, np.ndarray]:
    """Random float32 blobs of sensible scale (He-normal convs, BN scales near 1), plus lr/model_iter/momentum."""
    rng = np.random.default_rng(seed)
    blobs: dict[str, object] = {}
    for name, shape in shapes.items():
        if name.endswith(("_bn_s", "_bn_riv")):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("_bn_b", "_bn_rm", "_b")):
            v = rng.normal(0, 0.1, shape)
        elif name.startswith("nonlocal_"):
            v = rng.normal(0, 0.3, shape)
        else:
            v = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        blobs[name] = v.astype(np.float32)
    if training_state:
        blobs["lr"] = np.array([0.0001], dtype=np.float32)
        blobs["model_iter"] = 400000
        blobs["conv1_w_momentum"] = np.zeros(shapes["conv1_w"], np.float32)
        blobs["pred_b_momentum"] = np.zeros(shapes["pred_b"], np.float32)
    return blobs


def write_pkl(path, blobs, *, wrap: bool = True) -> str:
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs} if wrap else blobs, f, protocol=2)
    return str(path)


def tensors(blobs) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in blobs.items() if isinstance(v, np.ndarray)}


# --- an independent forward pass, written from the Caffe2 graph ---------------------------------


def c2_forward(blobs, x, *, graph: str = "resnet_video", softmax: bool = True) -> torch.Tensor:
    """Logits of the Caffe2 network the blobs describe (float64), for a clip x (N, 3, T, H, W)."""
    b = {k: v.double() for k, v in tensors(blobs).items() if not k.endswith("_momentum")}

    def ch(v):  # (C,) -> (1, C, 1, 1, 1)
        return v.view(1, -1, 1, 1, 1)

    def bn(y, p):  # SpatialBN (test mode) or AffineNd
        if f"{p}_rm" in b:
            y = (y - ch(b[f"{p}_rm"])) / torch.sqrt(ch(b[f"{p}_riv"]) + EPS)
        return y * ch(b[f"{p}_s"]) + ch(b[f"{p}_b"])

    def conv(y, name, stride=(1, 1, 1), bias=None):
        w = b[name]
        pad = tuple(k // 2 for k in w.shape[2:])
        return F.conv3d(y, w, bias, stride=stride, padding=pad)

    affine = "res_conv1_bn_rm" not in b
    t_stride = 2 if graph == "resnet_video_org" else 1
    y = torch.relu(bn(conv(x.double(), "conv1_w", (t_stride, 2, 2)), "res_conv1_bn"))
    pool1 = (2, 3, 3) if graph == "resnet_video_org" else (1, 3, 3)
    y = F.max_pool3d(y, pool1, stride=(t_stride, 2, 2), padding=0)
    s = 2
    while f"res{s}_0_branch2a_w" in b:
        i = 0
        while f"res{s}_{i}_branch2a_w" in b:
            pre = f"res{s}_{i}"
            st = 2 if (i == 0 and s > 2) else 1
            z = torch.relu(bn(conv(y, f"{pre}_branch2a_w"), f"{pre}_branch2a_bn"))
            z = torch.relu(bn(conv(z, f"{pre}_branch2b_w", (1, st, st)), f"{pre}_branch2b_bn"))
            z = bn(conv(z, f"{pre}_branch2c_w"), f"{pre}_branch2c_bn")
            sc = bn(conv(y, f"{pre}_branch1_w", (1, st, st)), f"{pre}_branch1_bn") if f"{pre}_branch1_w" in b else y
            y = torch.relu(z + sc)
            nl = f"nonlocal_conv{s}_{i}"
            if f"{nl}_theta_w" in b:
                group = 4 if (affine and s == 3) else None
                y = nonlocal_(b, y, nl, group, softmax=softmax)
            i += 1
        if s == 2:
            y = F.max_pool3d(y, (2, 1, 1), stride=(2, 1, 1))
        s += 1
    feat = y.mean(dim=(2, 3, 4))  # pool5: an average over the whole res5 map on a 224 crop
    w = b["pred_w"].reshape(b["pred_w"].shape[0], -1)
    return feat @ w.T + b["pred_b"]


def nonlocal_(b, x, prefix, group_size, *, softmax: bool = True):
    """add_nonlocal / add_nonlocal_group + spacetime_nonlocal of nonlocal_helper.py."""
    n, c, t, h, w = x.shape
    if group_size is not None and t // group_size > 1:  # (N, C, T, H, W) -> (N * T/g, C, g, H, W)
        g = t // group_size
        xin = x.transpose(1, 2).reshape(n * g, group_size, c, h, w).transpose(1, 2)
    else:
        xin = x
    nb = xin.shape[0]

    def conv(y, part):
        return F.conv3d(y, b[f"{prefix}_{part}_w"], b.get(f"{prefix}_{part}_b"))

    theta = conv(xin, "theta").reshape(nb, c // 2, -1)
    pooled = F.max_pool3d(xin, (1, 2, 2), stride=(1, 2, 2))
    phi = conv(pooled, "phi").reshape(nb, c // 2, -1)
    gv = conv(pooled, "g").reshape(nb, c // 2, -1)
    aff = theta.transpose(1, 2) @ phi  # (N, THW, T'H'W')
    if softmax:
        p = torch.softmax(aff * (c // 2) ** -0.5, dim=2)
    else:
        p = aff / aff.shape[2]
    y = (gv @ p.transpose(1, 2)).reshape(xin.shape[0], c // 2, *xin.shape[2:])
    out = conv(y, "out")
    if f"{prefix}_bn_s" in b:
        def ch(v):
            return v.view(1, -1, 1, 1, 1)

        if f"{prefix}_bn_rm" in b:
            out = (out - ch(b[f"{prefix}_bn_rm"])) / torch.sqrt(ch(b[f"{prefix}_bn_riv"]) + EPS)
        out = out * ch(b[f"{prefix}_bn_s"]) + ch(b[f"{prefix}_bn_b"])
    z = xin + out
    if xin is not x:
        z = z.transpose(1, 2).reshape(n, t, c, h, w).transpose(1, 2)
    return z


def clip(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def assert_logits_close(model, blobs, x, **kw):
    with torch.no_grad():
        ours = model(x).double()
    ref = c2_forward(blobs, x, **kw)
    err = ((ours - ref).abs().max() / ref.abs().max()).item()
    assert err < 1e-3, err  # float32 against float64 through ~50 layers of a random (unnormalised) network
    assert ref.abs().max() > 1e-3


# --- names ------------------------------------------------------------------------------------

# derived by hand from resnet_helper.py / nonlocal_helper.py / resnet_video.py and our module names
HAND_TABLE = {
    "conv1_w": "stem.conv.weight",
    "res_conv1_bn_s": "stem.bn.weight",
    "res_conv1_bn_b": "stem.bn.bias",
    "res_conv1_bn_rm": "stem.bn.running_mean",
    "res_conv1_bn_riv": "stem.bn.running_var",
    # one residual block, res3_1
    "res3_1_branch2a_w": "res3.1.conv_a.weight",
    "res3_1_branch2a_bn_s": "res3.1.bn_a.weight",
    "res3_1_branch2a_bn_b": "res3.1.bn_a.bias",
    "res3_1_branch2a_bn_rm": "res3.1.bn_a.running_mean",
    "res3_1_branch2a_bn_riv": "res3.1.bn_a.running_var",
    "res3_1_branch2b_w": "res3.1.conv_b.weight",
    "res3_1_branch2b_bn_s": "res3.1.bn_b.weight",
    "res3_1_branch2c_w": "res3.1.conv_c.weight",
    "res3_1_branch2c_bn_riv": "res3.1.bn_c.running_var",
    # a projection shortcut
    "res4_0_branch1_w": "res4.0.downsample.0.weight",
    "res4_0_branch1_bn_s": "res4.0.downsample.1.weight",
    "res4_0_branch1_bn_rm": "res4.0.downsample.1.running_mean",
    # one non-local block, after res3_1
    "nonlocal_conv3_1_theta_w": "res3.1.nl.theta.conv.weight",
    "nonlocal_conv3_1_theta_b": "res3.1.nl.theta.conv.bias",
    "nonlocal_conv3_1_phi_w": "res3.1.nl.phi.conv.weight",
    "nonlocal_conv3_1_phi_b": "res3.1.nl.phi.conv.bias",
    "nonlocal_conv3_1_g_w": "res3.1.nl.g.conv.weight",
    "nonlocal_conv3_1_g_b": "res3.1.nl.g.conv.bias",
    "nonlocal_conv3_1_out_w": "res3.1.nl.out.weight",
    "nonlocal_conv3_1_out_b": "res3.1.nl.out.bias",
    "nonlocal_conv3_1_bn_s": "res3.1.nl.bn.weight",
    "nonlocal_conv3_1_bn_b": "res3.1.nl.bn.bias",
    "nonlocal_conv3_1_bn_rm": "res3.1.nl.bn.running_mean",
    "nonlocal_conv3_1_bn_riv": "res3.1.nl.bn.running_var",
    "pred_w": "head.fc.weight",
    "pred_b": "head.fc.bias",
}


def test_hand_mapping_table():
    for blob, ours in HAND_TABLE.items():
        assert caffe2.map_key(blob) == ours, blob
        assert caffe2.source_key(ours) == blob, ours
    for bad in ("conv1_b", "res6_0_branch2a_w", "res3_1_branch2d_w", "nonlocal_conv3_1_psi_w", "pred_x", "lr",
                "res3_1_branch2a_w_momentum", "t_res3_1_branch2a_w", "nonlocal_conv3_1_bn_x"):
        assert caffe2.map_key(bad) is None, bad
    assert caffe2.source_key("res3.1.bn_a.num_batches_tracked") is None  # Caffe2 keeps no count
    assert all(caffe2.is_ignored(n) for n in ("lr", "model_iter", "epoch", "conv1_w_momentum"))
    assert not caffe2.is_ignored("conv1_w")


@pytest.mark.parametrize("depth", [50, 101])
def test_every_reference_blob_maps_into_our_model_and_back(depth):
    shapes = c2_blob_shapes("i3d", depth, width=2)
    with torch.device("meta"):
        from nlviz.models import build

        arch, overrides = caffe2.infer({"blobs": shapes and fill(shapes)}, filename="x_8x8_.pkl")
        model = build(arch, **overrides)
    ours = model.state_dict()
    mapped = {caffe2.map_key(n): n for n in shapes}
    assert None not in mapped and len(mapped) == len(shapes)
    assert set(mapped) == {k for k in ours if not k.endswith("num_batches_tracked")}
    for key, blob in mapped.items():
        assert tuple(ours[key].shape) == tuple(shapes[blob]) or blob == "pred_w", key


# --- conversion: everything used, everything set ------------------------------------------------


@pytest.mark.parametrize(
    "arch, depth, filename, graph",
    [
        ("i3d", 50, "i3d_nonlocal_8x8_IN_pretrain_400k.pkl", "resnet_video"),
        ("c2d", 50, "c2d_nonlocal_32x2_IN_pretrain_400k.pkl", "resnet_video_org"),
        ("i3d", 101, "i3d_r101_nonlocal_8x8.pkl", "resnet_video"),
        ("c2d", 101, "c2d_r101_nonlocal_32x2.pkl", "resnet_video_org"),
    ],
)
def test_convert_uses_every_blob_and_sets_every_weight(tmp_path, arch, depth, filename, graph):
    shapes = c2_blob_shapes(arch, depth, width=2 if depth == 101 else 4, pred_conv=(depth == 101))
    blobs = fill(shapes, seed=depth)
    path = write_pkl(tmp_path / filename, blobs)
    obj = read_checkpoint(path)
    assert caffe2.detect(obj)
    got_arch, _, state = caffe2.convert(obj, filename=filename)
    assert got_arch == f"{arch}_nl5_r{depth}"
    # every blob but the training state went somewhere, unchanged
    for name, value in blobs.items():
        if caffe2.is_ignored(name):
            continue
        key = caffe2.map_key(name)
        assert torch.equal(state[key].reshape(value.shape), torch.from_numpy(value)), name
    model = load_model(path)
    assert model.checkpoint_format == "caffe2" and not model.training
    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in own.items():
        if key.endswith("num_batches_tracked"):
            assert value.item() == 0
        else:
            assert torch.equal(value, state[key]), key
    cfg = model.cfg
    assert cfg.blocks == DEPTHS[depth]
    assert cfg.conv1_kernel == ((5, 7, 7) if arch == "i3d" else (1, 7, 7))
    temp = use_temp_convs(arch, depth)
    assert cfg.temporal_kernels == tuple(tuple(1 + 2 * t for t in s) for s in temp)
    assert cfg.nonlocal_blocks == ((), tuple(nonlocal_indices(depth, 4, 3)),
                                   tuple(nonlocal_indices(depth, DEPTHS[depth][2], 4)), ())
    if depth == 101:
        assert cfg.nonlocal_blocks[2] == (6, 13, 20)  # resnet_video.py: layer_mod * 4 - 1 for R101's res4
    assert cfg.bn_eps == EPS and cfg.nonlocal_cfg.bn_eps == EPS
    nl = cfg.nonlocal_cfg
    assert (nl.pairwise, nl.pool_first, nl.use_scale, nl.subsample, nl.w_bias, nl.norm) == (
        "embedded_gaussian", True, True, True, True, True)
    frames, rate = (8, 8) if "8x8" in filename else (32, 2)
    assert (model.spec.num_frames, model.spec.stride, model.spec.crop_size, model.spec.short_side) == (frames, rate,
                                                                                                          224, 256)
    assert model.spec.mean == (114.75,) * 3 and model.spec.std == (57.375,) * 3
    assert model.spec.channel_order == "RGB" and model.spec.labels == "kinetics400"
    stem = caffe2.GRAPHS[graph]
    assert (cfg.conv1_stride, cfg.pool1_kernel, cfg.pool1_stride, cfg.pool1_padding, cfg.pool2) == (
        stem["conv1_stride"], stem["pool1_kernel"], stem["pool1_stride"], (0, 0, 0), True)
    if depth == 50:
        frames_in = 8 if graph == "resnet_video" else 16
        assert_logits_close(model, blobs, clip(1, 3, frames_in, 64, 64), graph=graph)


def test_affine_long_clip_model(tmp_path):
    """i3d_nonlocal_128x1_I3D_pretrain_400k.pkl: scale/bias per BN, res3 attention in groups of 4, no NL BN."""
    shapes = c2_blob_shapes("i3d", 50, width=4, affine=True, nl_bn=False)
    assert not any(n.endswith(("_rm", "_riv")) for n in shapes)
    blobs = fill(shapes, seed=3)
    name = "i3d_nonlocal_128x1_I3D_pretrain_400k.pkl"
    model = load_model(write_pkl(tmp_path / name, blobs))
    cfg = model.cfg
    assert cfg.nonlocal_time_groups == (1, 4, 1, 1) and cfg.nonlocal_cfg.norm is False
    assert model.res3[1].nl.time_groups == 4 and model.res4[1].nl.time_groups == 1
    assert (cfg.conv1_stride, cfg.pool1_kernel) == ((2, 2, 2), (2, 3, 3))  # resnet_video_org.py
    assert (model.spec.num_frames, model.spec.stride) == (128, 1)
    # an AffineNd layer is a BN with mean 0, variance 1 - eps: the same function
    bn = model.stem.bn
    assert torch.equal(bn.running_mean, torch.zeros(4))
    x = torch.randn(2, 4, 3, 5, 5)
    want = x * torch.from_numpy(blobs["res_conv1_bn_s"]).view(1, -1, 1, 1, 1) + torch.from_numpy(
        blobs["res_conv1_bn_b"]).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(bn(x), want, rtol=1e-6, atol=1e-6)
    # 32 frames: T = 4 at res3 (conv1, pool1 and pool2 each halve time): one group of 4
    assert_logits_close(model, blobs, clip(1, 3, 32, 64, 64), graph="resnet_video_org")


def test_affine_grouping_matches_caffe2_with_several_groups(tmp_path):
    """32x4 affine (resnet_video.py): 32 input frames -> 16 at res3 -> 4 groups of 4 time steps."""
    blobs = fill(c2_blob_shapes("i3d", 50, width=2, affine=True, nl_bn=False), seed=4)
    model = load_model(write_pkl(tmp_path / "i3d_nonlocal_32x4_I3D_pretrain_400k.pkl", blobs))
    assert (model.spec.num_frames, model.spec.stride) == (32, 4) and model.cfg.conv1_stride == (1, 2, 2)
    x = clip(1, 3, 32, 48, 48)
    assert_logits_close(model, blobs, x, graph="resnet_video")
    # without the grouping the numbers differ: it matters
    ungrouped = load_state({"blobs": blobs}, filename="i3d_nonlocal_32x4_I3D_pretrain_400k.pkl",
                           overrides={"nonlocal_time_groups": (1, 1, 1, 1)})
    with torch.no_grad():
        assert (ungrouped(x) - model(x)).abs().max() > 1e-4


def test_dot_product_variant_and_refused_pairwise(tmp_path):
    blobs = fill(c2_blob_shapes("c2d", 50, width=4), seed=5)
    for k in blobs:  # unnormalised dot products grow fast through five blocks: keep them small
        if k.startswith("nonlocal_") and k.endswith("_w"):
            blobs[k] = blobs[k] * 0.003
    model = load_state({"blobs": blobs}, filename="c2d_8x8.pkl", pairwise="dot_product")
    assert model.cfg.nonlocal_cfg.pairwise == "dot_product"
    assert_logits_close(model, blobs, clip(1, 3, 8, 64, 64), softmax=False)
    with pytest.raises(CheckpointError, match="embedded_gaussian.*or dot_product"):
        caffe2.convert({"blobs": blobs}, filename="c2d_8x8.pkl", pairwise="gaussian")


def test_bare_blob_dict_and_test_net_classifier(tmp_path):
    """convert_models/*.py pickle the blob dict itself; the test net's pred is a 1x1x1 conv."""
    blobs = fill(c2_blob_shapes("i3d", 50, width=4, pred_conv=True, classes=10), seed=6)
    path = write_pkl(tmp_path / "i3d_nonlocal_8x8_bare.pkl", blobs, wrap=False)
    model = load_model(path)
    assert model.cfg.num_classes == 10 and model.spec.labels is None
    assert model.head.fc.weight.shape == (10, 128)
    assert_logits_close(model, blobs, clip(1, 3, 8, 64, 64))


def test_no_bias_nonlocal_variant_loads_as_zero_biases():
    """NONLOCAL.NO_BIAS = 1: no _b blobs on theta/phi/g/out; no bias is a zero bias (and w_bias=False)."""
    shapes = {k: v for k, v in c2_blob_shapes("i3d", 50, width=2).items()
              if not re.match(r"^nonlocal_conv\d+_\d+_(theta|phi|g|out)_b$", k)}
    blobs = fill(shapes, seed=7)
    model = load_state({"blobs": blobs}, filename="i3d_8x8.pkl")
    assert model.cfg.nonlocal_cfg.w_bias is False
    assert torch.equal(model.res3[1].nl.theta.conv.bias, torch.zeros(8))
    assert_logits_close(model, blobs, clip(1, 3, 8, 48, 48))


# --- the stem graph: file names and hints -------------------------------------------------------


def test_graph_from_file_name():
    blobs = {"blobs": fill(c2_blob_shapes("i3d", 50, width=2), seed=8)}
    _, ov = caffe2.infer(blobs, filename="I3D_NLN_8x8_R50.pkl")  # PySlowFast's Caffe2-format file
    assert ov["pool1_padding"] == (0, 1, 1) and ov.get("bn_eps", 1e-5) == 1e-5  # PySlowFast runs it so
    for name, frames in (("i3d_nonlocal_32x2_IN_pretrain_400k.pkl", 32), ("x_8x8_y.pkl", 8)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _, ov = caffe2.infer(blobs, filename=name)
        assert ov["num_frames"] == frames
    with pytest.warns(AssumptionWarning, match="does not say its clip") as rec:
        _, ov = caffe2.infer(blobs, filename="my_model.pkl")
    assert (ov["num_frames"], ov["stride"]) == (8, 8) and "conv1_stride" in rec[0].message.fields


def test_overrides_set_what_the_file_cannot_and_settle_the_warning():
    blobs = {"blobs": fill(c2_blob_shapes("i3d", 50, width=2), seed=9)}
    given = {"num_frames": 32, "stride": 2, "conv1_stride": (2, 2, 2), "pool1_kernel": (2, 3, 3),
             "pool1_stride": (2, 2, 2)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_state(blobs, filename="my_model.pkl", overrides=given)
    assert model.cfg.conv1_stride == (2, 2, 2) and model.spec.num_frames == 32
    assert model.build_overrides["conv1_stride"] == (2, 2, 2)
    with pytest.warns(AssumptionWarning):
        load_state(blobs, filename="my_model.pkl", overrides={"num_frames": 32})  # only part of it said


# --- wrong architectures are refused, clearly ---------------------------------------------------


def r101_blobs() -> dict:
    return fill(c2_blob_shapes("i3d", 101, width=2), seed=10)


def test_removed_blocks_are_listed_with_counts():
    blobs = r101_blobs()
    gone = [k for k in blobs if k.startswith(("res4_5_", "res4_7_"))]
    assert len(gone) == 2 * 3 * 5
    for k in gone:
        del blobs[k]
    with pytest.raises(CheckpointMismatchError) as e:
        caffe2.convert({"blobs": blobs}, filename="r101_8x8.pkl")
    msg = str(e.value)
    assert "30 missing: res4_5_branch2a_w" in msg and "(30 in all)" in msg
    assert "i3d_nl5_r101" in msg


def test_truncated_depth_is_refused():
    blobs = {k: v for k, v in r101_blobs().items() if not k.startswith("res4_22_")}
    with pytest.raises(CheckpointMismatchError, match=r"\(3, 4, 22, 3\).*ResNet-101 \(3, 4, 23, 3\)"):
        caffe2.convert({"blobs": blobs})


def test_changed_shape_and_extra_blob_are_named():
    blobs = r101_blobs()
    blobs["res3_2_branch2b_w"] = np.zeros((4, 4, 1, 5, 5), np.float32)
    blobs["nonlocal_conv4_6_phi_b"] = np.zeros(3, np.float32)
    blobs["res3_1_extra_w"] = np.zeros(1, np.float32)
    blobs["fc7_w"] = np.zeros(1, np.float32)
    with pytest.raises(CheckpointMismatchError) as e:
        caffe2.convert({"blobs": blobs}, filename="x_8x8.pkl")
    msg = str(e.value)
    assert "2 shape mismatches: " in msg
    assert "res3_2_branch2b_w: file (4, 4, 1, 5, 5) vs model (4, 4, 1, 3, 3) (res3.2.conv_b.weight)" in msg
    assert "nonlocal_conv4_6_phi_b: file (3,) vs model (16,)" in msg
    assert "2 unexpected: fc7_w, res3_1_extra_w" in msg


def test_partial_running_statistics_are_not_taken_for_affine():
    """One BN without _rm/_riv in a BN checkpoint is a broken file, not an affine layer."""
    blobs = fill(c2_blob_shapes("i3d", 50, width=2), seed=11)
    del blobs["res2_1_branch2b_bn_rm"], blobs["res2_1_branch2b_bn_riv"]
    with pytest.raises(CheckpointMismatchError, match="2 missing: res2_1_branch2b_bn_rm, res2_1_branch2b_bn_riv"):
        caffe2.convert({"blobs": blobs}, filename="x_8x8.pkl")


def test_arch_hint_that_disagrees_with_the_file():
    blobs = {"blobs": fill(c2_blob_shapes("c2d", 50, width=64 // 16), seed=12)}
    with pytest.raises(CheckpointMismatchError) as e:
        load_state(blobs, filename="c2d_8x8.pkl", arch="i3d_nl5_r50", overrides={"base_channels": 4})
    msg = str(e.value)
    assert "not i3d_nl5_r50" in msg and "conv1_kernel: file (1, 7, 7) vs expected (5, 7, 7)" in msg
    assert "temporal_kernels" in msg
    model = load_state(blobs, filename="c2d_8x8.pkl", arch="c2d_nl5_r50", overrides={"base_channels": 4})
    assert model.arch == "c2d_nl5_r50"


def test_refusals():
    with pytest.raises(CheckpointError, match="pred_w is missing"):
        caffe2.convert({"blobs": {k: v for k, v in fill(c2_blob_shapes(width=2)).items() if not k.startswith("pred")}})
    blobs = fill(c2_blob_shapes(width=2))
    blobs["t_res2_0_branch2a_w"] = np.zeros((1,), np.float32)
    with pytest.raises(CheckpointError, match="SlowFast"):
        caffe2.convert({"blobs": blobs})
    blobs = fill(c2_blob_shapes(width=2))
    blobs["conv1_w"] = np.zeros((2, 3, 7, 7), np.float32)
    with pytest.raises(CheckpointError, match="conv1_w is"):
        caffe2.convert({"blobs": blobs})
    blobs = fill(c2_blob_shapes(width=2))
    blobs["res2_0_branch2a_w"] = np.array([["a"]], dtype=object)
    with pytest.raises(CheckpointError, match="res2_0_branch2a_w"):
        caffe2.convert({"blobs": blobs}, filename="x_8x8.pkl")


# --- detection ----------------------------------------------------------------------------------


def test_detection():
    w = np.zeros((4, 3, 1, 7, 7), np.float32)
    assert caffe2.detect({"blobs": {"conv1_w": w}})
    assert caffe2.detect({"conv1_w": w, "lr": 0.1})  # the convert_models scripts' bare dict
    t = torch.zeros(1)
    for obj in (None, {}, {"blobs": {}}, {"blobs": {"conv1_w": "x"}}, [("conv1_w", w)],
                {"state_dict": {"backbone.conv1.conv.weight": t}},
                {"model_state": {"s1.pathway0_stem.conv.weight": t}}, {"stem.conv.weight": t}):
        assert not caffe2.detect(obj), obj


@pytest.mark.parametrize("change", [{"pool1_padding": (0, 1, 1)}, {"pool_first": False}, {"use_scale": False},
                                    {"bn_eps": 1e-3}])
def test_the_reference_forward_tells_graphs_apart(change):
    """Each Caffe2 graph fact the loader sets changes the logits: the comparison above would catch it."""
    blobs = fill(c2_blob_shapes("i3d", 50, width=4), seed=13)
    model = load_state({"blobs": blobs}, filename="i3d_8x8.pkl", overrides=change)
    x = clip(1, 3, 8, 64, 64)
    with torch.no_grad():
        ours = model(x).double()
    ref = c2_forward(blobs, x)
    assert ((ours - ref).abs().max() / ref.abs().max()).item() > 1e-2
