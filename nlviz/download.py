"""Download checkpoint files into a local cache, safely: atomic, verified, with clear errors.

    path = download("https://download.openmmlab.com/.../i3d_..._20220812-afd8f562.pth",
                    hash_prefix="afd8f562", progress=text_progress())

Guarantees, in the spirit of ``torch.hub.download_url_to_file`` (which it does not use, to keep
the error messages ours):

- the file is streamed into a temporary ``.<name>.<random>.part`` file in the destination
  directory and only ``os.replace``-d onto its final name once complete and verified, so a
  final name never holds half a file; the temporary file is removed on every failure,
  KeyboardInterrupt included;
- the SHA-256 is computed while streaming and checked against the full hash and/or a hash
  prefix (the OpenMMLab / torch.hub convention: ``name-<first 8+ hex of sha256>.pth``);
- every failure is a :class:`DownloadError` subclass whose message says what to do:
  :class:`OfflineError` (DNS, connection refused, unreachable network, connect timeout),
  :class:`HTTPStatusError` (404 and friends), :class:`IncompleteDownloadError` (the server
  stopped before Content-Length bytes, or the connection was reset / stalled),
  :class:`ChecksumError` (wrong SHA-256).

Only ``http(s)://`` URLs are fetched; a local path (or ``file://`` URL) is verified and
returned as it is, so a file downloaded elsewhere can be used without any network.
The cache directory is ``$NLVIZ_CACHE/checkpoints``, else ``$XDG_CACHE_HOME/nlviz/checkpoints``,
else ``~/.cache/nlviz/checkpoints``. Standard library only (urllib, hashlib).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import secrets
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

Progress = Callable[[int, "int | None"], None]  # (bytes done, total bytes or None when unknown)

CHUNK_SIZE = 1 << 16  # bytes read per step; also the progress granularity
USER_AGENT = "nlviz-download (python urllib)"
# torch.hub's convention: the part of the file name after the last '-' and before the first '.'
# after it is a prefix of the file's sha256 (OpenMMLab: 8 hex digits).
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^-]*$")


class DownloadError(RuntimeError):
    """A download that did not produce a verified file. Nothing is left under the final name."""


class OfflineError(DownloadError):
    """The host could not be reached at all (no network, DNS failure, connection refused)."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error status (e.g. 404)."""

    def __init__(self, message: str, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class IncompleteDownloadError(DownloadError):
    """The transfer stopped before the whole file arrived (reset, stall, short body)."""


class ChecksumError(DownloadError):
    """The file's SHA-256 is not the expected one."""


# --- where files go ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """The checkpoint cache directory (not created here).

    ``$NLVIZ_CACHE/checkpoints`` when NLVIZ_CACHE is set, else
    ``$XDG_CACHE_HOME/nlviz/checkpoints``, else ``~/.cache/nlviz/checkpoints``.
    """
    root = os.environ.get("NLVIZ_CACHE")
    if root:
        return Path(root).expanduser() / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nlviz" / "checkpoints"


def filename_from_url(url: str) -> str:
    """The last path component of ``url``, percent-decoded ('' when the URL ends with '/')."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name


def filename_hash_prefix(filename: str) -> str | None:
    """The sha256 prefix embedded in a file name (``x_20220812-afd8f562.pth`` -> ``afd8f562``), or None."""
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def is_local(url: str) -> bool:
    """True for ``file://`` URLs and plain paths (anything without an http(s) scheme)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")  # C:\... on Windows


def local_path(url: str) -> Path:
    """The path a local URL (plain path or ``file://``) names."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "file":
        return Path(urllib.request.url2pathname(parts.path)).expanduser()
    return Path(url).expanduser()


# --- hashing ----------------------------------------------------------------------------------


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _check_hash_args(sha256: str | None, hash_prefix: str | None) -> tuple[str | None, str | None]:
    sha256 = sha256.lower() if sha256 else None
    hash_prefix = hash_prefix.lower() if hash_prefix else None
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if hash_prefix is not None and not re.fullmatch(r"[0-9a-f]{1,64}", hash_prefix):
        raise ValueError(f"hash_prefix must be hex digits, got {hash_prefix!r}")
    if sha256 and hash_prefix and not sha256.startswith(hash_prefix):
        raise ValueError(f"hash_prefix {hash_prefix} is not a prefix of sha256 {sha256}")
    return sha256, hash_prefix


def _hash_problem(digest: str, sha256: str | None, hash_prefix: str | None) -> str | None:
    """None when ``digest`` satisfies the expectations, else a description of the mismatch."""
    if sha256 is not None and digest != sha256:
        return f"its sha256 is {digest}, expected {sha256}"
    if hash_prefix is not None and not digest.startswith(hash_prefix):
        return f"its sha256 is {digest}, expected one starting with {hash_prefix}"
    return None


def verify(path: str | Path, *, sha256: str | None = None, hash_prefix: str | None = None) -> Path:
    """Check a local file's SHA-256; ChecksumError on mismatch (the file is left alone)."""
    sha256, hash_prefix = _check_hash_args(sha256, hash_prefix)
    path = Path(path)
    if sha256 is None and hash_prefix is None:
        return path
    problem = _hash_problem(sha256_file(path), sha256, hash_prefix)
    if problem:
        raise ChecksumError(f"{path} does not match the expected checksum: {problem}")
    return path


# --- progress ---------------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def text_progress(label: str = "", stream: TextIO | None = None, min_interval: float = 0.1) -> Progress:
    """A progress callback that draws a one-line bar on ``stream`` (stderr by default).

    On a terminal the line is redrawn at most every ``min_interval`` seconds; elsewhere (logs,
    pipes) a line is printed at every 10 %. A newline ends the bar when the total is reached.
    """
    out = stream if stream is not None else sys.stderr
    tty = hasattr(out, "isatty") and out.isatty()
    state = {"last": 0.0, "decile": -1, "start": time.monotonic(), "done": False}
    prefix = f"{label} " if label else ""

    def callback(done: int, total: int | None) -> None:
        if state["done"]:
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        rate = done / max(now - state["start"], 1e-6)
        if total:
            frac = min(done / total, 1.0)
            width = 28
            filled = int(frac * width)
            bar = "#" * filled + "-" * (width - filled)
            line = f"{prefix}[{bar}] {frac * 100:5.1f}%  {_mb(done)} / {_mb(total)}  {rate / 1e6:.1f} MB/s"
        else:
            line = f"{prefix}{_mb(done)}  {rate / 1e6:.1f} MB/s"
        if tty:
            if finished or now - state["last"] >= min_interval:
                out.write("\r" + line + ("\n" if finished else ""))
                out.flush()
                state["last"] = now
        else:
            decile = int(done * 10 / total) if total else int(done // 50_000_000)  # no total: every 50 MB
            if finished or decile > state["decile"]:
                out.write(line + "\n")
                out.flush()
                state["decile"] = decile
        state["done"] = finished

    return callback


# --- download ---------------------------------------------------------------------------------


def _unreachable(reason: object) -> bool:
    """Whether a URLError reason means the host could not be reached at all."""
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError, TimeoutError, socket.timeout)):
        return True
    if isinstance(reason, OSError) and reason.errno in (
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ECONNREFUSED,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.ETIMEDOUT,
    ):
        return True
    return isinstance(reason, ConnectionError) and not isinstance(reason, ConnectionResetError)


def _open(url: str, dest: Path, timeout: float) -> http.client.HTTPResponse:
    """urlopen with our error messages."""
    host = urllib.parse.urlsplit(url).hostname or url
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked by the caller)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 404:
            msg = f"HTTP 404 Not Found: {url} is not (or no longer) there; check the address or the publisher's page"
        else:
            msg = f"HTTP {e.code} {e.reason}: the server refused {url}"
            if e.code >= 500:
                msg += " (a server-side problem: try again later)"
        raise HTTPStatusError(msg, e.code, url) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):
            raise DownloadError(f"TLS error talking to {host} ({e.reason}); nothing was saved") from None
        if _unreachable(e.reason):
            raise OfflineError(
                f"could not reach host {host} ({e.reason}): you seem to be offline; "
                f"download {url} elsewhere and place it at {dest}, or pass a local path"
            ) from None
        raise DownloadError(f"could not download {url}: {e.reason}") from None
    except (TimeoutError, socket.timeout) as e:  # a timeout while reading the status line / headers
        raise OfflineError(
            f"host {host} did not answer within {timeout:g} s ({e}): you may be offline or the server is down; "
            f"download {url} elsewhere and place it at {dest}, or pass a local path"
        ) from None
    except (http.client.HTTPException, ConnectionError) as e:  # e.g. the server closed before answering
        raise DownloadError(f"could not download {url}: the server did not answer properly ({e!r})") from None


