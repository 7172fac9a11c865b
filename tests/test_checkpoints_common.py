"""The checkpoint loader shared by every format: safe reading, detection, hints, errors, `nlviz info`.

Security: a checkpoint is data. Pickles that would run code on load (``os.system``, a
``__reduce__`` that writes a file) are refused before anything runs, in the Caffe2 pickle
reader and in torch files alike; the tests check that no marker file appears.
"""

from __future__ import annotations

import inspect
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nlviz.checkpoints as ckpt
from nlviz import zoo
from nlviz.resolve import load as load_model  # the one loader: names and checkpoint files
from nlviz.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    UnknownFormatError,
    UnsafeCheckpointError,
    caffe2,
    load_state,
    read_checkpoint,
    safe_pickle,
)
from nlviz.checkpoints.common import listing, mismatch_report, registry_identity
from nlviz.cli import main as cli_main
from nlviz.models import build

sys.path.insert(0, str(Path(__file__).parent))
from test_checkpoints_caffe2 import c2_blob_shapes, fill, write_pkl  # synthetic Caffe2 files

# --- a Python-2 pickle, written opcode by opcode -------------------------------------------------


def _py2_str(b: bytes) -> bytes:
    """A Python-2 ``str``: SHORT_BINSTRING / BINSTRING (Python 3 reads it as text, latin-1 decoded)."""
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _py2_array(a: np.ndarray) -> bytes:
    """What Python 2's cPickle (protocol 2) writes for a float32 numpy array."""
    a = np.ascontiguousarray(a, dtype="<f4")
    shape = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in a.shape) + b"t"
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"f4") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _py2_str(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85" + _py2_str(b"b")
            + b"\x87R" + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(a.tobytes()) + b"tb")


def py2_pickle(blobs: dict[str, object]) -> bytes:
    """``cPickle.dump({'blobs': blobs}, f, 2)`` as Python 2 writes it (str keys, str array data)."""
    out = bytearray(b"\x80\x02}" + _py2_str(b"blobs") + b"}(")
    for name, value in blobs.items():
        out += _py2_str(name.encode())
        if isinstance(value, np.ndarray):
            out += _py2_array(value)
        elif isinstance(value, int):
            out += b"J" + struct.pack("<i", value)
        else:
            out += b"G" + struct.pack(">d", float(value))
    out += b"us."
    return bytes(out)


def test_a_python2_pickle_of_numpy_blobs_loads():
    blobs = {"conv1_w": np.arange(24, dtype=np.float32).reshape(2, 3, 1, 2, 2), "pred_b": np.array([1.5, -2.0], np.float32),
             "model_iter": 400000, "lr": 0.0001}
    data = py2_pickle(blobs)
    reference = pickle.loads(data, encoding="latin1")  # the documented way to read it, unrestricted
    got = safe_pickle.loads(data)
    for obj in (reference, got):
        assert set(obj["blobs"]) == set(blobs)
        assert obj["blobs"]["conv1_w"].dtype == np.float32
        assert np.array_equal(obj["blobs"]["conv1_w"], blobs["conv1_w"])
        assert np.array_equal(obj["blobs"]["pred_b"], blobs["pred_b"])
        assert obj["blobs"]["model_iter"] == 400000 and obj["blobs"]["lr"] == 0.0001


def test_a_python2_caffe2_checkpoint_file_loads_end_to_end(tmp_path):
    blobs = fill(c2_blob_shapes("i3d", 50, width=2), seed=1)
    blobs["lr"] = 0.0001  # a float, as convert_models scripts write it
    path = tmp_path / "i3d_nonlocal_8x8_IN_pretrain_400k.pkl"
    path.write_bytes(py2_pickle(blobs))
    model = load_model(path)
    assert torch.equal(model.stem.conv.weight, torch.from_numpy(blobs["conv1_w"]))
    assert model.checkpoint_format == "caffe2"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_pickle_protocol_of_numpy_blobs_loads(protocol):
    """Protocol 0 (cPickle's default, used by the convert_models scripts) up to 5 (numpy's _frombuffer)."""
    blobs = {"a": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), "s": np.float32(0.5), "i": 3}
    got = safe_pickle.loads(pickle.dumps({"blobs": blobs}, protocol=protocol))["blobs"]
    assert np.array_equal(got["a"], blobs["a"]) and got["s"] == np.float32(0.5) and got["i"] == 3


