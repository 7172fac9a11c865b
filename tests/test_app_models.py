"""The Explore page's model picker: zoo models to download (with progress) and local checkpoints.

Downloads are served by an HTTP server on 127.0.0.1; the zoo entry under test is registered
for the test only and points there. Its file is a bundled demo model's safetensors, so what
gets downloaded loads and shows a real attention view.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nlviz import zoo
from nlviz.ui import models as ui_models

from test_app import APP, TIMEOUT, assert_clean, assert_view

DEMO = "demo.dot_product"


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def served_entry(tmp_path, monkeypatch):
    """A zoo entry (not cached) whose file, a demo model, is served on 127.0.0.1."""
    if DEMO not in zoo.names("demo"):
        pytest.skip(f"needs the bundled {DEMO}")
    data = zoo.cached_path(DEMO).read_bytes()
    root = tmp_path / "www"
    root.mkdir()
    (root / "tiny_nl.safetensors").write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = zoo.get("i3d_nl5_r50.kinetics400_mmaction2_dot_product")
    demo = zoo.get(DEMO)
    entry = dataclasses.replace(
        base, name=f"{demo.arch}.served_for_test", arch=demo.arch, spec=demo.spec, num_classes=demo.num_classes,
        build_overrides={}, url="https://127.0.0.1/placeholder", filename="tiny_nl.safetensors",
        file_format="safetensors", sha256=hashlib.sha256(data).hexdigest(), hash_prefix=None,
        size_mb=round(len(data) / 1e6, 1), license="for this test only",
    )
    object.__setattr__(entry, "url", f"http://127.0.0.1:{httpd.server_address[1]}/tiny_nl.safetensors")
    monkeypatch.setitem(zoo._REGISTRY, entry.name, entry)
    yield entry
    httpd.shutdown()


def test_zoo_model_needs_a_download_then_shows_attention(served_entry):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    box = at.selectbox(key="model")
    assert served_entry.name in box.options or any(served_entry.name in o for o in box.options)
    at.session_state["model"] = served_entry.name
    at.run()
    assert_clean(at)
    assert any("not downloaded yet" in i.value for i in at.info), [i.value for i in at.info]
    assert not any(s.value.startswith("Where it attends") for s in at.subheader)

    at.button(key="model_download").click().run()
    assert zoo.is_cached(served_entry.name)
    assert at.selectbox(key="model").value == served_entry.name
    assert_view(at)


def test_a_failed_download_says_why_and_the_app_goes_on(served_entry, monkeypatch):
    broken = dataclasses.replace(served_entry, url="https://127.0.0.1/placeholder", sha256="0" * 64)
    object.__setattr__(broken, "url", served_entry.url)
    monkeypatch.setitem(zoo._REGISTRY, broken.name, broken)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.session_state["model"] = broken.name
    at.run()
    at.button(key="model_download").click().run()
    assert not at.exception
    assert any("Download of" in e.value and "sha256" in e.value.lower() for e in at.error), [e.value for e in at.error]
    assert not zoo.is_cached(broken.name)
    at.session_state["model"] = ui_models.model_options()[0]
    at.run()
    assert_view(at)


def test_a_local_checkpoint_path_loads_and_is_selected():
    path = zoo.cached_path(DEMO)
    if not path.is_file():
        pytest.skip(f"needs the bundled {DEMO}")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.text_input(key="model_path").input(str(path)).run()
    assert at.selectbox(key="model").value == "file:" + str(path.resolve())
    assert_view(at)
    assert any(path.name in c.value and "dot_product" in c.value for c in at.caption), [c.value for c in at.caption]


@pytest.mark.parametrize("content, message", [
    (b"this is not a checkpoint\n", "Cannot load"),
    (None, "No such file"),
])
def test_a_bad_local_checkpoint_gives_an_error_and_the_page_works(tmp_path, content, message):
    path = tmp_path / "model.pth"
    if content is not None:
        path.write_bytes(content)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    model = at.selectbox(key="model").value
    at.text_input(key="model_path").input(str(path)).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="model").value == model  # the previous model stays in use
    assert any(s.value.startswith("Where it attends") for s in at.subheader)


def test_the_upload_store_keeps_one_file_per_content(tmp_path):
    a = ui_models.save_upload("../../evil name.pth", b"abc")
    b = ui_models.save_upload("other.pth", b"abc")
    assert a.parent == b.parent == Path(tmp_path / "cache" / "uploads")
    assert a.name.endswith("evil_name.pth") and a.read_bytes() == b"abc" and ".." not in a.name
