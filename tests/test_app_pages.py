"""The Models page, the Explore page's reverse view, and the Compare page, run headless with AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nlviz import samples, zoo
from nlviz.explore import Sampling, analyze, reverse_view

from test_app import APP, TIMEOUT, _elements, assert_clean, query, set_query, two_queries

ROOT = Path(__file__).resolve().parent.parent
MODELS = "pages/2_Models.py"
COMPARE = "pages/1_Compare.py"


def _page(path: str) -> AppTest:
    """A page of the app, opened as a browser does: the app's entry point, then the page."""
    if not zoo.names("demo"):
        pytest.skip("no bundled demo model")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.switch_page(path)
    return at.run()


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


def sidebar_sampling(at: AppTest) -> Sampling:
    """The sampling the sidebar's widgets name (they start at the model's spec, from frame 0)."""
    return Sampling(num_frames=int(at.number_input(key="sampling_frames").value),
                    stride=int(at.number_input(key="sampling_stride").value),
                    start_frame=int(at.number_input(key="sampling_start").value))


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

    # the numbers are the library's for the same key (and the clip the sidebar's sampling names)
    model = zoo.load(at.selectbox(key="model").value)
    analysis = analyze(model, samples.bundled_samples()[at.selectbox(key="video").value], sidebar_sampling(at))
    x, y = query(at)
    rv = reverse_view(analysis.capture, analysis.clip, at.selectbox(key="block").value, at.slider(key="q_frame").value, x, y)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Incoming attention"] == f"{rv.total:.3g}" and shown["Strongest key of"] == f"{rv.top1_share:.1%}"

    set_query(at, *q)
    assert_clean(at)
    assert reverse_strip(at)[1] != first
    at.toggle(key="reverse").set_value(False).run()
    assert any(s.value.startswith("Where it attends:") for s in at.subheader)


# ----------------------------------------------------------------------------- Compare


def compare_cells(at: AppTest) -> list[str]:
    """Media urls of the overlay pictures in the Compare grid (one per model and block row; the
    page's only st.image pictures: the clickable frame is a component)."""
    return [el.proto.imgs[0].url for el in _elements(at._tree)
            if getattr(el, "type", None) == "image" and len(el.proto.imgs) == 1 and not el.proto.imgs[0].caption]


def test_compare_page_defaults_show_every_variant_and_one_click_updates_all():
    at = _page(COMPARE)
    assert_clean(at)
    names = at.multiselect(key="compare_models").value
    demo = [n for n in zoo.names("demo") if zoo.get(n).pairwise]
    assert names == demo[:4] and len(names) >= 2
    rows = [m.value for m in at.markdown if m.value.startswith("##### ")]
    cells = compare_cells(at)
    assert rows and len(cells) == len(rows) * len(names) - sum("no view" in i.value for i in at.info)
    assert len(at.dataframe) >= 2  # per-model and pairwise metrics

    p, q = two_queries(at)
    set_query(at, *p)
    first = compare_cells(at)
    set_query(at, *q)
    assert_clean(at)
    second = compare_cells(at)
    assert len(first) == len(second) and all(a != b for a, b in zip(first, second)), "a column did not follow the click"
    assert at.query_params["models"] in (",".join(names), [",".join(names)])


def test_compare_page_per_model_scales_and_fewer_models():
    at = _page(COMPARE)
    names = at.multiselect(key="compare_models").value
    at.toggle(key="compare_shared").set_value(False).run()
    assert_clean(at)
    assert not any(c.value.startswith("Shared colour scale") for c in at.caption)
    own = [c.value for c in at.caption if c.value.startswith("H = ")]
    assert own and all("softmax weights 0 … " in c or "f/N (not probabilities)" in c for c in own), own
    at.multiselect(key="compare_models").set_value(names[:1]).run()
    assert not at.exception
    assert any("at least two models" in i.value for i in at.info)


# ----------------------------------------------------------------------------- hide the own neighbourhood


def test_hiding_the_own_neighbourhood_changes_the_pictures_not_the_numbers():
    from test_app import assert_view, metrics, strip

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    before, numbers = strip(at), metrics(at)
    was_on = at.toggle(key="hide_own").value  # on by default for the I3D probe, off for trained blocks
    assert any("own neighbourhood (hidden)" in c.value for c in at.caption) == was_on
    at.toggle(key="hide_own").set_value(not was_on).run()
    assert_view(at)
    assert strip(at) != before and metrics(at) == numbers
    assert any("own neighbourhood (hidden)" in c.value for c in at.caption) != was_on