# --- pickles that would run code ---------------------------------------------------------------


class _System:
    """Unpickling runs os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _WriteFile:
    """Unpickling runs builtins.exec, which writes a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('pwned')",))


def payloads(marker: Path) -> dict[str, bytes]:
    return {
        "os.system": pickle.dumps({"blobs": {"conv1_w": _System(f"touch {marker}")}}, protocol=2),
        "exec": pickle.dumps({"blobs": {"x": _WriteFile(marker)}}, protocol=2),
        "os.system, protocol 0": pickle.dumps(_System(f"touch {marker}"), protocol=0),
        "getattr chain": b"\x80\x02cbuiltins\ngetattr\ncos\nsystem\nU\x06systemq\x00\x86R.",
    }


@pytest.mark.parametrize("kind", ["os.system", "exec", "os.system, protocol 0", "getattr chain"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, kind):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(payloads(marker)[kind])
    with pytest.raises(UnsafeCheckpointError) as e:
        load_model(path)
    msg = str(e.value)
    assert "refused to load" in msg and str(path) in msg and "nothing was executed" in msg
    refused = {"os.system": "posix.system", "exec": "__builtin__.exec",  # protocol 2 writes Python 2 names
               "os.system, protocol 0": "posix.system", "getattr chain": "builtins.getattr"}[kind]
    if os.name != "posix":
        refused = refused.replace("posix", "nt")
    assert refused in msg
    assert not marker.exists()


def test_codecs_encode_is_latin1_only():
    evil = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafeCheckpointError, match="latin-1"):
        safe_pickle.loads(evil)


def test_a_torch_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _System(f"touch {marker}")}, path)
    with pytest.raises(UnsafeCheckpointError, match="weights_only") as e:
        load_model(path)
    assert "system" in str(e.value)
    assert not marker.exists()
    legacy = tmp_path / "evil_legacy.pth"
    torch.save({"x": _System(f"touch {marker}")}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint(legacy)
    assert not marker.exists()


def test_torch_files_new_and_legacy_are_read_as_data(tmp_path):
    obj = {"model_state": {"w": torch.arange(3.0)}, "epoch": 3, "cfg": "A: 1\n"}
    for name, kw in (("new.pyth", {}), ("legacy.pyth", {"_use_new_zipfile_serialization": False})):
        torch.save(obj, tmp_path / name, **kw)
        got = read_checkpoint(tmp_path / name)
        assert torch.equal(got["model_state"]["w"], obj["model_state"]["w"]) and got["cfg"] == "A: 1\n"


def test_numpy_values_in_torch_metadata_are_data(tmp_path):
    """Training frameworks leave numpy scalars/arrays in a checkpoint's meta; numpy 1 and 2 module names."""
    obj = {"meta": {"best": np.float64(0.7), "seed": np.int64(3), "arr": np.arange(3)}, "state_dict": {"w": torch.ones(2)}}
    torch.save(obj, tmp_path / "new.pth")
    torch.save(obj, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pth").read_bytes()
    assert b"numpy._core.multiarray" in data  # numpy 2 wrote it; numpy 1 wrote numpy.core.multiarray
    (tmp_path / "numpy1.pth").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    for name in ("new.pth", "legacy.pth", "numpy1.pth"):
        got = read_checkpoint(tmp_path / name)
        assert got["meta"]["best"] == 0.7 and np.array_equal(got["meta"]["arr"], np.arange(3)), name


def test_files_that_are_no_checkpoint(tmp_path):
    (tmp_path / "noise.bin").write_bytes(os.urandom(64) + b"\x00" * 8)
    with pytest.raises(UnknownFormatError, match="neither a torch checkpoint nor a pickle"):
        load_model(tmp_path / "noise.bin")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "empty.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UnknownFormatError, match=r"known format \(caffe2, pyslowfast, mmaction2\).*a list"):
        load_model(tmp_path / "list.pkl")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"weights": {"a": np.zeros(1)}}))
    with pytest.raises(UnknownFormatError, match="keys weights"):
        load_model(tmp_path / "dict.pkl")
    with pytest.raises(FileNotFoundError, match="not a zoo name"):
        load_model(tmp_path / "missing.pkl")


