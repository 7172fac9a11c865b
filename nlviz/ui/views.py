"""What a query shows: the hover view, the server-drawn strips (forward and reverse), the numbers,
the prediction, top-k arrows, every block, and the exports. A click only computes rows here
(:func:`nlviz.explore.query_view`); the forward pass was done once (:mod:`nlviz.ui.analysis`)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ..explore import Analysis, Sampling
from .analysis import VideoChoice, view_key
from .query import VIEW_KEY, Query, _on_pin, picked_head


def capture_for(analysis: Analysis, block: str):
    """The analysis's capture with ``block`` seen through the picked head (the mean: as it is)."""
    head = picked_head(analysis, block)
    return analysis.capture if head is None else analysis.capture.with_heads({block: head})


def extra_weight(analysis: Analysis, block: str, cell) -> float | None:
    """The share of the query's row on tokens off the grid (a class token, padding), for the
    picked head; None for a block without such tokens."""
    b = analysis.capture[block]
    if not getattr(b, "key_extra", 0):
        return None
    return float(b.extra_weight(cell, head=picked_head(analysis, block)))


def window_region(analysis: Analysis, block: str, cell):
    """For a window-attention block (Swin): the displayed frames and rectangle of the keys the
    query at ``cell`` sees, (frames, (x0, y0, x1, y1)); None for other blocks."""
    b = analysis.capture[block]
    box = getattr(getattr(b, "rule", None), "window_box", None)
    if box is None:
        return None
    (t0, t1), (h0, h1), (w0, w1) = box(cell)
    first, last = b.key_box((t0, h0, w0)), b.key_box((t1 - 1, h1 - 1, w1 - 1))
    return analysis.clip.geometry.input_box_to_frames(first[0], last[1], first[2], last[3], first[4], last[5])


def head_words(analysis: Analysis, block: str) -> str:
    """'head 2 of 8' / 'mean of 8 heads' for a multi-head block, '' otherwise."""
    heads = int(getattr(analysis.capture[block], "num_heads", 1))
    if heads <= 1:
        return ""
    head = picked_head(analysis, block)
    return f"mean of {heads} heads" if head is None else f"head {head} of {heads}"


def extra_words(analysis: Analysis, block: str, cell) -> str:
    """' The class token gets 3.2% of this row (not drawn).' or ''."""
    w = extra_weight(analysis, block, cell)
    if w is None:
        return ""
    label = analysis.capture[block].extra_label or "tokens off the grid"
    return f" The {label} gets {w:.1%} of this row (not drawn; the map's weights sum to {1 - w:.1%})."


def attention_view(model_name: str, video: VideoChoice, sampling: Sampling, analysis: Analysis, block: str,
                   query: Query, *, hide_own: int | None, style: str, view=None) -> bool:
    """The hover view of one block (rows computed in the browser); False when it cannot be shown."""
    from . import view_component as av

    data = av.payload(view_key(model_name, video, sampling), analysis, block, group="explore", view_id="explore")
    if data is None:
        return False
    rows = None
    head = picked_head(analysis, block)
    if not av.in_browser(analysis, block) and view is not None:
        rows = {"explore": {"frame": query.frame, "x": query.x, "y": query.y,
                            "values": [float(v) for v in view.row.ravel()]}}
        extra = extra_weight(analysis, block, view.cell)
        if extra is not None:
            rows["explore"]["extra"] = extra
    av.attention_control("explore", pins={"explore": {"frame": query.frame, "x": query.x, "y": query.y}},
                         style=style, hide_own=hide_own, rows=rows, heads={"explore": head},
                         key="attention_control")
    av.attention_view(data, key=VIEW_KEY, on_pin=lambda: _on_pin(VIEW_KEY, analysis.clip))
    return True


