"""nlviz.download against a real HTTP server on 127.0.0.1: success, bad hash, dying server, 404, offline."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import random
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from nlviz import download as dl

PAYLOAD = random.Random(0).randbytes(300_000)  # a few hundred KB: several chunks of CHUNK_SIZE
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /file.bin (whole), /nolength.bin (no Content-Length), /truncated.bin (Content-Length N,
    N/2 bytes then close), /reset.bin (half, then a TCP reset), /stall.bin (half, then silence), else 404."""

    hits: Counter = Counter()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        Handler.hits[path] += 1
        name = path.rsplit("/", 1)[-1]
        if name.startswith("file") or name.startswith("fixture"):
            self._head(len(PAYLOAD))
            self.wfile.write(PAYLOAD)
        elif name == "nolength.bin":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif name == "truncated.bin":
            self._head(len(PAYLOAD))
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif name == "reset.bin":
            self._head(len(PAYLOAD))
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif name == "stall.bin":
            self._head(len(PAYLOAD))
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            time.sleep(1.5)
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def _head(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_and_own_cache(monkeypatch, tmp_path):
    """Traffic goes straight to 127.0.0.1, and nothing lands in the user's real cache."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "cache"))
    Handler.hits.clear()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_success_file_in_place_verified_with_progress(server, tmp_path):
    calls = []
    path = dl.download(f"{server}/file.bin", tmp_path, sha256=SHA, progress=lambda d, t: calls.append((d, t)))
    assert path == tmp_path / "file.bin"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # no temp file left
    done = [d for d, _ in calls]
    assert calls[0] == (0, len(PAYLOAD))
    assert len(calls) > 3 and done == sorted(done) and done[-1] == len(PAYLOAD)
    assert all(t == len(PAYLOAD) for _, t in calls)
    if os.name == "posix":  # the umask's permissions, not mkstemp's 0600: the cache may be shared
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unknown_length_reports_none_then_the_final_size(server, tmp_path):
    calls = []
    path = dl.download(f"{server}/nolength.bin", tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert path.read_bytes() == PAYLOAD
    assert calls[0] == (0, None) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_wrong_hash_leaves_nothing(server, tmp_path):
    with pytest.raises(dl.ChecksumError, match="expected 0000"):
        dl.download(f"{server}/file.bin", tmp_path, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_hash_prefix_convention(server, tmp_path):
    name = f"fixture_20220812-{SHA[:8]}.pth"
    assert dl.filename_hash_prefix(name) == SHA[:8]
    assert dl.filename_hash_prefix("i3d_nonlocal_8x8_IN_pretrain_400k.pkl") is None
    path = dl.download(f"{server}/{name}", tmp_path, hash_prefix=dl.filename_hash_prefix(name))
    assert path.name == name and path.read_bytes() == PAYLOAD
    bad = "fixture_20220812-deadbeef.pth"
    with pytest.raises(dl.ChecksumError, match="starting with deadbeef"):
        dl.download(f"{server}/{bad}", tmp_path, hash_prefix="deadbeef")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_server_dying_mid_file_leaves_nothing(server, tmp_path):
    with pytest.raises(dl.IncompleteDownloadError, match=f"stopped after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes"):
        dl.download(f"{server}/truncated.bin", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_connection_reset_mid_file_leaves_nothing(server, tmp_path):
    with pytest.raises(dl.IncompleteDownloadError, match="try again"):
        dl.download(f"{server}/reset.bin", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out_and_leaves_nothing(server, tmp_path):
    with pytest.raises(dl.IncompleteDownloadError, match="stalled"):
        dl.download(f"{server}/stall.bin", tmp_path, timeout=0.3)
    assert list(tmp_path.iterdir()) == []


def test_404_names_the_url(server, tmp_path):
    url = f"{server}/missing.pth"
    with pytest.raises(dl.HTTPStatusError, match="404") as err:
        dl.download(url, tmp_path)
    assert err.value.status == 404 and url in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_reads_as_offline(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/model.pth"
    with pytest.raises(dl.OfflineError) as err:
        dl.download(url, tmp_path)
    msg = str(err.value)
    assert "could not reach host 127.0.0.1" in msg and "offline" in msg
    assert str(tmp_path / "model.pth") in msg  # where to put a file fetched elsewhere
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_removes_the_temp_file(server, tmp_path):
    def interrupt(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.download(f"{server}/file.bin", tmp_path, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_nlviz_cache_overrides_the_default_directory(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "elsewhere"))
    assert dl.cache_dir() == tmp_path / "elsewhere" / "checkpoints"
    path = dl.download(f"{server}/file.bin", sha256=SHA)
    assert path == tmp_path / "elsewhere" / "checkpoints" / "file.bin"
    monkeypatch.delenv("NLVIZ_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.cache_dir() == tmp_path / "xdg" / "nlviz" / "checkpoints"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dl.cache_dir() == Path.home() / ".cache" / "nlviz" / "checkpoints"


def test_a_verified_file_is_not_downloaded_again(server, tmp_path):
    url = f"{server}/file.bin"
    first = dl.download(url, tmp_path, sha256=SHA)
    mtime = first.stat().st_mtime_ns
    second = dl.download(url, tmp_path, sha256=SHA)
    assert second == first and second.stat().st_mtime_ns == mtime
    assert Handler.hits["/file.bin"] == 1


def test_an_existing_file_with_the_wrong_hash_is_reported_not_replaced(server, tmp_path):
    (tmp_path / "file.bin").write_bytes(b"something else")
    with pytest.raises(dl.ChecksumError, match="delete it"):
        dl.download(f"{server}/file.bin", tmp_path, sha256=SHA)
    assert (tmp_path / "file.bin").read_bytes() == b"something else"
    assert Handler.hits["/file.bin"] == 0


def test_local_paths_are_verified_not_fetched(tmp_path):
    f = tmp_path / "weights.pth"
    f.write_bytes(PAYLOAD)
    assert dl.download(str(f), sha256=SHA) == f
    assert dl.download(f.as_uri(), hash_prefix=SHA[:8]) == f
    with pytest.raises(dl.ChecksumError):
        dl.download(str(f), sha256="1" * 64)
    with pytest.raises(dl.DownloadError, match="no such file"):
        dl.download(str(tmp_path / "absent.pth"))


def test_other_schemes_are_refused(tmp_path):
    with pytest.raises(dl.DownloadError, match="only http"):
        dl.download("ftp://127.0.0.1/x.pth", tmp_path)


def test_bad_hash_arguments_are_programming_errors(tmp_path):
    with pytest.raises(ValueError):
        dl.download("http://127.0.0.1:1/x", tmp_path, sha256="xyz")
    with pytest.raises(ValueError):
        dl.download("http://127.0.0.1:1/x", tmp_path, sha256=SHA, hash_prefix="ffffffff")


def test_text_progress_draws_a_bar_and_ends_the_line():
    out = io.StringIO()
    bar = dl.text_progress("model", stream=out)
    for done in (0, 100_000, 200_000, 300_000):
        bar(done, 300_000)
    text = out.getvalue()
    assert "model [" in text and "100.0%" in text and text.endswith("\n")
    assert text.count("\n") <= 11  # not a tty: about one line per 10 %