# --- the format registry -----------------------------------------------------------------------


def test_format_modules_follow_the_interface():
    assert ckpt.FORMAT_MODULES[:2] == ["nlviz.checkpoints.caffe2", "nlviz.checkpoints.pyslowfast"]
    assert "nlviz.checkpoints.mmaction2" in ckpt.FORMAT_MODULES
    for mod in ckpt.formats():
        assert isinstance(mod.NAME, str) and callable(mod.detect) and callable(mod.convert)
        for junk in (None, {}, [], "x", {"a": 1}):
            assert mod.detect(junk) is False, (mod.NAME, junk)


def test_one_object_one_format():
    w = np.zeros((4, 3, 1, 7, 7), np.float32)
    t = torch.zeros(4, 3, 1, 7, 7)
    cases = {
        "caffe2": {"blobs": {"conv1_w": w}},
        "pyslowfast": {"model_state": {"s1.pathway0_stem.conv.weight": t}},
        "mmaction2": {"state_dict": {"backbone.conv1.conv.weight": t, "cls_head.fc_cls.weight": torch.zeros(2, 4)}},
    }
    for name, obj in cases.items():
        assert [m.NAME for m in ckpt.formats() if m.detect(obj)] == [name]
        assert ckpt.detect_format(obj).NAME == name


def test_zoo_passes_what_load_model_takes():
    params = inspect.signature(load_model).parameters
    assert {"arch", "overrides", "spec", "entry"} <= set(params)


def test_a_zoo_entry_checks_the_file_against_its_architecture(tmp_path):
    entry = zoo.get("i3d_nl5_r50.kinetics400_caffe2_8x8")
    path = write_pkl(tmp_path / entry.filename, fill(c2_blob_shapes("i3d", 50, width=4), seed=2))
    with pytest.raises(CheckpointMismatchError, match=r"base_channels: file 4 vs expected 64"):
        load_model(path, entry=entry)
    model = load_model(path, arch=entry.arch, overrides={**entry.build_kwargs(), "base_channels": 4}, spec=entry.spec)
    assert model.spec == entry.spec and model.arch == "i3d_nl5_r50"


def test_structural_overrides_must_agree_and_the_rest_apply():
    blobs = {"blobs": fill(c2_blob_shapes("i3d", 50, width=2), seed=3)}
    with pytest.raises(CheckpointMismatchError, match=r"num_classes: file 400 vs expected 10"):
        load_state(blobs, filename="x_8x8.pkl", overrides={"num_classes": 10})
    with pytest.raises(CheckpointMismatchError, match=r"norm: file True vs expected False"):
        load_state(blobs, filename="x_8x8.pkl", overrides={"norm": False})
    with pytest.raises(CheckpointError, match="unknown build argument"):
        load_state(blobs, filename="x_8x8.pkl", overrides={"colour": "blue"})
    model = load_state(blobs, filename="x_8x8.pkl", overrides={"pool1_padding": (0, 1, 1), "labels": None,
                                                               "dims": "space"})
    assert model.cfg.pool1_padding == (0, 1, 1) and model.spec.labels is None
    assert model.res3[1].nl.dims == "space"


