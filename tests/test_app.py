"""The Explore page (app.py) run headless with Streamlit's AppTest: what a user sees per input.

AppTest cannot click the frame (a component in an iframe; see tests/browser/ for that), so the
query is set through the x/y number inputs, which share the click's session state. What is
checked is what a person sees: the strip of overlays (their media ids are hashes of the image
bytes, so equal ids mean equal pictures), the metrics, and the error/warning boxes.

The tests use whichever model ``nlviz.ui.model_options()`` lists first and the bundled samples,
never a particular demo name. Concurrent sessions are tested through the real server
(tests/browser/): AppTest is not thread-safe (each run installs a process-wide mock
``Runtime._instance`` and resets it to None when done), so AppTests in threads disturb each other.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nlviz import samples, ui

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT = 120  # s per run: the first run loads the model and does a forward pass on a busy 2-core box
STRIP_TITLE = "Where it attends:"
METRICS = ("Entropy", "Mass in the query's own time slice", "Largest weight")
UPLOAD = "Upload a video..."


# ----------------------------------------------------------------------------- helpers


def _elements(node):
    """Every leaf element of an AppTest tree (main area and sidebar), in display order."""
    from streamlit.testing.v1.element_tree import Block

    if isinstance(node, Block):
        for child in node.children.values():
            yield from _elements(child)
    else:
        yield node


def strip(at: AppTest) -> list[tuple[str, str]]:
    """(caption, media url) of each overlay in the 'every frame' strip; [] when no strip is shown.

    The strip is the image list whose captions read 'frame k (src s)'. A media url is derived
    from a hash of the image bytes, so two equal urls are two identical pictures.
    """
    for el in _elements(at._tree):
        if getattr(el, "type", None) != "image":
            continue
        imgs = list(el.proto.imgs)
        if imgs and all(i.caption.startswith("frame ") for i in imgs):
            return [(i.caption, i.url) for i in imgs]
    return []


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def assert_clean(at: AppTest, *, warnings: bool = False) -> None:
    """No exception, no error box (and no warning unless allowed)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if not warnings:
        assert not at.warning, [w.value for w in at.warning]


def assert_view(at: AppTest) -> None:
    """The attention view is shown: the strip's subheader, one overlay per frame, the metrics."""
    assert_clean(at)
    assert any(s.startswith(STRIP_TITLE) for s in subheaders(at)), subheaders(at)
    frames = at.slider(key="q_frame")
    n = int(frames.max) + 1
    shown = strip(at)
    assert len(shown) == n, f"{len(shown)} overlays for {n} frames"
    marked = [c for c, _ in shown if "query" in c]
    assert marked == [shown[frames.value][0]], marked
    assert set(METRICS) <= set(metrics(at)), metrics(at)
    assert all(v for v in metrics(at).values())


def query(at: AppTest) -> tuple[float, float]:
    return at.number_input(key="q_x").value, at.number_input(key="q_y").value


def frame_size(at: AppTest) -> tuple[int, int]:
    """(width, height) in pixels of the displayed frame, as its caption states."""
    for c in at.caption:
        m = re.search(r"Click the frame.* (\d+)x(\d+) px", c.value)
        if m:
            return int(m.group(1)), int(m.group(2))
    raise AssertionError("no caption under the frame states its size")


def set_query(at: AppTest, x: float, y: float) -> AppTest:
    at.number_input(key="q_x").set_value(float(x))
    at.number_input(key="q_y").set_value(float(y))
    return at.run()


def real_sample() -> str:
    """A bundled non-synthetic sample (wider than tall: the demo models centre-crop it)."""
    names = [n for n in samples.bundled_samples() if not n.startswith("synthetic")]
    if not names:
        pytest.skip("needs a bundled real-footage sample in assets/samples/")
    return names[0]


@pytest.fixture
def at() -> AppTest:
    """The Explore page after its first run, on the first listed model."""
    if not ui.model_options():
        pytest.skip("no model available (assets/models/ holds no demo weights)")
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.run()
    return app


# ----------------------------------------------------------------------------- tests


