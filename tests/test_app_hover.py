"""The Explore page with the hover view, run by AppTest: what the page sends its two components.

AppTest cannot run the components' JavaScript (tests/browser/test_hover_browser.py does), but it
sees what Python mounts: the view's bytes payload (read back with nlviz.viewdata.unpack) and the
control channel's JSON (the pinned query per view, style, hidden neighbourhood, server rows).
Here: a link's query goes in, the same query comes out in the pins and the address; the x/y
inputs move the pin; the block picker changes the payload; the payload stays byte-identical
while only the query changes (so Streamlit need not send it again).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nlviz import samples, ui, viewdata

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT = 120


def _components(at: AppTest) -> dict[str, object]:
    from streamlit.testing.v1.element_tree import Block

    found = {}

    def walk(node):
        if isinstance(node, Block):
            for child in node.children.values():
                walk(child)
        elif getattr(node, "type", None) == "bidi_component":
            found[node.proto.component_name] = node.proto

    walk(at._tree)
    return found


def _control(at: AppTest) -> dict:
    return json.loads(_components(at)["nlviz.attention_control"].json)


def _payload(at: AppTest) -> bytes:
    return _components(at)["nlviz.attention_view"].bytes


@pytest.fixture
def demo(monkeypatch) -> str:
    monkeypatch.setenv(ui.VIEW_ENV, "hover")
    demos = [m for m in ui.model_options() if ui.model_info(m).is_demo]
    if not demos:
        pytest.skip("no bundled demo model")
    return demos[0]


def test_a_link_pins_the_query_and_the_address_keeps_it(demo):
    video = next(n for n in samples.bundled_samples() if n.startswith("synthetic"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(model=demo, video=video, frame="3", x="30.5", y="33.5")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    ctl = _control(at)
    assert ctl["group"] == "explore" and ctl["pins"] == {"explore": {"frame": 3, "x": 30.5, "y": 33.5}}
    assert ctl["style"] == "heat" and ctl["rows"] == {}  # demo blocks are within the budget: no server rows
    head = viewdata.unpack(_payload(at)).header
    assert head["mode"] == "browser" and head["block"] == at.selectbox(key="block").value
    assert head["labels"]["view_id"] == "explore" and head["atlas"]["count"] == at.slider(key="q_frame").max + 1
    qp = at.query_params
    assert (qp["model"], qp["video"], qp["frame"], qp["x"], qp["y"]) == (demo, video, "3", "30.5", "33.5")
    assert "view" not in qp  # the hover view is the default: the address does not repeat it

    # the x/y inputs move the pin; the payload (frames and factors) is unchanged, byte for byte
    first = _payload(at)
    at.number_input(key="q_x").set_value(12.0)
    at.run()
    assert _control(at)["pins"]["explore"] == {"frame": 3, "x": 12.0, "y": 33.5}
    assert at.query_params["x"] == "12.0" and _payload(at) == first
    assert {m.label for m in at.metric} >= {"Entropy", "Largest weight"}

    # the other block: another payload, same pin
    names = [o.split()[0] for o in at.selectbox(key="block").options]  # options are shown as "name · grids · kind"
    other = [b for b in names if b != at.selectbox(key="block").value]
    if other:
        at.selectbox(key="block").set_value(other[0])
        at.run()
        assert viewdata.unpack(_payload(at)).header["block"] == other[0]
        assert _control(at)["pins"]["explore"]["x"] == 12.0

    # the overlay style and the hidden neighbourhood travel on the control channel only
    at.selectbox(key="overlay_style").set_value("darken")
    at.toggle(key="hide_own").set_value(True)
    before = _payload(at)
    at.run()
    ctl = _control(at)
    assert ctl["style"] == "darken" and ctl["hide_own"] == 1 and _payload(at) == before


def test_the_server_strip_is_one_switch_away(demo):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(model=demo, view="server")
    at.run()
    assert not at.exception
    assert "nlviz.attention_view" not in _components(at)
    assert any(s.value.startswith("Where it attends:") for s in at.subheader)
    assert at.query_params["view"] == "server"  # a copied link keeps the choice
    at.toggle(key="interactive").set_value(True)
    at.run()
    assert "nlviz.attention_view" in _components(at) and "view" not in at.query_params


def test_over_budget_blocks_get_the_servers_row(demo, monkeypatch):
    from nlviz.ui import view_component

    monkeypatch.setattr(view_component.viewdata, "BUDGET_BYTES", 1024)  # every demo block is now too big
    view_component._payload.clear()
    try:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.query_params.update(model=demo)
        at.run()
        assert not at.exception
        ctl = _control(at)
        pin = ctl["pins"]["explore"]
        row = ctl["rows"]["explore"]
        assert (row["frame"], row["x"], row["y"]) == (pin["frame"], pin["x"], pin["y"])
        head = viewdata.unpack(_payload(at)).header
        assert head["mode"] == "server" and "theta" not in head["sections"]
        assert len(row["values"]) == head["key_shape"][0] * head["key_shape"][1] * head["key_shape"][2]
    finally:
        view_component._payload.clear()


def test_a_demo_model_opens_on_its_task_with_the_query_on_an_object(demo):
    from nlviz import samples

    if samples.DEMO_SAMPLE not in samples.bundled_samples():
        pytest.skip(f"the demo task's sample {samples.DEMO_SAMPLE} is not bundled")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(model=demo)
    at.run()
    assert not at.exception
    assert at.selectbox(key="video").value == samples.DEMO_SAMPLE
    frame, x, y = samples.default_query(samples.DEMO_SAMPLE)
    assert _control(at)["pins"]["explore"] == {"frame": frame, "x": x, "y": y}
    assert (at.slider(key="q_frame").value, at.number_input(key="q_x").value, at.number_input(key="q_y").value) \
        == (frame, x, y)
    # the pixel is on an object (the sample's own generator draws it there), in a frame the labels cover
    from nlviz import synthetic

    gt = samples.ground_truth(samples.DEMO_SAMPLE)
    cfg = synthetic.TrackConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in gt["config"].items()})
    clip = synthetic.make_track_clip(gt["seed"], cfg)
    assert clip.masks[frame][int(y), int(x)] >= 0 and frame >= gt["label_from"]
