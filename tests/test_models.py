"""Every registered architecture builds and runs; the registry fails loudly on bad names."""

from __future__ import annotations

import pytest
import torch

from nlviz.models import build, family_of, get_config, list_models, register
from nlviz.models.resnet3d import count_parameters


NL_FAMILIES = ("resnet_nl", "tiny_i3d", "i3d_inception")  # networks with non-local blocks or probes


@pytest.mark.parametrize("name", [n for n in list_models() if family_of(n).name in NL_FAMILIES])
def test_every_model_builds_and_runs(name):
    cfg, spec = get_config(name)
    tiny = name.startswith("tiny")
    # full-size networks are built narrow (base_channels=4) so the forward stays fast
    model = build(name) if tiny else build(name, base_channels=4, num_classes=7)
    t, s = (spec.num_frames, spec.crop_size) if tiny else (8, 64)
    with torch.no_grad():
        out = model(torch.randn(1, 3, t, s, s))
    assert out.shape == (1, model.cfg.num_classes)
    assert torch.isfinite(out).all()
    assert not model.training
    assert sum(1 for n, _ in model.named_modules() if n.endswith(".nl")) == cfg.num_nonlocal
    assert model.spec == spec and model.arch == name


def test_paper_placements():
    assert get_config("i3d_nl5_r50")[0].nonlocal_blocks == ((), (1, 3), (1, 3, 5), ())
    assert get_config("c2d_nl10_r50")[0].num_nonlocal == 10
    assert get_config("c2d_nl5_r50")[0].conv1_kernel == (1, 7, 7)
    assert all(k == 1 for stage in get_config("c2d_nl5_r50")[0].temporal_kernels for k in stage)


def test_r50_parameter_count_matches_resnet50():
    # C2D-R50 without NL blocks = torchvision's 2-D ResNet-50 (25.557M params with 1000 classes)
    model = build("c2d_nl0_r50", num_classes=1000)
    assert count_parameters(model) == 25_557_032


def test_overrides_reach_blocks_and_spec():
    model = build("tiny_i3d_nl2", pairwise="concatenation", dims="space", num_frames=8)
    blocks = [m for n, m in model.named_modules() if n.endswith(".nl")]
    assert {b.pairwise for b in blocks} == {"concatenation"} and {b.dims for b in blocks} == {"space"}
    assert model.spec.num_frames == 8


def test_registry_errors():
    with pytest.raises(KeyError, match="unknown model 'i3d_nl7_r50'"):
        build("i3d_nl7_r50")
    with pytest.raises(TypeError, match="unknown override"):
        build("tiny_i3d_nl2", widht=3)
    with pytest.raises(ValueError, match="already registered"):
        register("tiny_i3d_nl2")(lambda: None)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        build("tiny_i3d_nl2")(torch.zeros(1, 16, 64, 64))