def test_loads_with_defaults(at):
    assert_view(at)
    options = ui.model_options()
    expected = ui.default_model() if ui.default_model() in options else options[0]
    assert at.selectbox(key="model").value == expected
    assert at.selectbox(key="video").value in samples.bundled_samples()
    assert any(s.startswith(f"{STRIP_TITLE} {at.selectbox(key='block').value}") for s in subheaders(at))
    # the default query is a pixel the model sees: the centre of the (crop of the) frame
    x, y = query(at)
    assert x > 0 and y > 0


def two_queries(at: AppTest) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two pixels far apart, both inside what the model sees (around the default: the crop's centre)."""
    x0, y0 = query(at)
    d = 0.6 * min(x0, y0)  # a centre crop is a square of side >= 2 * min(x0, y0) around (x0, y0)
    return (round(x0 - d, 1), round(y0 - d, 1)), (round(x0 + d, 1), round(y0 + d, 1))


def test_query_changes_the_attention_shown(at):
    p, q = two_queries(at)
    set_query(at, *p)
    assert_view(at)
    assert query(at) == pytest.approx(p, abs=0.05)
    first, m_first = strip(at), metrics(at)

    set_query(at, *q)
    assert_view(at)
    assert query(at) == pytest.approx(q, abs=0.05)
    second, m_second = strip(at), metrics(at)

    qf = at.slider(key="q_frame").value
    changed = [k for k, (a, b) in enumerate(zip(first, second)) if a[1] != b[1] and k != qf]
    # frames other than the query's own (which also moves its marker) change only through attention
    assert changed, "no overlay changed when the query moved across the frame"
    assert m_first != m_second or len(changed) > 1

    set_query(at, *p)  # back: the same picture as before (deterministic, cached forward pass)
    assert strip(at) == first and metrics(at) == m_first


def test_a_click_sets_the_query(at):
    """The click component's value (displayed CSS pixels + displayed size) becomes x/y in image pixels.

    AppTest cannot click the component; it can put a value under its key before a run
    (undocumented, but how Streamlit delivers it). tests/browser/ clicks for real.
    """
    x0, y0 = query(at)
    w, h = frame_size(at)
    shown_h = round(512 * h / w)
    before = strip(at)
    at.session_state["click"] = {"x": 100, "y": 120, "width": 512, "height": shown_h, "unix_time": 1}
    at.run()
    assert_clean(at, warnings=True)  # (100, 120) may fall outside a centre crop: a warning, not an error
    assert query(at) == pytest.approx((100.5 * w / 512, 120.5 * h / shown_h), abs=0.01)
    if not at.warning:
        assert strip(at) != before
    # the same click, seen again on the next run, does not override a typed value
    at.number_input(key="q_x").set_value(float(round(x0))).run()
    assert query(at)[0] == round(x0)


def test_query_frame_and_block_follow_the_widgets(at):
    t = int(at.slider(key="q_frame").max) + 1
    at.slider(key="q_frame").set_value(0).run()
    assert_view(at)
    assert "query" in strip(at)[0][0]
    at.slider(key="q_frame").set_value(t - 1).run()
    assert_view(at)
    assert "query" in strip(at)[-1][0]

    blocks = at.selectbox(key="block").options
    if len(blocks) < 2:
        pytest.skip("the model has one non-local block")
    before = strip(at)
    current = at.selectbox(key="block").value
    name = next(b.split()[0] for b in blocks if b.split()[0] != current)  # options read "<block name>  ·  ..."
    at.session_state["block"] = name  # (AppTest cannot pick an option through a format_func)
    at.run()
    assert_view(at)
    assert at.selectbox(key="block").value == name
    assert any(s.startswith(f"{STRIP_TITLE} {name}") for s in subheaders(at))
    assert strip(at) != before


def test_corrupt_upload_shows_an_error_then_a_sample_works(at):
    sample = at.selectbox(key="video").value
    at.selectbox(key="video").set_value(UPLOAD).run()
    assert_clean(at)
    assert at.info, "no hint to upload a video"
    assert not strip(at)

    at.file_uploader(key="video_upload").set_value(("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x13garbage" * 500,
                                                     "video/mp4")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error, "a corrupt video gave no error"
    assert "video" in at.error[0].value.lower()
    assert "Traceback" not in at.error[0].value
    assert not strip(at)

    at.file_uploader(key="video_upload").set_value(("notes.mp4", b"just some text\n" * 20, "video/mp4")).run()
    assert not at.exception and at.error and not strip(at)

    at.selectbox(key="video").set_value(sample).run()
    assert_view(at)


def test_uploaded_video_is_analysed(at, tmp_path):
    from nlviz.synthetic import make_clip
    from nlviz.video import write_mp4

    path = write_mp4(make_clip(5).frames, tmp_path / "my_clip.mp4")
    at.selectbox(key="video").set_value(UPLOAD).run()
    at.file_uploader(key="video_upload").set_value(("my_clip.mp4", path.read_bytes(), "video/mp4")).run()
    assert_view(at)
    assert any("my_clip.mp4" in c.value for c in at.caption)


def test_query_outside_the_crop_warns(at):
    at.selectbox(key="video").set_value(real_sample()).run()
    assert not at.exception and not at.error
    at.toggle(key="sampling_full").set_value(False)
    at.number_input(key="q_x").set_value(1.0)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.warning, "a query outside the centre crop gave no warning"
    assert "crop" in at.warning[0].value.lower() or "outside" in at.warning[0].value.lower()
    assert not strip(at)
    # the page still works: the frame and the widgets are there, and 'Full frame' brings the view back
    assert at.number_input(key="q_x").value == 1.0
    at.toggle(key="sampling_full").set_value(True).run()
    assert_view(at)
    assert query(at)[0] == pytest.approx(1.0)


def test_switching_video_keeps_a_query_the_model_sees(at):
    """From the default sample to one of the other kind (synthetic 64 px <-> real footage): the
    query is kept when the model sees it in the new clip, else reset; never a warning."""
    current = at.selectbox(key="video").value
    other = real_sample() if current.startswith("synthetic") else next(
        (n for n in samples.bundled_samples() if n.startswith("synthetic")), None)
    if other is None:
        pytest.skip("needs a bundled synthetic sample besides the real one")
    at.selectbox(key="video").set_value(other).run()
    assert_view(at)
    assert at.selectbox(key="video").value == other


@pytest.mark.parametrize("name", list(samples.bundled_samples()))
def test_each_sample_opens_on_a_view(name):
    """A session that starts on any bundled sample shows the view at its default query (no warning)."""
    if not ui.model_options():
        pytest.skip("no model available (assets/models/ holds no demo weights)")
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.session_state["video"] = name
    app.run()
    assert app.selectbox(key="video").value == name
    assert_view(app)



def test_the_url_holds_the_view_and_a_link_reopens_it(at):
    p, _ = two_queries(at)
    blocks = at.selectbox(key="block").options
    at.session_state["block"] = blocks[-1].split()[0]  # not the default block
    at.slider(key="q_frame").set_value(1)
    set_query(at, *p)
    params = dict(at.query_params)
    model, block = at.selectbox(key="model").value, at.selectbox(key="block").value
    flat = {k: (v[0] if isinstance(v, list) else v) for k, v in params.items()}
    assert flat["model"] == model and flat["block"] == block
    assert (float(flat["x"]), float(flat["y"])) == pytest.approx(p, abs=0.05)
    assert flat["video"] == at.selectbox(key="video").value
    shown = strip(at)

    link = AppTest.from_file(str(APP), default_timeout=TIMEOUT)  # a new browser session opening the link
    for k, v in flat.items():
        link.query_params[k] = v
    link.run()
    assert_view(link)
    assert query(link) == pytest.approx(p, abs=0.05)
    assert link.selectbox(key="block").value == block and link.slider(key="q_frame").value == 1
    assert strip(link) == shown


def test_a_link_with_bad_values_falls_back_to_defaults():
    if not ui.model_options():
        pytest.skip("no model available")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for k, v in {"model": "no.such_model", "video": "nope", "frame": "999", "x": "-3", "y": "nan", "block": "x"}.items():
        at.query_params[k] = v
    at.run()
    assert_view(at)
