"""The one resolver: zoo names, names with options, checkpoint paths -> LoadedModel; and its errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nlviz import zoo
from nlviz.checkpoints import CheckpointMismatchError, UnknownFormatError
from nlviz.loaded import LoadedModel, as_module
from nlviz.models import PROBE_LABEL, build, families, family_of
from nlviz.resolve import FILE_PREFIX, family_hint, load, variant
from nlviz.weights import save_weights

DEMO = "demo.embedded_gaussian"


def test_a_zoo_name_gives_a_typed_loaded_model_and_nothing_is_patched_onto_the_module():
    lm = load(DEMO)
    assert isinstance(lm, LoadedModel) and lm.name == DEMO and lm.entry is zoo.get(DEMO)
    assert lm.arch == zoo.get(DEMO).arch and lm.family is family_of(lm.arch)
    assert lm.spec == zoo.get(DEMO).spec and lm.labels is not None and len(lm.labels) == 5
    assert [b.name for b in lm.blocks] == ["res3.0.nl", "res4.0.nl"] and lm.default_block == "res3.0.nl"
    assert lm.provenance.source == "demo" and lm.provenance.path.name.endswith(".safetensors")
    assert lm.probe_label is None and not lm.has_probe
    module = as_module(lm)
    assert not module.training and not hasattr(module, "zoo_name") and not hasattr(module, "checkpoint_format")
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(lm(x), module(x))  # a LoadedModel goes where a module did


def test_block_metadata_strides_agree_with_what_the_blocks_see(tmp_path):
    """Every NL family: BlockInfo.stride equals the model input over the query grid of a real capture."""
    from nlviz.capture import record

    for arch, clip in (("tiny_i3d_nl2", (16, 64)), ("i3d_nl5_r50", (8, 64)), ("i3d_inception", (16, 64))):
        kwargs = {"base_channels": 4} if arch == "i3d_nl5_r50" else {}
        if arch == "i3d_inception":
            kwargs = {"base_channels": 8, "stages": ("Mixed_3c", "Mixed_4f", "Mixed_5c")}
        model = build(arch, **kwargs)
        t, s = clip
        _, cap = record(model, torch.randn(1, 3, t, s, s))
        infos = family_of(arch).blocks(model)
        assert [b.name for b in infos] == cap.blocks
        for b in infos:
            grid = cap[b.name].query_shape
            assert b.stride == (t // grid[0], s // grid[1], s // grid[2]), (arch, b.name)


def test_names_with_options_are_canonical_and_checked():
    base = "i3d_inception.kinetics400_probe"
    assert zoo.split_name(f"{base}@tau=0.2,centre=0") == (base, {"tau": 0.2, "centre": False})
    assert zoo.variant_name(f"{base}@tau=0.2,centre=0") == f"{base}@centre=0,tau=0.2"
    assert zoo.variant_name(f"{base}@tau=0.15") == base  # the entry's own value: the plain name
    with pytest.raises(FileNotFoundError, match="has no probe options"):
        load(f"{DEMO}@tau=0.2")
    with pytest.raises(FileNotFoundError, match="tau takes a number"):
        load(f"{base}@tau=warm")
    with pytest.raises(FileNotFoundError, match="expected one of"):
        load(f"{base}@colour=blue")


def test_a_probe_variant_shares_the_base_weights(tmp_path, monkeypatch):
    """variant(): other options around the same tensors, typed like the base (probe label, blocks)."""
    base_model = build("i3d_inception", base_channels=8, stages=("Mixed_4f",))
    entry = zoo.get("i3d_inception.kinetics400_probe")
    base = LoadedModel.of(base_model, name=entry.name, entry=entry)
    other = variant(base, f"{entry.name}@stages=Mixed_3c+Mixed_4f,tau=0.3")
    assert other.name == f"{entry.name}@stages=Mixed_3c+Mixed_4f,tau=0.3" and other.probe_label == PROBE_LABEL
    assert [b.name for b in other.blocks] == ["Mixed_3c.nl", "Mixed_4f.nl"] and other.default_block == "Mixed_4f.nl"
    assert all(b.probe and b.kind == "probe" for b in other.blocks)
    w = dict(base_model.named_parameters())["Conv3d_1a_7x7.conv.weight"]
    assert dict(other.model.named_parameters())["Conv3d_1a_7x7.conv.weight"].data_ptr() == w.data_ptr()
    assert [b.name for b in base.blocks] == ["Mixed_4f.nl"]  # the base is left as it is


def test_a_path_and_a_file_name_load_the_same_model(tmp_path):
    model = build("tiny_i3d_nl2", pairwise="gaussian", num_classes=3)
    path = save_weights(model, tmp_path / "mine.safetensors")
    for name in (path, str(path), f"{FILE_PREFIX}{path}"):
        lm = load(name)
        assert lm.name == f"{FILE_PREFIX}{path.resolve()}" and lm.arch == "tiny_i3d_nl2" and lm.entry is None
        assert lm.provenance.source == "file" and lm.provenance.path == path
        assert lm.build_overrides == {"pairwise": "gaussian", "num_classes": 3}
        assert [b.label for b in lm.blocks] == ["res3.0.nl (Gaussian)", "res4.0.nl (Gaussian)"]


def test_unknown_names_suggest_the_closest_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a zoo name .*did you mean demo\.embedded_gaussian"):
        load("demo.embeded_gaussian")
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        load(f"{FILE_PREFIX}{tmp_path / 'missing.pth'}")
    with pytest.raises(KeyError, match=r"unknown model 'mvit_v2_z'.*did you mean mvit_v2_s"):
        family_of("mvit_v2_z")


def test_a_checkpoint_of_another_family_says_which_family_it_looks_like(tmp_path):
    # DeepMind I3D's tensors (nlviz's names) handed to the loader as a plain torch file: no known
    # format, and the message says what it is
    state = build("i3d_inception", base_channels=8).state_dict()
    path = tmp_path / "i3d.pth"
    torch.save(state, path)
    with pytest.raises(UnknownFormatError, match="looks like a checkpoint of the i3d_inception family"):
        load(path)
    # a ResNet-NL Caffe2-style pickle loaded as a zoo entry of that family keeps its own mismatch report
    assert family_hint(path, expected="i3d_inception") == ""
    blobs = {"blobs": {"conv1_w": np.zeros((64, 3, 1, 7, 7), np.float32)}}
    other = tmp_path / "c2.pkl"
    other.write_bytes(pickle.dumps(blobs))
    assert "resnet_nl" in family_hint(other)


def test_every_family_is_one_registered_module():
    import nlviz.models as models

    names = [f.name for f in families()]
    assert len(names) == len(set(names))
    assert {"resnet_nl", "tiny_i3d", "i3d_inception"} <= set(names)
    for module in models.FAMILY_MODULES:
        assert module.startswith("nlviz.models.")


def test_a_hub_snapshot_keeps_the_clip_its_own_files_give(tmp_path):
    """Where the family fetched the checkpoint's own files (a hub snapshot), their processor settings
    are the preprocessing, not the entry's defaults."""
    pytest.importorskip("transformers")
    from nlviz.models import hf_video as hv

    entry = zoo.get("vivit_base.kinetics400_google")
    torch.manual_seed(4)
    tiny = hv.build("vivit_tiny")
    tiny.hf.save_pretrained(tmp_path / entry.filename)
    processor = {"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.4, 0.4, 0.4],
                 "image_std": [0.2, 0.2, 0.2], "size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32},
                 "do_center_crop": True}
    (tmp_path / entry.filename / "preprocessor_config.json").write_text(__import__("json").dumps(processor))
    lm = load(entry.name, dest_dir=tmp_path)
    own = hv.load_dir(tmp_path / entry.filename).spec
    assert lm.spec == own and (lm.spec.short_side, lm.spec.crop_size) == (40, 32) and lm.spec != entry.spec
    assert lm.spec.mean == pytest.approx((102.0,) * 3)  # 0.4 on 0-1 pixels
