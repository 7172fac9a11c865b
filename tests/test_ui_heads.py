"""The head picker and the class token's share in the Explore pieces, with a small random MViT
(torchvision's MViT(...)) on a bundled sample, run headless with Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

TESTS = str(Path(__file__).resolve().parent)
TIMEOUT = 120


def _script(tests_dir: str, kind: str = "mvit") -> None:
    import sys

    import streamlit as st

    sys.path.insert(0, tests_dir)
    from test_torchvision_video import small_mvit, small_swin

    from nlviz import ui
    from nlviz.explore import analyze
    from nlviz.loaded import LoadedModel
    from nlviz.models import torchvision_video as tvv
    from nlviz.samples import bundled_samples
    from nlviz.spec import ClipSpec

    @st.cache_resource
    def get(kind):
        if kind == "mvit":
            model, arch = small_mvit(True), "mvit_v2_s"
            spec = ClipSpec(num_frames=8, stride=1, short_side=32, crop_size=32)
        else:
            model, arch = small_swin(), "swin3d_t"
            spec = ClipSpec(num_frames=6, stride=1, short_side=44, crop_size=40)
        lm = LoadedModel(name=f"tiny_{kind}", model=model, spec=spec, family=tvv.FAMILY, arch=arch)
        return analyze(lm, next(iter(bundled_samples().values())))

    ui.restore_view()
    analysis = get(kind)
    block = ui.block_picker(analysis)
    query = ui.query_state(analysis)
    ui.query_inputs(analysis)
    ui.write_view(f"tiny_{kind}", None, query, block)
    view = ui.query_view_or_error(analysis, block, query)
    if view is not None:
        ui.attention_strip(analysis, view, query)
        ui.attention_numbers(analysis, view)
        st.write(f"ROW_MAX={float(view.row.max()):.6f}")


@pytest.fixture
def at():
    app = AppTest.from_function(_script, args=(TESTS,), default_timeout=TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    return app


def _select(at, label):
    return next(s for s in at.selectbox if s.label == label)


def _row_max(at) -> float:
    text = next(m.value for m in at.markdown if m.value.startswith("ROW_MAX="))
    return float(text.split("=")[1])


def test_the_head_picker_starts_on_the_mean_and_switches_heads(at):
    block = _select(at, "Attention block")
    assert block.value == "blocks.1.attn"  # the family's default block: the first after query pooling
    head = _select(at, "Head")
    assert head.value == "mean" and head.options[0] == "mean of 2 heads" and len(head.options) == 3
    assert any("(mean of 2 heads)" in h.value for h in at.subheader)
    caption = " ".join(c.value for c in at.caption)
    assert "class token gets" in caption and "not drawn" in caption
    mean_max = _row_max(at)
    head.set_value(1).run()
    assert not at.exception
    assert any("(head 1 of 2)" in h.value for h in at.subheader)
    assert _row_max(at) != pytest.approx(mean_max, abs=1e-6)


def test_a_one_head_block_has_no_head_picker(at):
    _select(at, "Attention block").set_value("blocks.0.attn").run()
    assert not at.exception
    assert not [s for s in at.selectbox if s.label == "Head"]
    assert not any("heads)" in h.value for h in at.subheader)


def test_swin_strip_draws_the_window_and_names_it():
    at = AppTest.from_function(_script, args=(TESTS, "swin"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert _select(at, "Attention block").value == "features.0.1.attn"  # the first shifted-window block
    assert _select(at, "Head").options[0] == "mean of 2 heads"
    caption = " ".join(c.value for c in at.caption)
    assert "Blue box: the query's window" in caption


def test_the_address_holds_the_head_and_a_link_reopens_it():
    at = AppTest.from_function(_script, args=(TESTS,), default_timeout=TIMEOUT)
    at.run()
    assert "head" not in at.query_params  # the mean: nothing to say
    _select(at, "Head").set_value(1).run()
    assert at.query_params["head"] == ["1"] or at.query_params["head"] == "1"
    link = AppTest.from_function(_script, args=(TESTS,), default_timeout=TIMEOUT)
    link.query_params["head"] = "1"
    link.query_params["block"] = "blocks.1.attn"
    link.run()
    assert not link.exception
    assert _select(link, "Head").value == 1
    assert any("(head 1 of 2)" in h.value for h in link.subheader)


@pytest.mark.slow
def test_the_explore_page_on_a_cached_torchvision_model(tmp_path, monkeypatch):
    """app.py itself on MViT-v2-S (random weights, as a zoo entry whose file is in the cache): the
    model is offered, the page opens on the family's default block with the head picker, the
    class token's share is given, and picking a head changes the strip."""
    import dataclasses
    import hashlib

    import torch

    from nlviz import zoo
    from nlviz.models import torchvision_video as tvv

    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path))
    cache = tmp_path / "checkpoints"
    cache.mkdir()
    torch.manual_seed(0)
    path = cache / "weights.pth"
    torch.save(tvv.build("mvit_v2_s").state_dict(), path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    base = {e.arch: e for e in tvv.entries()}["mvit_v2_s"]
    entry = dataclasses.replace(base, name="mvit_v2_s.nlviz_test_random", filename=f"mvit_v2_s_test-{prefix}.pth",
                                hash_prefix=prefix)
    path.rename(cache / entry.filename)
    zoo.register(entry, replace_existing=True)
    try:
        from nlviz import ui

        assert entry.name in ui.model_options()
        app = AppTest.from_file(str(Path(TESTS).parent / "app.py"), default_timeout=300)
        app.query_params["model"] = entry.name
        app.run()
        assert not app.exception, app.exception
        assert not app.error, [e.value for e in app.error]
        assert _select(app, "Attention block").value == "blocks.1.attn"
        head = _select(app, "Head")
        assert head.value == "mean" and len(head.options) == 3
        assert any("(mean of 2 heads)" in h.value for h in app.subheader)
        assert "class token gets" in " ".join(c.value for c in app.caption)
        from test_app import strip

        before = strip(app)
        assert len(before) == 16  # every frame of the 16-frame clip
        head.set_value(0).run()
        assert not app.exception
        assert any("(head 0 of 2)" in h.value for h in app.subheader)
        assert strip(app) != before
    finally:
        with zoo._lock:
            zoo._REGISTRY.pop(entry.name, None)