def download(
    url: str,
    dest_dir: str | Path | None = None,
    *,
    filename: str | None = None,
    sha256: str | None = None,
    hash_prefix: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30,
) -> Path:
    """Fetch ``url`` into ``dest_dir`` (default :func:`cache_dir`) and return the file's path.

    Args:
        url: an ``http(s)://`` URL, or a local path / ``file://`` URL (verified, returned as is,
            never copied).
        dest_dir: target directory, created if needed.
        filename: name of the file in ``dest_dir`` (default: the URL's last path component).
        sha256: the expected full SHA-256 (hex), or None.
        hash_prefix: the expected start of the SHA-256 (e.g. the 8 hex digits OpenMMLab puts
            in its file names), or None. Both may be given.
        progress: called as ``progress(done_bytes, total_bytes_or_None)`` at the start, after
            every chunk and at the end.
        timeout: seconds for connecting and for each read (a stall longer than this fails).

    A file already at the destination is returned without any network access when it matches
    the expected hash (or when no hash is known); one that does not match raises
    :class:`ChecksumError` and is left for the user to inspect or delete.

    Raises:
        OfflineError, HTTPStatusError, IncompleteDownloadError, ChecksumError, DownloadError.
    """
    sha256, hash_prefix = _check_hash_args(sha256, hash_prefix)
    if is_local(url):
        path = local_path(url)
        if not path.is_file():
            raise DownloadError(f"no such file: {path}")
        return verify(path, sha256=sha256, hash_prefix=hash_prefix)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"unsupported URL scheme {scheme!r} in {url}: only http(s) URLs and local paths")

    name = filename or filename_from_url(url)
    if not name or name in (".", ".."):
        raise DownloadError(f"cannot tell a file name from {url}; pass filename=")
    dest_dir = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    dest = dest_dir / name

    if dest.is_file():
        if sha256 or hash_prefix:
            problem = _hash_problem(sha256_file(dest), sha256, hash_prefix)
            if problem:
                raise ChecksumError(
                    f"{dest} already exists but does not match the expected checksum ({problem}); "
                    "delete it to download it again"
                )
        if progress is not None:
            size = dest.stat().st_size
            progress(size, size)
        return dest

    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(dest_dir, name)
    except OSError as e:
        raise DownloadError(f"cannot write into {dest_dir}: {e}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, dest, progress, timeout)
        problem = _hash_problem(digest, sha256, hash_prefix)
        if problem:
            raise ChecksumError(
                f"the file downloaded from {url} is not the expected one ({problem}); "
                f"it may be corrupt or changed upstream; nothing was saved at {dest}"
            )
        os.replace(tmp, dest)
    except BaseException:  # KeyboardInterrupt and SystemExit too: never leave a partial file
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new ``.<name>.<random>.part`` file, opened for writing with the umask's permissions
    (``tempfile.mkstemp`` would make it 0600, and the cache may be shared)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = directory / f".{name}.{secrets.token_hex(6)}.part"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def _stream(url: str, out, dest: Path, progress: Progress | None, timeout: float) -> str:
    """Copy the body of ``url`` into the open file ``out``; return the hex SHA-256."""
    host = urllib.parse.urlsplit(url).hostname or url
    h = hashlib.sha256()
    done = 0
    with _open(url, dest, timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if progress is not None:
            progress(0, total)
        while True:
            try:
                chunk = resp.read(CHUNK_SIZE)
            except (TimeoutError, socket.timeout):
                raise IncompleteDownloadError(
                    f"the transfer from {host} stalled for {timeout:g} s after {_mb(done)}"
                    f"{f' of {_mb(total)}' if total else ''}; nothing was saved, try again"
                ) from None
            except (http.client.IncompleteRead, ConnectionError, OSError, http.client.HTTPException) as e:
                raise IncompleteDownloadError(
                    f"the connection to {host} broke after {_mb(done)}"
                    f"{f' of {_mb(total)}' if total else ''} ({type(e).__name__}); nothing was saved, try again"
                ) from None
            if not chunk:
                break
            try:
                out.write(chunk)
            except OSError as e:
                raise DownloadError(f"cannot write {dest.parent}: {e}") from None
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if total is not None and done != total:
            raise IncompleteDownloadError(
                f"the server at {host} stopped after {done} of {total} bytes ({url}); nothing was saved, try again"
            )
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as e:
        raise DownloadError(f"cannot write {dest.parent}: {e}") from None
    if progress is not None and total is None:
        progress(done, done)  # the end, now that the size is known
    return h.hexdigest()


__all__ = [
    "CHUNK_SIZE",
    "ChecksumError",
    "DownloadError",
    "HTTPStatusError",
    "IncompleteDownloadError",
    "OfflineError",
    "Progress",
    "cache_dir",
    "download",
    "filename_from_url",
    "filename_hash_prefix",
    "is_local",
    "local_path",
    "sha256_file",
    "text_progress",
    "verify",
]
