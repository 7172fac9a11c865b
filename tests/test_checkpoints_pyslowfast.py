"""PySlowFast checkpoints (.pyth): key names, the saved config, strictness, and the forward pass.

No PySlowFast runs here: the checkpoints are synthetic, built in this file with the key names
and shapes of ``slowfast/models/video_model_builder.py`` (``ResNet``), ``stem_helper.py``,
``resnet_helper.py`` and ``nonlocal_helper.py``, saved the way ``slowfast/utils/checkpoint.py``
saves them (``{"epoch", "model_state", "optimizer_state", "cfg": cfg.dump()}``). The numbers
are checked against :func:`sf_forward`, a functional forward written from those files.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nlviz.resolve import load as load_model  # the one loader: names and checkpoint files
from nlviz.checkpoints import (
    AssumptionWarning,
    CheckpointError,
    CheckpointMismatchError,
    load_state,
    pyslowfast,
    read_checkpoint,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pyslowfast"
CFG_YAML = (FIXTURES / "I3D_NLN_8x8_R50.cfg.yaml").read_text()
CFG = json.loads((FIXTURES / "I3D_NLN_8x8_R50.cfg.json").read_text())
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# video_model_builder.py _TEMPORAL_KERNEL_BASIS (res2..res5) and RESNET.NUM_BLOCK_TEMP_KERNEL
BASIS = {"i3d": [[3], [3, 1], [3, 1], [1, 3]], "c2d": [[1], [1], [1], [1]], "slow": [[1], [1], [3], [3]]}
STEM_T = {"i3d": 5, "c2d": 1, "slow": 1}


def temp_kernels(arch: str, depth: int) -> list[list[int]]:
    """ResStage: (basis * num_blocks)[:num_block_temp_kernel] + [1] * rest, with NUM_BLOCK_TEMP_KERNEL = all."""
    return [(BASIS[arch][s] * n)[:n] for s, n in enumerate(DEPTHS[depth])]


def sf_state(
    arch: str = "i3d",
    depth: int = 50,
    width: int = 4,
    *,
    location=((), (1, 3), (1, 3, 5), ()),
    norm_name: str = "bn",
    classes: int = 400,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A PySlowFast ResNet model_state with random values of sensible scale."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name, cout, cin, k):
        fan = cin * k[0] * k[1] * k[2]
        sd[name] = torch.randn(cout, cin, *k, generator=g) * (2.0 / fan) ** 0.5

    def bn(prefix, c):
        sd[f"{prefix}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{prefix}.bias"] = torch.randn(c, generator=g) * 0.1
        sd[f"{prefix}.running_mean"] = torch.randn(c, generator=g) * 0.1
        sd[f"{prefix}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(1234)

    conv("s1.pathway0_stem.conv.weight", width, 3, (STEM_T[arch], 7, 7))
    bn("s1.pathway0_stem.bn", width)
    kernels = temp_kernels(arch, depth)
    dim_in = width
    for s, n in zip(range(2, 6), DEPTHS[depth]):
        inner, out = width * 2 ** (s - 2), width * 4 * 2 ** (s - 2)
        for i in range(n):
            pre = f"s{s}.pathway0_res{i}"
            if i == 0:
                conv(f"{pre}.branch1.weight", out, dim_in, (1, 1, 1))
                bn(f"{pre}.branch1_bn", out)
            conv(f"{pre}.branch2.a.weight", inner, dim_in, (kernels[s - 2][i], 1, 1))
            bn(f"{pre}.branch2.a_bn", inner)
            conv(f"{pre}.branch2.b.weight", inner, inner, (1, 3, 3))
            bn(f"{pre}.branch2.b_bn", inner)
            conv(f"{pre}.branch2.c.weight", out, inner, (1, 1, 1))
            bn(f"{pre}.branch2.c_bn", out)
            dim_in = out
            if i in location[s - 2]:
                nl = f"s{s}.pathway0_nonlocal{i}"
                for part in ("theta", "phi", "g"):
                    sd[f"{nl}.conv_{part}.weight"] = torch.randn(out // 2, out, 1, 1, 1, generator=g) * 0.3
                    sd[f"{nl}.conv_{part}.bias"] = torch.randn(out // 2, generator=g) * 0.1
                sd[f"{nl}.conv_out.weight"] = torch.randn(out, out // 2, 1, 1, 1, generator=g) * 0.3
                sd[f"{nl}.conv_out.bias"] = torch.randn(out, generator=g) * 0.1
                if norm_name:
                    bn(f"{nl}.{norm_name}", out)
    sd["head.projection.weight"] = torch.randn(classes, dim_in, generator=g) * 0.01
    sd["head.projection.bias"] = torch.zeros(classes)
    return sd


def cfg_text(**changes: str) -> str:
    """The fixture cfg YAML with some 'KEY: value' lines replaced (dotted keys, one level deep)."""
    text = CFG_YAML
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        head, sep, body = text.partition(f"\n{section}:\n")
        if not sep:
            head, sep, body = "", f"{section}:\n", text[len(f"{section}:\n"):]
        lines = body.split("\n")
        out, skipping = [], False
        for line in lines:
            if skipping:
                if line.startswith(("  -", "    ")):
                    continue
                skipping = False
            if line.startswith(f"  {key}:"):
                out.append(f"  {key}: {value}")
                skipping = True
                continue
            out.append(line)
        text = head + sep + "\n".join(out)
    return text


def checkpoint(sd, cfg: str | None = CFG_YAML) -> dict:
    obj = {"epoch": 196, "model_state": sd, "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.0, "momentum": 0.9}]}}
    if cfg is not None:
        obj["cfg"] = cfg
    return obj


def save(tmp_path, obj, name="checkpoint_epoch_00196.pyth") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


# --- an independent forward pass, written from PySlowFast's ResNet ------------------------------


def sf_forward(sd, x, *, pool2=True, instantiation="softmax", group=(1, 1, 1, 1), pool=(1, 2, 2)):
    """Logits (before the head's softmax) of PySlowFast's ResNet with these weights, in float64."""
    p = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    eps = 1e-5

    def bn(y, pre):
        def c(v):
            return v.view(1, -1, 1, 1, 1)

        return (y - c(p[f"{pre}.running_mean"])) / torch.sqrt(c(p[f"{pre}.running_var"]) + eps) * c(
            p[f"{pre}.weight"]) + c(p[f"{pre}.bias"])

    w = p["s1.pathway0_stem.conv.weight"]
    y = F.conv3d(x.double(), w, stride=(1, 2, 2), padding=(w.shape[2] // 2, 3, 3))
    y = torch.relu(bn(y, "s1.pathway0_stem.bn"))
    y = F.max_pool3d(y, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))  # ResNetBasicStem
    for s in range(2, 6):
        i = 0
        while f"s{s}.pathway0_res{i}.branch2.a.weight" in p:
            pre = f"s{s}.pathway0_res{i}"
            st = 2 if (i == 0 and s > 2) else 1
            a = p[f"{pre}.branch2.a.weight"]
            z = torch.relu(bn(F.conv3d(y, a, padding=(a.shape[2] // 2, 0, 0)), f"{pre}.branch2.a_bn"))
            z = torch.relu(bn(F.conv3d(z, p[f"{pre}.branch2.b.weight"], stride=(1, st, st), padding=(0, 1, 1)),
                              f"{pre}.branch2.b_bn"))
            z = bn(F.conv3d(z, p[f"{pre}.branch2.c.weight"]), f"{pre}.branch2.c_bn")
            if f"{pre}.branch1.weight" in p:
                y = bn(F.conv3d(y, p[f"{pre}.branch1.weight"], stride=(1, st, st)), f"{pre}.branch1_bn") + z
            else:
                y = y + z
            y = torch.relu(y)
            nl = f"s{s}.pathway0_nonlocal{i}"
            if f"{nl}.conv_theta.weight" in p:
                y = sf_nonlocal(p, y, nl, group[s - 2], instantiation, pool, bn)
            i += 1
        if s == 2 and pool2:
            y = F.max_pool3d(y, (2, 1, 1), stride=(2, 1, 1))  # pathway0_pool
    feat = y.mean(dim=(2, 3, 4))
    return feat @ p["head.projection.weight"].T + p["head.projection.bias"]


def sf_nonlocal(p, x, nl, groups, instantiation, pool, bn):
    """ResStage.forward's temporal folding around Nonlocal.forward."""
    b, c, t, h, w = x.shape
    if groups > 1:
        x = x.permute(0, 2, 1, 3, 4).reshape(b * groups, t // groups, c, h, w).permute(0, 2, 1, 3, 4)
    n, ci = x.shape[0], c // 2
    theta = F.conv3d(x, p[f"{nl}.conv_theta.weight"], p[f"{nl}.conv_theta.bias"])
    xp = F.max_pool3d(x, pool, stride=pool) if any(k > 1 for k in pool) else x
    phi = F.conv3d(xp, p[f"{nl}.conv_phi.weight"], p[f"{nl}.conv_phi.bias"])
    g = F.conv3d(xp, p[f"{nl}.conv_g.weight"], p[f"{nl}.conv_g.bias"])
    theta_phi = torch.einsum("nct,ncp->ntp", theta.reshape(n, ci, -1), phi.reshape(n, ci, -1))
    if instantiation == "softmax":
        theta_phi = torch.softmax(theta_phi * ci ** -0.5, dim=2)
    else:
        theta_phi = theta_phi / theta_phi.shape[2]
    y = torch.einsum("ntg,ncg->nct", theta_phi, g.reshape(n, ci, -1)).reshape(n, ci, *x.shape[2:])
    out = F.conv3d(y, p[f"{nl}.conv_out.weight"], p[f"{nl}.conv_out.bias"])
    norm = f"{nl}.bn" if f"{nl}.bn.weight" in p else f"{nl}.norm"
    z = x + bn(out, norm)
    if groups > 1:
        z = z.permute(0, 2, 1, 3, 4).reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    return z


def clip(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def assert_logits_close(model, sd, x, **kw):
    with torch.no_grad():
        ours = model(x).double()
    ref = sf_forward(sd, x, **kw)
    err = ((ours - ref).abs().max() / ref.abs().max()).item()
    assert err < 1e-3, err
    assert ref.abs().max() > 1e-3


# --- the saved config ---------------------------------------------------------------------------


def test_config_reader_returns_what_pyyaml_returns():
    assert pyslowfast.parse_block_yaml(CFG_YAML) == CFG
    assert pyslowfast.parse_cfg_yaml(CFG_YAML) == CFG
    assert CFG["NONLOCAL"]["POOL"][1] == [[1, 2, 2], [1, 2, 2]] and CFG["NONLOCAL"]["LOCATION"][0] == [[]]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A:\n  B:\n  - - 1\n    - 2\n  - - 3\n  C: x\n", {"A": {"B": [[1, 2], [3]], "C": "x"}}),
        ("A:\n- &id001\n  - 1\n  - 2\n- *id001\nB: ''\n", {"A": [[1, 2], [1, 2]], "B": ""}),
        ("A: [1, 2]\nB: {}\nC: 1.0e-05\nD: ~\nE: 'it''s'\nF: yes\nG: '1'\n",
         {"A": [1, 2], "B": {}, "C": 1e-05, "D": None, "E": "it's", "F": True, "G": "1"}),
        ("A:\n- X: 1\n  Y:\n  - 2\n- Z\n", {"A": [{"X": 1, "Y": [2]}, "Z"]}),
        ("A: a long\n  folded line\n", {"A": "a long folded line"}),
    ],
)
def test_config_reader_subset(text, expected):
    assert pyslowfast.parse_block_yaml(text) == expected


@pytest.mark.parametrize("text", ["A: !!python/object:os.system x\n", "- 1\n", "A:\n   B: 1\n  C: 2\n", "A: [1, 2\n"])
def test_config_reader_refuses_what_it_cannot_read(text):
    with pytest.raises(pyslowfast.ConfigParseError):
        pyslowfast.parse_block_yaml(text)


# --- conversion ---------------------------------------------------------------------------------

HAND_TABLE = {
    "s1.pathway0_stem.conv.weight": "stem.conv.weight",
    "s1.pathway0_stem.bn.running_var": "stem.bn.running_var",
    "s3.pathway0_res1.branch2.a.weight": "res3.1.conv_a.weight",
    "s3.pathway0_res1.branch2.a_bn.weight": "res3.1.bn_a.weight",
    "s3.pathway0_res1.branch2.b.weight": "res3.1.conv_b.weight",
    "s3.pathway0_res1.branch2.c_bn.num_batches_tracked": "res3.1.bn_c.num_batches_tracked",
    "s4.pathway0_res0.branch1.weight": "res4.0.downsample.0.weight",
    "s4.pathway0_res0.branch1_bn.bias": "res4.0.downsample.1.bias",
    "s3.pathway0_nonlocal1.conv_theta.weight": "res3.1.nl.theta.conv.weight",
    "s3.pathway0_nonlocal1.conv_phi.bias": "res3.1.nl.phi.conv.bias",
    "s3.pathway0_nonlocal1.conv_g.weight": "res3.1.nl.g.conv.weight",
    "s3.pathway0_nonlocal1.conv_out.weight": "res3.1.nl.out.weight",
    "s3.pathway0_nonlocal1.conv_out.bias": "res3.1.nl.out.bias",
    "s3.pathway0_nonlocal1.bn.running_mean": "res3.1.nl.bn.running_mean",
    "head.projection.weight": "head.fc.weight",
    "head.projection.bias": "head.fc.bias",
}


def test_hand_mapping_table():
    for src, ours in HAND_TABLE.items():
        assert pyslowfast.map_key(src) == ours, src
        assert pyslowfast.source_key(ours) == src, ours
    assert pyslowfast.map_key("s3.pathway0_nonlocal1.norm.weight") == "res3.1.nl.bn.weight"
    assert pyslowfast.source_key("res3.1.nl.bn.weight", nl_norm="norm") == "s3.pathway0_nonlocal1.norm.weight"
    for bad in ("s1.pathway1_stem.conv.weight", "s6.pathway0_res0.branch2.a.weight", "head.act.weight",
                "s3.pathway0_res1.branch2.d.weight", "s2_fuse.conv_f2s.weight"):
        assert pyslowfast.map_key(bad) is None, bad


def test_i3d_nln_with_its_saved_config(tmp_path):
    sd = sf_state("i3d", 50, width=4)
    path = save(tmp_path, checkpoint(sd))
    obj = read_checkpoint(path)  # torch.load(weights_only=True)
    assert pyslowfast.detect(obj)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything is in the file
        model = load_model(path)
    assert model.checkpoint_format == "pyslowfast" and model.arch == "i3d_nl5_r50"
    own = model.state_dict()
    assert set(own) == {pyslowfast.map_key(k) for k in sd}
    for k, v in sd.items():
        assert torch.equal(own[pyslowfast.map_key(k)], v), k  # every key used, every weight set
    cfg, nl = model.cfg, model.cfg.nonlocal_cfg
    assert cfg.pool1_padding == (0, 1, 1) and cfg.pool1_kernel == (1, 3, 3) and cfg.conv1_stride == (1, 2, 2)
    assert cfg.pool2 and cfg.bn_eps == 1e-5 and nl.bn_eps == 1e-5
    assert cfg.temporal_kernels == ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
    assert cfg.nonlocal_blocks == ((), (1, 3), (1, 3, 5), ()) and cfg.nonlocal_time_groups == (1, 1, 1, 1)
    assert (nl.pairwise, nl.use_scale, nl.pool_first, nl.subsample, nl.norm, nl.w_bias) == (
        "embedded_gaussian", True, True, True, True, True)
    spec = model.spec
    assert (spec.num_frames, spec.stride, spec.crop_size, spec.short_side) == (8, 8, 224, 256)
    assert spec.mean == (114.75,) * 3 and spec.std == (57.375,) * 3  # 0.45 / 0.225 on 0-1
    assert spec.channel_order == "RGB" and spec.labels == "kinetics400"
    assert_logits_close(model, sd, clip(1, 3, 8, 64, 64))


def test_dot_product_groups_nopool_bgr_from_the_config(tmp_path):
    """Every config-borne semantic at once: instantiation, NONLOCAL.GROUP, *_nopool, BGR, mean/std."""
    sd = sf_state("i3d", 50, width=4, location=((), (0, 2), (1,), ()), seed=1)
    for k in sd:  # unnormalised dot products grow fast: keep them small
        if ".pathway0_nonlocal" in k and k.endswith("conv_theta.weight"):
            sd[k] = sd[k] * 0.003
    text = cfg_text(**{"MODEL.ARCH": "i3d_nopool", "NONLOCAL.INSTANTIATION": "dot_product",
                       "DATA.REVERSE_INPUT_CHANNEL": "true", "DATA.NUM_FRAMES": "16", "DATA.SAMPLING_RATE": "4",
                       "DATA.MEAN": "[0.5, 0.4, 0.3]"})
    text = text.replace("  GROUP:\n  - - 1\n  - - 1\n", "  GROUP:\n  - - 1\n  - - 4\n")
    model = load_state(checkpoint(sd, text))
    cfg, nl = model.cfg, model.cfg.nonlocal_cfg
    assert not cfg.pool2 and nl.pairwise == "dot_product"
    assert cfg.nonlocal_time_groups == (1, 4, 1, 1)  # 16 frames, no pool2: 16 steps in res3, 4 groups of 4
    assert model.spec.channel_order == "BGR" and model.spec.mean == (127.5, 102.0, 76.5)
    assert (model.spec.num_frames, model.spec.stride) == (16, 4)
    assert_logits_close(model, sd, clip(1, 3, 16, 48, 48), pool2=False, instantiation="dot_product",
                        group=(1, 4, 1, 1))


def test_c2d_r101_and_norm_attribute(tmp_path):
    sd = sf_state("c2d", 101, width=2, norm_name="norm", classes=174, seed=2)
    text = cfg_text(**{"MODEL.ARCH": "c2d", "TRAIN.DATASET": "ssv2"})
    model = load_model(save(tmp_path, checkpoint(sd, text)))
    assert model.arch == "c2d_nl5_r101" and model.cfg.blocks == (3, 4, 23, 3)
    assert model.cfg.num_classes == 174 and model.spec.labels is None
    assert_logits_close(model, sd, clip(1, 3, 8, 48, 48))


def test_unpooled_nonlocal_and_slow_arch():
    sd = sf_state("slow", 50, width=2, location=((), (1,), (), ()), seed=3)
    text = cfg_text(**{"MODEL.ARCH": "slow"}).replace(
        "  POOL:\n  - - - 1\n      - 2\n      - 2\n    - - 1\n      - 2\n      - 2\n  - - - 1\n      - 2\n      - 2\n",
        "  POOL:\n  - - - 1\n      - 2\n      - 2\n    - - 1\n      - 2\n      - 2\n  - - - 1\n      - 1\n      - 1\n")
    model = load_state(checkpoint(sd, text))
    assert not model.cfg.pool2 and model.cfg.nonlocal_cfg.subsample is False
    assert model.cfg.temporal_kernels[2] == (3,) * 6 and model.cfg.conv1_kernel == (1, 7, 7)
    assert_logits_close(model, sd, clip(1, 3, 4, 48, 48), pool2=False, pool=(1, 1, 1))


def test_without_a_config_the_nln_values_are_assumed_and_said():
    sd = sf_state("i3d", 50, width=2, seed=4)
    with pytest.warns(AssumptionWarning, match="without a saved cfg") as rec:
        model = load_state({"model_state": sd})
    assert {"pairwise", "pool2", "num_frames"} <= rec[0].message.fields
    assert model.cfg.pool2 and model.cfg.nonlocal_cfg.pairwise == "embedded_gaussian"
    assert model.spec.num_frames == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the caller says it all
        model = load_state({"model_state": sd}, pairwise="dot_product",
                           overrides={"pool2": False, "num_frames": 16, "stride": 4})
    assert model.cfg.nonlocal_cfg.pairwise == "dot_product" and not model.cfg.pool2


def test_a_bare_state_dict_with_module_prefix():
    sd = sf_state("c2d", 50, width=2, seed=5)
    with pytest.warns(AssumptionWarning):
        model = load_state({"module." + k: v for k, v in sd.items()})
    assert model.arch == "c2d_nl5_r50"


# --- strictness and refusals ----------------------------------------------------------------------


def test_wrong_architecture_is_listed():
    sd = sf_state("i3d", 101, width=2, seed=6)
    for k in [k for k in sd if k.startswith("s4.pathway0_res7.")]:
        del sd[k]
    sd["s3.pathway0_res2.branch2.b.weight"] = torch.zeros(4, 4, 1, 5, 5)
    sd["s3.pathway0_nonlocal1.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as e:
        load_state(checkpoint(sd))
    msg = str(e.value)
    assert "15 missing: s4.pathway0_res7.branch2.a.weight" in msg and "(15 in all)" in msg
    assert "1 unexpected: s3.pathway0_nonlocal1.extra.weight" in msg
    assert "s3.pathway0_res2.branch2.b.weight: file (4, 4, 1, 5, 5) vs model (4, 4, 1, 3, 3)" in msg
    sd = {k: v for k, v in sf_state("i3d", 101, width=2).items() if not k.startswith("s4.pathway0_res22.")}
    with pytest.raises(CheckpointMismatchError, match=r"\(3, 4, 22, 3\)"):
        load_state(checkpoint(sd))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"MODEL.MODEL_NAME": "X3D"}, "MODEL_NAME is 'X3D'"),
        ({"MODEL.ARCH": "slowfast"}, "MODEL.ARCH is 'slowfast'"),
        ({"RESNET.STRIDE_1X1": "true"}, "STRIDE_1X1"),
        ({"NONLOCAL.INSTANTIATION": "cosine"}, "INSTANTIATION is 'cosine'"),
    ],
)
def test_configs_nlviz_does_not_build_are_refused(changes, match):
    with pytest.raises(CheckpointError, match=match):
        load_state(checkpoint(sf_state(width=2), cfg_text(**changes)))