def predictions(analysis: Analysis, k: int = 5, query: Query | None = None) -> None:
    """The model's top-k classes as a horizontal bar chart; for a dense model (one label per
    position, the demo models), its label at the query."""
    import plotly.graph_objects as go

    from ..video import OutsideCropError

    top = analysis.top_predictions(k)
    title = "Prediction"
    if analysis.dense_probs is not None and query is not None:
        try:
            top = analysis.predictions_at(query.frame, query.x, query.y, k)
            title = f"Label at the query (frame {query.frame})"
        except OutsideCropError:
            title = "Prediction (share of positions per label: the query is outside what the model sees)"
    st.subheader(title)
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
        return compute(capture_for(analysis, block), analysis.clip, block, query.frame, query.x, query.y,
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


def reverse_strip(analysis: Analysis, rview, query: Query) -> None:
    """Every query's weight on the clicked key, drawn over the frames; the key's region outlined."""
    from ..render import draw_rect

    clip = analysis.clip
    factor = analysis.thumbs[1]
    frames, (x0, y0, x1, y1) = rview.region
    heads = head_words(analysis, rview.block)
    st.subheader(f"Who attends here: {rview.block}{f' ({heads})' if heads else ''}, every frame")
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
    heads = head_words(analysis, view.block)
    st.subheader(f"Where it attends: {view.block}{f' ({heads})' if heads else ''}, every frame")
    captions = []
    for k in range(len(clip.frames)):
        mark = " ◀ query" if k == query.frame else ""
        captions.append(f"frame {k} (src {clip.indices[k]}){mark}")
    images = [img for img in view.overlays]
    from ..render import draw_marker

    images[query.frame] = draw_marker(images[query.frame], query.x * analysis.thumbs[1], query.y * analysis.thumbs[1])
    window = window_region(analysis, view.block, view.cell)
    if window is not None:  # the query's (shifted) window: keys outside it are exactly 0
        from ..render import draw_rect

        f = analysis.thumbs[1]
        frames, (x0, y0, x1, y1) = window
        for k in frames:
            images[k] = draw_rect(images[k], (x0 * f, y0 * f, x1 * f, y1 * f), color=(0, 200, 255), thickness=2)
    st.image(images, caption=captions, width=192)
    dimmed = ""
    if np.isnan(view.heat).any():
        dimmed = (" Dimmed: pixels the model does not see, and the query's own neighbourhood (hidden)." if hidden
                  else " Dimmed: pixels the model does not see.")
    win = (" Blue box: the query's window (the keys it sees; every other key's weight is exactly 0)."
           if window is not None else "")
    st.caption(colorbar_caption(view) + dimmed + win + extra_words(analysis, view.block, view.cell))


def attention_numbers(analysis: Analysis, view) -> None:
    """Temporal profile of the attention mass, entropy, share in the query's own frame."""
    import plotly.graph_objects as go

    c1, c2, c3 = st.columns(3)
    c1.metric("Entropy", f"{view.entropy:.2f} nats" if np.isfinite(view.entropy) else "– (all weights 0)",
              help=f"Uniform attention over all keys: {view.max_entropy:.2f} nats.")
    c2.metric("Mass in the query's own time slice", f"{view.own_slice_share:.1%}")
    c3.metric("Largest weight", f"{float(abs(view.row).max()):.3g}")
    extra = extra_weight(analysis, view.block, view.cell)
    if extra is not None:
        label = analysis.capture[view.block].extra_label or "tokens off the grid"
        st.caption(f"{label[:1].upper() + label[1:]}: {extra:.1%} of the row (a weight beside the map, never drawn "
                   "on the frames).")
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
                v = query_view(capture_for(analysis, b.name), analysis.clip, b.name, query.frame, query.x, query.y,
                               thumbs=analysis.thumbs, hide_own=hide_own, style=style)
            except ValueError as e:
                st.warning(f"{b.name}: {e}")
                continue
            cols = min(16, len(v.overlays))
            heads = head_words(analysis, b.name)
            st.image(montage(list(v.overlays), cols), width="stretch",
                     caption=f"{b.name}{f' ({heads})' if heads else ''}: {colorbar_caption(v)}"
                             f"{extra_words(analysis, b.name, v.cell)}")


def _spec_for(model_name: str, video: VideoChoice, sampling: Sampling, view, query: Query, head: int | None = None):
    """The JSON view spec of what is on screen (hashes computed only when asked for)."""
    from dataclasses import asdict

    from ..export import ViewSpec, checkpoint_sha256, video_sha256, view_spec
    from .models import FILE_PREFIX, is_file

    model = model_name[len(FILE_PREFIX):] if is_file(model_name) else model_name
    if video.path is not None:
        return view_spec(model, video.video_id, sampling, view.block, query.frame, query.x, query.y, view.pairwise,
                         head=head)
    return ViewSpec(model=model, checkpoint_sha256=checkpoint_sha256(model), video=video.label,
                    video_sha256=video_sha256(video.data), sampling=asdict(sampling), frame=query.frame,
                    x=query.x, y=query.y, block=view.block, pairwise=view.pairwise, head=head)


def export_buttons(model_name: str, video: VideoChoice, sampling: Sampling, analysis: Analysis, view,
                   query: Query) -> None:
    """Downloads of the current view: PNG montage, GIF and MP4 of the overlays, the raw row, the view spec.

    Files are made when a button is pressed (deferred), so a click on the frame costs nothing extra.
    """
    from .. import export

    stem = export.export_stem(view.block, query.frame, query.x, query.y, picked_head(analysis, view.block))
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
                             lambda: export.spec_json(_spec_for(model_name, video, sampling, view, query,
                                                                  head=picked_head(analysis, view.block))),
                             f"{stem}.json", "application/json", key="export_json", on_click="ignore",
                             help="Model and video (with their sha256), sampling, frame, pixel and block: "
                                  "`nlviz.export.reproduce` recomputes this view from it.")
        st.caption("The same files from the command line: `nlviz attend VIDEO --model NAME --frame F --xy X Y`. "
                   "The page's address also holds this view: copy it to share it.")
