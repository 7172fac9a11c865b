"""Streamlit pieces of the Compare page: several models, one click, side by side."""

from __future__ import annotations

import math

import streamlit as st

from .. import zoo
from ..explore import Analysis, Sampling
from .models import model_info, model_options, option_label

MAX_MODELS = 4
COMPARE_WIDTH = 96  # px per frame in a cell: a column holds a 4x4 grid of frames in a quarter of the page
COMPARE_TILE = 72  # smallest frame width in a hover view's cell, CSS px (4 models: 3 frames a row)
KINETICS_VARIANTS = ("embedded_gaussian", "gaussian", "dot_product")


def default_models() -> list[str]:
    """mmaction2's three Kinetics variants when all are on disk, else the bundled demo variants."""
    options = model_options()
    kinetics = [f"i3d_nl5_r50.kinetics400_mmaction2_{p}" for p in KINETICS_VARIANTS]
    if all(k in options for k in kinetics):
        return kinetics
    return [n for n in options if zoo.get(n).source == "demo"][:MAX_MODELS]


def models_picker(*, key: str = "compare_models") -> list[str]:
    """Sidebar multiselect of 2-4 loadable models (local checkpoints chosen on Explore included)."""
    ss = st.session_state
    options = model_options() + list(ss.get("model_local", []))
    if key not in ss or not set(ss[key]) <= set(options):
        ss[key] = [m for m in default_models() if m in options]
    chosen = st.sidebar.multiselect("Models", options, key=key, max_selections=MAX_MODELS, format_func=option_label,
                                    help="2 to 4 models; the first one's frame is the one you click.")
    if len(chosen) < 2:
        st.info("Pick at least two models in the sidebar to compare them.")
        return []
    return chosen


def analyses_or_error(names: list[str], video, sampling: Sampling) -> dict[str, Analysis] | None:
    """Each model's cached analysis of the same video and sampling, with progress; None on error."""
    from . import analysis_or_error

    out = {}
    bar = st.progress(0.0, text="Running the models...") if len(names) > 1 else None
    for i, name in enumerate(names):
        if bar is not None:
            bar.progress(i / len(names), text=f"Running {name} ({i + 1} of {len(names)})...")
        a = analysis_or_error(name, video, sampling)
        if a is None:
            if bar is not None:
                bar.empty()
            return None
        out[name] = a
    if bar is not None:
        bar.empty()
    return out


def scale_toggle(*, key: str = "compare_shared") -> bool:
    st.session_state[key] = bool(st.session_state.get(key, True))
    return st.toggle("One colour scale per block row", key=key,
                     help="On: colours mean the same weight in every column of a row. Off: each model uses its "
                          "own range (see the numbers under each picture).")


def comparison_or_error(analyses: dict[str, Analysis], query, shared: bool):
    """The comparison for the query, or a warning when the first model does not see the pixel."""
    from ..compare import compare
    from ..video import OutsideCropError

    try:
        return compare(analyses, query.frame, query.x, query.y, shared_scale=shared, thumb_width=COMPARE_WIDTH)
    except OutsideCropError as e:
        st.warning(f"{str(e).rstrip('.')}. Click inside the frame, or inside the yellow rectangle.")
        return None


def _scale_words(scale) -> str:
    if scale.signed:
        return f"f/N (not probabilities) {scale.vmin:.3g} (blue) · 0 · {scale.vmax:.3g} (red)"
    return f"softmax weights 0 … {scale.vmax:.3g}"


def comparison_grid(comp, analyses: dict[str, Analysis]) -> None:
    """A column per model, a row per comparable block: overlays of every frame, notes where empty."""
    from ..compare import cell_image

    cols = st.columns(len(comp.models))
    for col, m in zip(cols, comp.models):
        info = model_info(m)
        col.markdown(f"**{info.label}**  \n{info.kind}")
    for row in comp.rows:
        st.markdown(f"##### {row.label}")
        views = [comp.views[(row.label, m)] for m in comp.models]
        shared = comp.scale.get(row.label, {})
        if shared:
            st.caption("Shared colour scale" + ("s: " if len(shared) > 1 else ": ")
                       + "; ".join(_scale_words(s) for s in shared.values()) + ".")
        cols = st.columns(len(comp.models))
        for col, m, v in zip(cols, comp.models, views):
            note = comp.notes.get((row.label, m))
            if v is None:
                col.info(note or "no view")
                continue
            col.image(cell_image(comp, (row.label, m)), width="stretch")
            if not v.row.any():
                col.caption("Every weight is 0: this block passes nothing on for this query (a dead ReLU in "
                            "the concatenation function, for instance).")
                continue
            words = f"H = {v.entropy:.2f} of {v.max_entropy:.2f} nats"
            if not comp.shared_scale:
                words += f" · {_scale_words(v.scale)}"
            col.caption(words + (f" · {note}" if note else ""))