def test_two_pathways_are_refused():
    sd = sf_state(width=2)
    sd["s1.pathway1_stem.conv.weight"] = torch.zeros(1, 3, 5, 7, 7)
    with pytest.raises(CheckpointError, match="SlowFast"):
        load_state(checkpoint(sd))


def test_pairwise_against_the_config_is_refused():
    with pytest.raises(CheckpointError, match="INSTANTIATION 'softmax'"):
        load_state(checkpoint(sf_state(width=2)), pairwise="dot_product")


def test_an_unreadable_config_warns_and_falls_back():
    with pytest.warns(AssumptionWarning) as rec:
        model = load_state(checkpoint(sf_state(width=2), "A:\n   B: 1\n  C: 2\n"))
    messages = [str(w.message) for w in rec]
    assert any("could not be read" in m for m in messages) and any("without a saved cfg" in m for m in messages)
    assert model.cfg.nonlocal_cfg.pairwise == "embedded_gaussian"


def test_detection():
    t = torch.zeros(1)
    assert pyslowfast.detect({"model_state": {"s1.pathway0_stem.conv.weight": t}})
    assert pyslowfast.detect({"s1.pathway0_stem.conv.weight": t})
    for obj in (None, {}, {"model_state": {}}, {"state_dict": {"backbone.conv1.conv.weight": t}},
                {"blobs": {"conv1_w": t}}, {"stem.conv.weight": t}, "s1.pathway0_stem.conv.weight"):
        assert not pyslowfast.detect(obj), obj