def test_converted_models_round_trip_through_our_weight_files(tmp_path):
    from nlviz.weights import load_weights, save_weights

    blobs = {"blobs": fill(c2_blob_shapes("i3d", 50, width=2), seed=4)}
    model = load_state(blobs, filename="i3d_nonlocal_32x2_IN_pretrain_400k.pkl")
    path = save_weights(model, tmp_path / "m.safetensors")
    again = load_model(path)  # safetensors: handed to nlviz.weights
    x = torch.randn(1, 3, 32, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert tuple(again.cfg.conv1_stride) == (2, 2, 2) and again.spec.num_frames == 32
    assert load_weights(path).cfg.bn_eps == caffe2.BN_EPS


def test_registry_identity_names_the_closest_architecture():
    arch, ov = registry_identity({"blocks": (3, 4, 23, 3), "conv1_kernel": (1, 7, 7),
                                  "temporal_kernels": tuple((1,) * n for n in (3, 4, 23, 3)),
                                  "nonlocal_blocks": ((), (1, 3), (6, 13, 20), ()), "num_classes": 400,
                                  "pairwise": "dot_product", "num_frames": 8})
    assert arch == "c2d_nl5_r101"
    assert ov == {"nonlocal_blocks": ((), (1, 3), (6, 13, 20), ()), "num_classes": 400, "pairwise": "dot_product",
                  "num_frames": 8}
    model = build(arch, **ov)
    assert model.cfg.nonlocal_blocks[2] == (6, 13, 20)


def test_listing_and_report():
    assert listing(["a", "b"]) == "a, b"
    assert listing([str(i) for i in range(12)]) == "0, 1, 2, 3, 4, ... (12 in all)"
    assert mismatch_report([], [], []) == ""
    assert mismatch_report(["m"], ["u1", "u2"], ["s"]) == "1 missing: m; 2 unexpected: u1, u2; 1 shape mismatch: s"


# --- nlviz info ---------------------------------------------------------------------------------


def test_info_describes_a_checkpoint(tmp_path, capsys):
    path = write_pkl(tmp_path / "i3d_nonlocal_8x8_IN_pretrain_400k.pkl", fill(c2_blob_shapes("i3d", 50, width=4)))
    assert cli_main(["info", path, "--frames", "8", "--size", "112"]) == 0
    out = capsys.readouterr().out
    assert "format:       caffe2" in out and "architecture: i3d_nl5_r50" in out
    assert "base_channels = 4" in out and "bn_eps = 1.0000001e-05" in out
    assert "pool1 1x3x3 pad 0x0x0" in out and "temporal kernels 3333131313131131" in out
    assert "clip:         8 frames, one every 8; short side 256, crop 224; RGB" in out
    params = sum(p.numel() for p in load_model(path).parameters())
    assert f"parameters:   {params:,}" in out
    assert "non-local blocks: 5 (grids for a 8x112x112 clip" in out
    # 112 px: conv1 56, pool1 (no padding) 27, res3 14 -> keys 7; res4 7 -> keys 3; pool2 halves 8 frames
    assert "res3.1.nl  embedded_gaussian  spacetime" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("res3.1.nl"))
    assert line.split()[-2:] == ["4x14x14", "4x7x7"]
    line = next(x for x in out.splitlines() if x.strip().startswith("res4.5.nl"))
    assert line.split()[-2:] == ["4x7x7", "4x3x3"]


def test_info_on_an_affine_model_and_defaults(tmp_path, capsys):
    blobs = fill(c2_blob_shapes("i3d", 50, width=2, affine=True, nl_bn=False))
    path = write_pkl(tmp_path / "i3d_nonlocal_32x4_I3D_pretrain_400k.pkl", blobs)
    assert cli_main(["info", path, "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "32 frames, one every 4" in out and "grids for a 32x64x64 clip" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("res3.1.nl"))
    assert "groups of 4t" in line and line.split()[-2:] == ["16x8x8", "16x4x4"]


def test_info_errors(tmp_path, capsys):
    assert cli_main(["info", str(tmp_path / "nope.pkl")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_System("true"), protocol=2))
    assert cli_main(["info", str(tmp_path / "evil.pkl")]) == 2
    assert "refused to load" in capsys.readouterr().err
    path = write_pkl(tmp_path / "my_model.pkl", fill(c2_blob_shapes("i3d", 50, width=2)))
    assert cli_main(["info", path, "--size", "64"]) == 0
    assert "note:         Caffe2 checkpoint my_model.pkl: the file does not say its clip" in capsys.readouterr().out


def test_info_does_not_download(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path))
    assert cli_main(["info", "i3d_nl5_r50.kinetics400_caffe2_8x8"]) == 2
    assert "not downloaded yet: run `nlviz download" in capsys.readouterr().err