def _on_pin(key: str, clip, ref_clip) -> None:
    """A click in any column pins the query: mapped into the first model's frame, the page's query."""
    from ..compare import map_query
    from .view_component import pin_value

    pin = pin_value(key)
    if not pin:
        return
    try:
        (frame, x, y), _ = map_query(clip, ref_clip, int(pin["frame"]), float(pin["x"]), float(pin["y"]))
    except (KeyError, TypeError, ValueError):
        return
    h, w = ref_clip.frames.shape[1:3]
    ss = st.session_state
    ss["q_frame"] = min(max(int(frame), 0), len(ref_clip.frames) - 1)
    ss["q_x"], ss["q_y"] = min(max(x, 0.0), w - 0.01), min(max(y, 0.0), h - 0.01)


def hover_grid(comp, analyses: dict[str, Analysis], video, sampling, *, style: str = "heat") -> bool:
    """A column per model, a row per comparable block, each cell the hover view of that block: hovering
    any column's frame drives every column (each computes its own row from its own factors)."""
    from . import view_key
    from . import view_component as av

    ref = analyses[comp.models[0]].clip
    cols = st.columns(len(comp.models))
    for col, m in zip(cols, comp.models):
        info = model_info(m)
        col.markdown(f"**{info.label}**  \n{info.kind}")
    pins, rows, mounts = {}, {}, []
    for r, row in enumerate(comp.rows):
        for i, m in enumerate(comp.models):
            name = row.blocks.get(m)
            if name is None:
                mounts.append((r, i, m, None, None))
                continue
            vid = f"compare-{r}-{i}"
            a = analyses[m]
            data = av.payload(view_key(m, video, sampling), a, name, group="compare", view_id=vid,
                              min_tile=COMPARE_TILE)
            if data is None:
                return False
            q = comp.queries[m]
            pins[vid] = {"frame": q[0], "x": q[1], "y": q[2]}
            v = comp.views.get((row.label, m))
            if v is not None and not av.in_browser(a, name):
                rows[vid] = {"frame": q[0], "x": q[1], "y": q[2], "values": [float(x) for x in v.row.ravel()]}
            mounts.append((r, i, m, vid, data))
    av.attention_control("compare", pins=pins, style=style, shared=comp.shared_scale, rows=rows,
                         key="compare_control")
    for r, row in enumerate(comp.rows):
        st.markdown(f"##### {row.label}")
        cols = st.columns(len(comp.models))
        for (rr, i, m, vid, data), col in zip([x for x in mounts if x[0] == r], cols):
            with col:
                if data is None:
                    st.info(comp.notes.get((row.label, m)) or "no view")
                    continue
                key = f"compare_view_{vid}"
                av.attention_view(data, key=key, on_pin=lambda key=key, clip=analyses[m].clip: _on_pin(key, clip, ref))
                v, note = comp.views.get((row.label, m)), comp.notes.get((row.label, m))
                if v is not None:
                    words = f"pinned: H = {v.entropy:.2f} of {v.max_entropy:.2f} nats"
                    if not v.row.any():
                        words = "pinned: every weight is 0 (this block passes nothing on for this query)"
                    st.caption(words + (f" · {note}" if note else ""))
                elif note:
                    st.caption(note)
    return True


def _num(v: float, fmt: str) -> str:
    return "–" if v is None or not math.isfinite(v) else format(v, fmt)


def comparison_metrics(comp) -> None:
    """Per row: each model's entropy and own-frame mass; each pair's correlation and JS divergence."""
    with st.expander("How alike are they? (metrics on the pixel grid)", expanded=True):
        for row in comp.rows:
            m = comp.metrics[row.label]
            if not m.models:
                continue
            st.markdown(f"**{row.label}**")
            st.dataframe([{"model": name, "entropy (nats)": _num(mm.entropy, ".2f"),
                           "max (nats)": _num(mm.max_entropy, ".2f"),
                           "mass in the query's frame": _num(mm.own_frame_mass, ".1%"),
                           "mass in its time slice": _num(mm.own_slice_share, ".1%")}
                          for name, mm in m.models.items()], hide_index=True, width="stretch")
            if m.pairs:
                st.dataframe([{"models": f"{a} · {b}", "correlation": _num(p.correlation, ".3f"),
                               "JS divergence (bits)": _num(p.jsd, ".3f"), "frames": p.shared_frames}
                              for (a, b), p in m.pairs.items()], hide_index=True, width="stretch")
        st.caption("Maps are compared where you see them: each key's weight is spread over the pixels and frames "
                   "it covers, on one pixel grid, so models with different grids compare fairly. JS divergence: "
                   "0 = the same map, 1 = no overlap (signed variants: of |weight|). Correlation is of the signed maps.")
