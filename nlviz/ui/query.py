"""The query and the switches that shape a view: session state, clicks and pins, the frame picker,
the x/y inputs, the block picker, and the view's toggles."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ..explore import Analysis


@dataclass(frozen=True)
class Query:
    """The query: a displayed frame and a pixel in it (displayed-frame pixel units)."""

    frame: int
    x: float
    y: float


CLICK_KEY = "click"


DISPLAY_WIDTH = 512


def _default_query(analysis: Analysis, preferred: tuple[int, float, float] | None = None) -> Query:
    """``preferred`` (a sample's own first query) when the model sees it, else the crop's centre."""
    clip = analysis.clip
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    if preferred is not None:
        k, x, y = preferred
        if 0 <= k < len(clip.frames) and x0 <= x < x1 and y0 <= y < y1:
            return Query(int(k), float(x), float(y))
    return Query(len(clip.frames) // 2, (x0 + x1) / 2, (y0 + y1) / 2)


def query_state(analysis: Analysis, default: tuple[int, float, float] | None = None) -> Query:
    """The current query from session state: defaults, a pending click, bounds per clip.

    ``default``: the query to start a clip on, e.g. a sample's pixel on an object
    (:func:`nlviz.samples.default_query`); the centre of the crop otherwise. The click
    component's value arrives in session state before the script runs, so it is applied here,
    before any widget that shows the query is drawn (no lagging marker).
    """
    clip = analysis.clip
    t, h, w = len(clip.frames), clip.frames.shape[1], clip.frames.shape[2]
    ss = st.session_state
    if ss.get("q_clip") != id(clip):  # a new clip: keep the query if the model sees it, else reset
        ss["q_clip"] = id(clip)
        x0, y0, x1, y1 = clip.geometry.crop_rect()
        if not (0 <= ss.get("q_frame", -1) < t and x0 <= ss.get("q_x", -1) < x1 and y0 <= ss.get("q_y", -1) < y1):
            d = _default_query(analysis, default)
            ss["q_frame"], ss["q_x"], ss["q_y"] = d.frame, float(d.x), float(d.y)
    value = ss.get(CLICK_KEY)
    if value:
        stamp = (value.get("unix_time"), value.get("x"), value.get("y"))
        if ss.get("click_last") != stamp:
            ss["click_last"] = stamp
            sx = w / max(value.get("width") or DISPLAY_WIDTH, 1)
            sy = h / max(value.get("height") or 1, 1)
            ss["q_x"] = float(min(max((value["x"] + 0.5) * sx, 0), w - 0.01))
            ss["q_y"] = float(min(max((value["y"] + 0.5) * sy, 0), h - 0.01))
    # re-save: a run that stopped before drawing these widgets (e.g. an upload box still empty)
    # would otherwise let Streamlit forget them and show their minimum next time
    ss["q_frame"], ss["q_x"], ss["q_y"] = int(ss["q_frame"]), float(ss["q_x"]), float(ss["q_y"])
    return Query(int(ss["q_frame"]), float(ss["q_x"]), float(ss["q_y"]))


def _block_kind(analysis: Analysis, b) -> str:
    if analysis.is_probe(b.name):
        return "feature-similarity probe"
    if getattr(b, "num_heads", 1) > 1 or hasattr(b, "rule"):
        what = "window attention" if getattr(b, "kind", "") == "window_attention" else "self-attention"
        return f"{what}, {b.num_heads} head{'s' * (b.num_heads > 1)}"
    return b.pairwise


def block_picker(analysis: Analysis, *, key: str = "block") -> str:
    """Select box over the model's attention blocks, with their grid sizes; for a block with
    several heads, a head picker under it (the mean over heads first; see :func:`picked_head`)."""
    cap = analysis.capture
    labels = {b.name: f"{b.name}  ·  queries {'x'.join(map(str, b.query_shape))}, "
                      f"keys {'x'.join(map(str, b.key_shape))}  ·  {_block_kind(analysis, b)}" for b in cap}
    if st.session_state.get(key) not in labels:
        st.session_state[key] = analysis.default_block or cap.blocks[0]
    st.session_state[key] = st.session_state[key]  # keep it across runs that do not draw it
    transformer = any(getattr(b, "num_heads", 1) > 1 or hasattr(b, "rule") for b in cap)
    block = st.selectbox("Attention block" if transformer else "Non-local block", cap.blocks,
                         format_func=labels.get, key=key)
    head_picker(analysis, block, key=f"{key}_head")
    return block


HEAD_MEAN = "mean"


def head_picker(analysis: Analysis, block: str, *, key: str = "block_head") -> int | None:
    """The head to show for a multi-head block: None (the mean over heads, first) or an index;
    nothing is drawn for a block with one head (None)."""
    heads = int(getattr(analysis.capture[block], "num_heads", 1))
    ss = st.session_state
    if heads <= 1:
        ss[key] = HEAD_MEAN
        return None
    options = [HEAD_MEAN, *range(heads)]
    if ss.get(key) not in options:
        ss[key] = HEAD_MEAN
    ss[key] = ss[key]
    choice = st.selectbox("Head", options, key=key,
                          format_func=lambda h: f"mean of {heads} heads" if h == HEAD_MEAN else f"head {h}",
                          help="Each head is its own softmax over the keys; the mean averages the heads' rows "
                               "(what the block mixes, before its output projection).")
    return None if choice == HEAD_MEAN else int(choice)


def picked_head(analysis: Analysis, block: str, *, key: str = "block_head") -> int | None:
    """The head the picker holds for ``block`` (None: the mean, or a block with one head)."""
    heads = int(getattr(analysis.capture[block], "num_heads", 1))
    h = st.session_state.get(key)
    return int(h) if isinstance(h, int) and not isinstance(h, bool) and 0 <= h < heads else None


def query_frame(analysis: Analysis, query: Query) -> None:
    """The chosen frame, clickable, with the query marked and the model's crop outlined."""
    from ..render import draw_marker, draw_rect
    from ..explore import thumbnails

    clip = analysis.clip
    t = len(clip.frames)
    st.slider("Query frame", 0, t - 1, key="q_frame",
              help="The frame the query pixel is in; attention is shown for every frame below.")
    frame = clip.frames[query.frame]
    (big,), factor = thumbnails(frame[None], DISPLAY_WIDTH)
    crop = clip.geometry.crop_rect()
    h, w = frame.shape[:2]
    if crop != (0, 0, w, h):
        big = draw_rect(big, tuple(v * factor for v in crop))
    big = draw_marker(big, query.x * factor, query.y * factor)
    from streamlit_image_coordinates import streamlit_image_coordinates

    streamlit_image_coordinates(big, width=DISPLAY_WIDTH, key=CLICK_KEY, image_format="JPEG", jpeg_quality=90,
                                cursor="crosshair")
    c1, c2 = st.columns(2)
    c1.number_input("x (pixels)", 0.0, float(w) - 0.01, key="q_x", step=1.0, format="%.1f")
    c2.number_input("y (pixels)", 0.0, float(h) - 0.01, key="q_y", step=1.0, format="%.1f")
    src = clip.indices[query.frame]
    st.caption(f"Click the frame to choose the query pixel. Frame {query.frame} of the clip "
               f"(source frame {src}, {clip.timestamps[query.frame]:.2f} s), {w}x{h} px"
               + (" · yellow: the region the model sees (centre crop)" if crop != (0, 0, w, h) else ""))


def query_inputs(analysis: Analysis) -> None:
    """The query as numbers: frame slider and x/y inputs, on the same state as clicks and hovers."""
    clip = analysis.clip
    h, w = clip.frames.shape[1], clip.frames.shape[2]
    c0, c1, c2 = st.columns([3, 1, 1])
    c0.slider("Query frame", 0, len(clip.frames) - 1, key="q_frame",
              help="The frame the query pixel is in; attention is shown for every frame.")
    c1.number_input("x (pixels)", 0.0, float(w) - 0.01, key="q_x", step=1.0, format="%.1f")
    c2.number_input("y (pixels)", 0.0, float(h) - 0.01, key="q_y", step=1.0, format="%.1f")


VIEW_KEY = "attention_view"


def _on_pin(key: str, clip) -> None:
    """A click (or arrow key) in the attention view pinned a query: put it in the query state."""
    from .view_component import pin_value

    pin = pin_value(key)
    if not pin:
        return
    t, h, w = len(clip.frames), clip.frames.shape[1], clip.frames.shape[2]
    try:
        frame, x, y = int(pin["frame"]), float(pin["x"]), float(pin["y"])
    except (KeyError, TypeError, ValueError):
        return
    ss = st.session_state
    ss["q_frame"] = min(max(frame, 0), t - 1)
    ss["q_x"], ss["q_y"] = min(max(x, 0.0), w - 0.01), min(max(y, 0.0), h - 0.01)


VIEW_ENV = "NLVIZ_VIEW"  # "server": open on the server-drawn strip (AppTest, which cannot run components)


def interactive_toggle(*, key: str = "interactive") -> bool:
    """Sidebar switch between the hover view (rows in the browser) and the server-drawn strip.

    Default: on, unless the environment variable NLVIZ_VIEW is "server"; a link's ``view=server``
    or ``view=hover`` wins (see :func:`restore_view`)."""
    import os

    default = os.environ.get(VIEW_ENV, "hover") != "server"
    st.session_state[key] = bool(st.session_state.get(key, default))
    return st.sidebar.toggle("Hover view (computed in the browser)", key=key,
                             help="On: hover any pixel of any frame and every frame's attention follows, computed "
                                  "in your browser; click to pin. Off: the server draws the strip on each click.")


OVERLAY_STYLES = {"heat": "Heat over the frame", "darken": "Darken unattended"}


def overlay_style(*, key: str = "overlay_style") -> str:
    """How weights are drawn over the frames: heat whose opacity grows with the weight, or darkening."""
    st.session_state[key] = st.session_state.get(key, "heat") if st.session_state.get(key) in OVERLAY_STYLES else "heat"
    return st.selectbox("Overlay", list(OVERLAY_STYLES), format_func=OVERLAY_STYLES.get, key=key,
                        help="Heat: the frame untouched, colour more opaque where the weight is larger (weak maps stay "
                             "readable). Darken: low weights darken the frame, high ones glow.")


def direction_toggle(*, key: str = "reverse") -> bool:
    """Forward (where the clicked pixel attends) or reverse (who attends to the clicked pixel)."""
    st.session_state[key] = bool(st.session_state.get(key, False))  # kept across pages and early stops
    return st.toggle("Reverse: who attends here", key=key,
                     help="Off: where the clicked pixel (a query) attends. On: the clicked pixel is a key; "
                          "the strip shows how much every query of the clip attends to it.")


def hide_own_toggle(*, key: str = "hide_own", default: bool = False) -> int | None:
    """Hide the query's own neighbourhood (radius 1 key cell, own time slice)? Returns the radius or None."""
    st.session_state[key] = bool(st.session_state.get(key, default))
    on = st.toggle("Hide the query's own neighbourhood", key=key,
                   help="Feature similarity peaks at the query itself: hide the keys within one key cell of it in "
                        "its own time slice, so the colour scale shows where else it attends. The numbers still "
                        "describe the whole row.")
    return 1 if on else None
