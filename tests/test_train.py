"""The trainer learns (a few steps lower the loss) and writes loadable demo files; its targets are right."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from nlviz import synthetic
from nlviz.capture import attention_blocks
from nlviz.models import build
from nlviz.train import IdentityReadout, TrainConfig, dense_targets, init_nonlocal, make_data, save_demo, train
from nlviz.weights import load_weights


def test_short_training_lowers_the_loss(tmp_path):
    cfg = TrainConfig(pairwise="embedded_gaussian", n_train=16, n_test=8, steps=12, batch_size=8, warmup=2)
    data = make_data(cfg)
    x = synthetic.to_tensor(data[0])
    target = dense_targets(data[1], cfg.synthetic, cfg.supervise_from)

    def loss_of(model) -> float:
        with torch.no_grad():
            return F.cross_entropy(model.dense_logits(x), target, ignore_index=-100).item()

    torch.manual_seed(cfg.seed)
    before_model = build(cfg.model_arch, **cfg.build_overrides())
    init_nonlocal(before_model, cfg)
    before = loss_of(before_model.eval())
    result = train(cfg, data=data)
    after = loss_of(result.model)
    assert after < before - 0.05, (before, after)
    weights, card_path = save_demo(result, tmp_path, "nlviz train --test")
    card = json.loads(card_path.read_text())
    assert card["name"] == "demo.embedded_gaussian" and card["pairwise"] == "embedded_gaussian"
    assert card["classes"] == list(synthetic.TRACK_CLASSES) and card["chance_accuracy"] == 0.25
    assert card["check"]["clips"] == 64 and 0 <= card["check"]["accuracy"] <= 1
    assert card["steps_done"] == 12 and card["seconds"] > 0 and "CPU" in card["machine"]
    loaded = load_weights(weights)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x[:2]), result.model(x[:2]))
        torch.testing.assert_close(loaded.dense_logits(x[:2]), result.model.dense_logits(x[:2]))


def test_baseline_has_no_nonlocal_block():
    cfg = TrainConfig(pairwise="none")
    assert cfg.model_arch == "tiny_i3d_nl0_dense" and "pairwise" not in cfg.build_overrides()


def test_targets_are_the_cells_of_the_labelled_frames():
    cfg = synthetic.TrackConfig()
    clip = synthetic.make_track_clip(5)
    target = dense_targets(clip.classes[None], cfg)  # (1, 8, 16, 16): 2 frames x 4 x 4 pixels per cell
    assert target.shape == (1, cfg.frames // 2, cfg.size // 4, cfg.size // 4)
    first = cfg.label_from // 2
    assert (target[:, :first] == -100).all() and (target[:, first:] >= 0).all()
    # a cell fully inside one object in both of its frames carries that object's shade
    for t in range(first, cfg.frames // 2):
        block = clip.classes[2 * t : 2 * t + 2].reshape(2, 16, 4, 16, 4).transpose(1, 3, 0, 2, 4).reshape(16, 16, -1)
        uniform = (block == block[..., :1]).all(axis=-1)
        np.testing.assert_array_equal(target[0, t].numpy()[uniform], block[..., 0][uniform])
    everything = dense_targets(clip.classes[None], cfg, first_frame=0)
    assert (everything >= 0).all()


def test_no_convolution_reaches_the_colour_frames_from_the_labelled_cells():
    """Why the baseline cannot solve the task: without attention, the labelled cells' logits do not
    depend on the frames that show the shades at all (exactly zero gradient), and from those frames on
    the pixels do not depend on the shades (tests/test_synthetic.py), so any network without
    attention labels them at chance. The NL twin's blocks, once trained, do reach them."""
    cfg = synthetic.TrackConfig()
    torch.manual_seed(0)
    model = build("tiny_i3d_nl0_dense", num_classes=len(synthetic.TRACK_CLASSES)).eval()
    x = torch.randn(2, 3, cfg.frames, cfg.size, cfg.size, requires_grad=True)
    logits = model.dense_logits(x)
    first = -(-cfg.label_from // 2)
    logits[:, :, first:].square().sum().backward()
    reach = x.grad.abs().sum(dim=(0, 1, 3, 4))  # per input frame
    assert (reach[: cfg.colour_frames] == 0).all() and (reach[cfg.label_from:] > 0).all()
    # with a non-identity NL block (gamma != 0) the same cells depend on the first frames
    nl = build("tiny_i3d_nl2_dense", num_classes=len(synthetic.TRACK_CLASSES), pairwise="embedded_gaussian")
    init_nonlocal(nl, TrainConfig())
    x.grad = None
    nl.eval().dense_logits(x)[:, :, first:].square().sum().backward()
    assert (x.grad.abs().sum(dim=(0, 1, 3, 4))[: cfg.colour_frames] > 0).all()


def test_identity_readout_reads_what_the_nl_blocks_take_and_leaves_no_hook():
    """The auxiliary identity loss (TrainConfig.identity_weight) reads the input of each NL block
    (the output of res3.0 / res4.0, the same place in the baseline), trains through the backbone,
    and is gone from the trained model."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 64, 64)
    _, _, _, ids = synthetic.make_track_dataset(2, 0, identities=True)
    for arch in ("tiny_i3d_nl2_dense", "tiny_i3d_nl0_dense"):
        model = build(arch, num_classes=5)
        seen = {}
        for name in ("res3.0", "res4.0"):
            block = model.get_submodule(name)
            (block.nl or block).register_forward_hook(lambda m, a, o, name=name, nl=block.nl: seen.update(
                {name: a[0] if nl is not None else o}))
        readout = IdentityReadout(model, background_weight=0.25)
        model.dense_logits(x)
        assert set(readout.features) == set(seen)
        for name, feat in readout.features.items():
            assert feat is seen[name] and feat.shape[1] == readout.heads[name.replace(".", "_")].in_channels
        loss = readout.loss(ids)
        assert torch.isfinite(loss) and loss > 0 and not readout.features
        loss.backward()
        assert model.stem.conv.weight.grad.abs().sum() > 0
    cfg = TrainConfig(pairwise="dot_product", n_train=8, n_test=4, steps=2, batch_size=4, warmup=1, identity_weight=1.0)
    result = train(cfg)
    hooks = [m for m in result.model.modules() if m._forward_hooks or m._forward_pre_hooks]
    assert not hooks and not any("heads" in k for k in result.model.state_dict())


def test_tied_init_starts_the_bilinear_kernels_as_a_similarity():
    """tied_init: phi = theta where the kernel is theta . phi, so it starts as a Gram matrix of the
    projected features (a similarity, as the Gaussian's x_i . x_j); concatenation keeps independent
    projections, and so does everything with tied_init off."""
    torch.manual_seed(0)
    for pairwise in ("embedded_gaussian", "dot_product", "concatenation"):
        model = build("tiny_i3d_nl2_dense", num_classes=5, pairwise=pairwise)
        init_nonlocal(model, TrainConfig(pairwise=pairwise, tied_init=True))
        for block in attention_blocks(model).values():
            same = torch.equal(block.phi.conv.weight, block.theta.conv.weight)
            assert same == (pairwise != "concatenation"), pairwise
            if same:
                x = torch.randn(20, block.theta.conv.in_channels)
                w = block.theta.conv.weight.flatten(1)
                k = (x @ w.T) @ (x @ block.phi.conv.weight.flatten(1).T).T  # theta(x_i) . phi(x_j), biases aside
                torch.testing.assert_close(k, k.T)  # a Gram matrix: symmetric, positive semi-definite
                assert torch.linalg.eigvalsh(k.double()).min() > -1e-4
        untied = build("tiny_i3d_nl2_dense", num_classes=5, pairwise=pairwise)
        init_nonlocal(untied, TrainConfig(pairwise=pairwise, tied_init=False))
        assert not any(torch.equal(b.phi.conv.weight, b.theta.conv.weight) for b in attention_blocks(untied).values())
