"""The Models page, the Explore page's reverse view, and the Compare page, run headless with AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nlviz import samples, zoo
from nlviz.explore import Sampling, analyze, reverse_view

from test_app import APP, TIMEOUT, _elements, assert_clean, query, set_query, two_queries

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "pages" / "2_Models.py"


def _page(path: Path) -> AppTest:
    if not zoo.names("demo"):
        pytest.skip("no bundled demo model")
    return AppTest.from_file(str(path), default_timeout=TIMEOUT).run()


# ----------------------------------------------------------------------------- Models


def test_models_page_lists_the_zoo_and_the_blocks_with_statistics():
    at = _page(MODELS)
    assert_clean(at)
    zoo_frame, arch = at.dataframe[0].value, at.dataframe[1].value
    assert list(zoo_frame["name"]) == zoo.names()
    assert set(zoo_frame.columns) >= {"source", "pairwise", "top-1 (%)", "size (MB)", "licence", "cached"}
    assert zoo_frame.set_index("name").loc[zoo.names("demo"), "cached"].all()

    model = zoo.load(at.selectbox(key="model").value)
    analysis = analyze(model, samples.bundled_samples()[at.selectbox(key="video").value], Sampling())
    blocks = list(analysis.capture.blocks)
    assert list(arch["block"]) == blocks
    for _, row in arch.iterrows():
        b = analysis.capture[row["block"]]
        assert row["queries (TxHxW)"] == "x".join(map(str, b.query_shape))
        assert row["keys (TxHxW)"] == "x".join(map(str, b.key_shape))
        assert 0 <= row["entropy (nats)"] <= row["max entropy (nats)"] + 1e-6
        assert 0 <= row["query dependence"] <= 1 and row["distance (px)"] >= 0


def test_models_page_bad_checkpoint_errors_and_the_page_goes_on(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"\x80\x02not really a pickle")
    at = _page(MODELS)
    at.text_input(key="model_path").input(str(bad)).run()
    assert not at.exception
    assert any("Cannot load broken.pth" in e.value for e in at.error), [e.value for e in at.error]
    assert len(at.dataframe) == 2  # the zoo and the blocks of the model still selected


# ----------------------------------------------------------------------------- reverse view


def reverse_strip(at: AppTest) -> tuple[list[str], list[str]]:
    """(captions, media urls) of the per-frame strip (its images are hashed: equal urls, equal pictures)."""
    for el in _elements(at._tree):
        if getattr(el, "type", None) == "image":
            imgs = list(el.proto.imgs)
            if imgs and all(i.caption.startswith("frame ") for i in imgs):
                return [i.caption for i in imgs], [i.url for i in imgs]
    return [], []


def test_reverse_view_shows_who_attends_to_the_clicked_key():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    p, q = two_queries(at)
    at.toggle(key="reverse").set_value(True)
    set_query(at, *p)
    assert_clean(at)
    assert any(s.value.startswith("Who attends here:") for s in at.subheader)
    captions, first = reverse_strip(at)
    assert len(captions) == at.slider(key="q_frame").max + 1 and any("key" in c for c in captions)
    assert at.query_params["reverse"] in ("1", ["1"])

    # the numbers are the library's for the same key
    model = zoo.load(at.selectbox(key="model").value)
    analysis = analyze(model, samples.bundled_samples()[at.selectbox(key="video").value], Sampling())
    x, y = query(at)
    rv = reverse_view(analysis.capture, analysis.clip, at.selectbox(key="block").value, at.slider(key="q_frame").value, x, y)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Incoming attention"] == f"{rv.total:.3g}" and shown["Strongest key of"] == f"{rv.top1_share:.1%}"

    set_query(at, *q)
    assert_clean(at)
    assert reverse_strip(at)[1] != first
    at.toggle(key="reverse").set_value(False).run()
    assert any(s.value.startswith("Where it attends:") for s in at.subheader)
