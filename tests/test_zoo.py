"""The model zoo table, its lookups, `load`, and the `nlviz zoo` / `nlviz download` commands."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import urllib.parse
import urllib.request

import pytest
import torch

from nlviz import cli, zoo
from nlviz import download as dl
from nlviz.models import build, family_of, list_models
from nlviz.nonlocal_block import DIMS, PAIRWISE
from nlviz.spec import C2_MEAN, C2_STD, IMAGENET_MEAN, IMAGENET_STD
from nlviz.weights import save_weights

# the test server of test_download: same fixture, same payload
from test_download import PAYLOAD, SHA, Handler, _closed_port, server  # noqa: F401 (pytest fixture)

# the non-local families' entries (the transformer families test their own: tests/test_torchvision_video.py, ...)
ENTRIES = [e for e in zoo.list_entries() if family_of(e.arch).name in ("resnet_nl", "tiny_i3d", "i3d_inception")]
NAMES = [e.name for e in ENTRIES]


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "cache"))


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_entry_is_well_formed(entry):
    assert zoo.validate(entry) == []
    assert entry.source in zoo.SOURCES
    assert entry.arch in list_models()
    assert entry.pairwise is None or entry.pairwise in PAIRWISE
    assert entry.dims in DIMS
    assert entry.license
    if entry.source != "demo":
        parts = urllib.parse.urlsplit(entry.url)
        assert parts.scheme == "https" and parts.netloc
        assert zoo.url_filename_matches(entry)
        assert entry.name.startswith(entry.arch + ".kinetics400_")
        assert entry.num_classes == 400 and entry.spec.labels == "kinetics400"
        assert entry.top1 is not None and 70 < entry.top1 < 80
    if entry.source == "caffe2":
        assert "CC-BY-NC 4.0" in entry.license
        assert entry.url.startswith("https://dl.fbaipublicfiles.com/video-nonlocal/")
        assert entry.spec.mean == C2_MEAN and entry.spec.std == C2_STD
    if entry.source == "mmaction2":
        # OpenMMLab's convention: <config>_<date>-<first 8 hex of sha256>.pth
        stem = entry.filename.removesuffix(".pth")
        assert entry.hash_prefix == stem.rsplit("-", 1)[1] and len(entry.hash_prefix) == 8
        assert entry.spec.mean == IMAGENET_MEAN and entry.spec.std == IMAGENET_STD
    if entry.sha256 is None and entry.source == "mmaction2":
        assert entry.hash_prefix  # something to verify against


RESNET_ENTRIES = [e for e in ENTRIES if e.arch != "i3d_inception"]


@pytest.mark.parametrize("entry", RESNET_ENTRIES, ids=[e.name for e in RESNET_ENTRIES])
def test_build_kwargs_give_a_runnable_graph_with_the_entry_spec(entry):
    """The build arguments are accepted by the registry and give the documented res3 time length."""
    kwargs = entry.build_kwargs()
    kwargs["base_channels"] = 4  # same graph, tiny width
    model = build(entry.arch, **kwargs)
    assert model.spec == entry.spec
    x = torch.randn(1, 3, entry.spec.num_frames, 64, 64)
    with torch.no_grad():
        res3 = model.res3(model.pool2(model.res2(model.stem(x))))
        logits = model(x)  # the whole graph (the demo models' dense head has no res5)
    assert logits.shape == (1, entry.num_classes)
    if entry.source != "demo":
        # every publisher keeps res3 at 4 time steps for short clips, 16 for the long (affine) ones
        assert res3.shape[2] == (16 if "affine" in entry.name else 4)


def test_build_kwargs_of_the_i3d_probe_entry_give_its_probes_and_spec():
    entry = zoo.get("i3d_inception.kinetics400_probe")
    model = build(entry.arch, **entry.build_kwargs(), base_channels=4)
    assert model.spec == entry.spec
    assert list(model.probes) == ["Mixed_3c.nl", "Mixed_4f.nl", "Mixed_5c.nl"]
    with torch.no_grad():
        _, feats = model.forward_features(torch.zeros(1, 3, entry.spec.num_frames, 224, 224), ("Mixed_3c",))
        logits = model(torch.zeros(1, 3, 8, 64, 64))
    assert feats["Mixed_3c"].shape[2:] == (16, 28, 28)  # 32 frames: the probe's largest grid, 12544 queries
    assert logits.shape == (1, entry.num_classes)


def test_known_checkpoints_are_all_there():
    expected = {
        "i3d_nl5_r50.kinetics400_mmaction2_embedded_gaussian": ("afd8f562", 74.73),
        "i3d_nl5_r50.kinetics400_mmaction2_gaussian": ("0c5cbf5a", 73.97),
        "i3d_nl5_r50.kinetics400_mmaction2_dot_product": ("8e1f2148", 74.80),
    }
    for name, (prefix, top1) in expected.items():
        e = zoo.get(name)
        assert (e.hash_prefix, e.top1) == (prefix, top1)
        assert e.url.startswith("https://download.openmmlab.com/mmaction/v1.0/recognition/i3d/")
        assert (e.spec.num_frames, e.spec.stride) == (32, 2)
    caffe2 = {e.filename: e for e in zoo.list_entries("caffe2")}
    for f, clip in {
        "i3d_nonlocal_32x2_IN_pretrain_400k.pkl": (32, 2),
        "i3d_nonlocal_8x8_IN_pretrain_400k.pkl": (8, 8),
        "c2d_nonlocal_32x2_IN_pretrain_400k.pkl": (32, 2),
        "c2d_nonlocal_8x8_IN_pretrain_400k.pkl": (8, 8),
        "i3d_nonlocal_128x1_I3D_pretrain_400k.pkl": (128, 1),
    }.items():
        assert (caffe2[f].spec.num_frames, caffe2[f].spec.stride) == clip
        assert caffe2[f].sha256 is None  # nobody published one: never invented


def test_names_are_unique_and_registration_is_loud():
    assert len(NAMES) == len(set(NAMES))
    with pytest.raises(ValueError, match="already registered"):
        zoo.register(ENTRIES[0])


def test_invalid_entries_are_refused():
    e = ENTRIES[0]
    for bad in (
        {"url": "http://insecure.example/x.pth"},
        {"source": "somewhere"},
        {"pairwise": "cosine"},
        {"sha256": "abc"},
        {"license": ""},
        {"name": "other_arch.tag"},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(e, **bad)


def test_get_suggests_close_names():
    with pytest.raises(KeyError) as err:
        zoo.get("i3d_nl5_r50.kinetics400_mmaction2_embeded_gausian")
    msg = err.value.args[0]
    assert "unknown zoo model" in msg and "did you mean i3d_nl5_r50.kinetics400_mmaction2_embedded_gaussian" in msg
    with pytest.raises(KeyError, match="nlviz zoo"):
        zoo.get("no-such-thing")


def test_list_entries_filters_by_source():
    assert {e.source for e in zoo.list_entries("caffe2")} == {"caffe2"}
    assert len(zoo.list_entries("mmaction2")) == 3
    with pytest.raises(ValueError):
        zoo.list_entries("hub")


# --- cache, fetch and load against the local server ----------------------------------------


def _served_at(entry: zoo.ZooEntry, url: str, **changes) -> zoo.ZooEntry:
    """A copy of ``entry`` fetched from ``url``: the test server speaks plain http, which real
    entries may not (validation wants https), so the url is set after validation."""
    entry = dataclasses.replace(entry, url="https://127.0.0.1/placeholder", **changes)
    object.__setattr__(entry, "url", url)
    return entry


@pytest.fixture
def local_entry(server, monkeypatch):  # noqa: F811 (fixture from test_download)
    """An mmaction2-style entry served by the test server (its file name carries the hash prefix)."""
    filename = f"fixture_20220812-{SHA[:8]}.pth"
    base = zoo.get("i3d_nl5_r50.kinetics400_mmaction2_dot_product")
    entry = _served_at(base, f"{server}/{filename}", filename=filename, hash_prefix=SHA[:8])
    monkeypatch.setitem(zoo._REGISTRY, entry.name, entry)
    Handler.hits.clear()
    return entry


def test_fetch_downloads_once_and_is_cached(local_entry, tmp_path):
    assert not zoo.is_cached(local_entry.name)
    path = zoo.fetch(local_entry.name)
    assert path == tmp_path / "cache" / "checkpoints" / local_entry.filename
    assert path.read_bytes() == PAYLOAD and zoo.is_cached(local_entry.name)
    assert zoo.fetch(local_entry.name) == path
    assert sum(Handler.hits.values()) == 1


def test_load_downloads_then_hands_the_file_to_the_checkpoint_loader(local_entry, monkeypatch):
    seen = {}

    def load_file(path, *, arch=None, spec=None, **hints):
        seen.update(path=path, arch=arch, spec=spec)
        return build("tiny_i3d_nl2")

    monkeypatch.setitem(sys.modules, "nlviz.checkpoints", types.SimpleNamespace(load_file=load_file))
    model = zoo.load(local_entry.name)
    assert seen["path"] == zoo.cached_path(local_entry.name) and seen["path"].read_bytes() == PAYLOAD
    assert seen["arch"] == "i3d_nl5_r50" and seen["spec"] == local_entry.spec
    assert model.spec == local_entry.spec and model.zoo_name == local_entry.name and not model.training


def test_demo_entries_load_from_disk_without_network(tmp_path, monkeypatch):
    model = build("tiny_i3d_nl2", pairwise="dot_product", num_classes=3)
    card = {
        "name": "demo.test_only_dot_product",
        "architecture": "tiny_i3d_nl2",
        "build_overrides": {"num_classes": 3, "pairwise": "dot_product"},
        "pairwise": "dot_product",
        "classes": ["a", "b", "c"],
        "test_accuracy": 0.9,
        "n_test": 10,
    }
    monkeypatch.setattr(zoo, "PROJECT_ROOT", tmp_path)
    path = save_weights(model, tmp_path / "assets" / "models" / "demo_test_only.safetensors")
    entry = zoo.demo_entry(card, path)
    assert entry.source == "demo" and entry.url == "assets/models/demo_test_only.safetensors"
    assert entry.top1 == 90.0 and entry.num_classes == 3 and entry.pairwise == "dot_product"
    monkeypatch.setitem(zoo._REGISTRY, entry.name, entry)

    def no_network(*args, **kwargs):
        raise AssertionError("a demo model touched the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert zoo.is_cached(entry.name) and zoo.cached_path(entry.name) == path
    loaded = zoo.load(entry.name)
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_demo_cards_are_discovered(tmp_path, monkeypatch):
    model = build("tiny_i3d_nl0", num_classes=2)
    monkeypatch.setattr(zoo, "PROJECT_ROOT", tmp_path)
    save_weights(model, tmp_path / "demo_none.safetensors")
    card = {"name": "demo.none", "architecture": "tiny_i3d_nl0", "build_overrides": {"num_classes": 2},
            "pairwise": None, "classes": ["x", "y"], "test_accuracy": 0.5}
    (tmp_path / "demo_none.json").write_text(json.dumps(card))
    (tmp_path / "demo_broken.json").write_text("{not json")
    registry = dict(zoo._REGISTRY)
    registry.pop("demo.none", None)
    monkeypatch.setattr(zoo, "_REGISTRY", registry)
    with pytest.warns(UserWarning, match="demo_broken.json"):
        zoo._scan_demo_models(tmp_path)
    e = zoo.get("demo.none")
    assert e.pairwise is None and e.arch == "tiny_i3d_nl0" and e.spec.labels == "synthetic"


# --- the command line ------------------------------------------------------------------------


def test_cli_download_prints_the_path(local_entry, capsys, tmp_path):
    assert cli.main(["download", local_entry.name, "--dir", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    path = tmp_path / "d" / local_entry.filename
    assert out.strip() == str(path) and path.read_bytes() == PAYLOAD
    assert "100.0%" in err and "licence" in err
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(local_entry.hash_prefix)


def test_cli_download_unknown_name_exits_2(capsys):
    assert cli.main(["download", "i3d_nl5_r50.kinetics400_mmaction2_dot_prodcut"]) == 2
    err = capsys.readouterr().err
    assert "unknown zoo model" in err and "i3d_nl5_r50.kinetics400_mmaction2_dot_product" in err


def test_cli_download_offline_exits_2(local_entry, monkeypatch, capsys):
    offline = _served_at(local_entry, f"http://127.0.0.1:{_closed_port()}/{local_entry.filename}")
    monkeypatch.setitem(zoo._REGISTRY, offline.name, offline)
    assert cli.main(["download", offline.name, "-q"]) == 2
    err = capsys.readouterr().err
    assert "offline" in err and str(zoo.cached_path(offline.name)) in err
    assert not zoo.is_cached(offline.name)


def test_cli_download_hash_mismatch_exits_2(local_entry, monkeypatch, capsys):
    wrong = _served_at(local_entry, local_entry.url, hash_prefix="deadbeef")
    monkeypatch.setitem(zoo._REGISTRY, wrong.name, wrong)
    assert cli.main(["download", wrong.name, "-q"]) == 2
    assert "deadbeef" in capsys.readouterr().err
    assert not zoo.is_cached(wrong.name)
    assert not any(zoo.cached_path(wrong.name).parent.glob("*.part"))


def test_cli_zoo_lists_entries_with_cached_status(local_entry, capsys):
    zoo.fetch(local_entry.name)
    assert cli.main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("NAME")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(NAMES) <= set(rows)
    assert " yes " in rows[local_entry.name]
    assert " yes " not in rows["i3d_nl5_r50.kinetics400_caffe2_8x8"]
    assert "CC-BY-NC 4.0" in rows["i3d_nl5_r50.kinetics400_caffe2_8x8"]
    assert cli.main(["zoo", "--source", "caffe2", "-v"]) == 0
    out = capsys.readouterr().out
    assert "https://dl.fbaipublicfiles.com/video-nonlocal/" in out and "mmaction2" not in out


def test_download_module_is_stdlib_only():
    """No new dependency: nlviz.download imports nothing outside the standard library."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(dl))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
    }
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("source", zoo.SOURCES)
def test_cli_zoo_takes_every_source(source, capsys):
    """`nlviz zoo --source` lists its choices without importing the zoo: they must stay the zoo's."""
    assert cli.main(["zoo", "--source", source]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert rows == zoo.names(source)
