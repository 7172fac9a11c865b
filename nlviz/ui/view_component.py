"""The attention view component: hover any pixel of any frame, every frame's overlay follows.

Two Streamlit custom components (v2, inline JS and CSS shipped in this package; no build step):

- ``nlviz.attention_view`` gets one bytes payload per (analysis, block) (:mod:`nlviz.viewdata`):
  the frames and the block's factors. It computes rows in the browser on hover and sends a
  trigger ``pin`` = {frame, x, y, view} on click. Its data never changes while the analysis and
  block stay the same, so Streamlit sends it once (later reruns cost a reference, not the bytes);
- ``nlviz.attention_control`` gets the small state that changes per click: the pinned query of
  each view, the overlay style, the hidden neighbourhood, the shared-scale switch and, for
  blocks over the browser's budget, the row Python computed for the pinned query.

Both talk through a bus on ``window`` (see ``attention_view.js``). Python stays the reference:
the browser's rows are tested against :meth:`nlviz.capture.BlockCapture.row` in Chromium.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import streamlit as st

from .. import viewdata
from ..explore import Analysis

_HERE = Path(__file__).resolve().parent

_CSS = """
:host { display: block; }
.nlv-root { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #222); }
.nlv-top { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: center; justify-content: space-between;
           margin-bottom: 4px; font-size: 0.85rem; min-height: 1.4rem; }
.nlv-legend { display: flex; gap: 6px; align-items: center; }
.nlv-bar { width: 160px; height: 10px; border: 1px solid rgba(128,128,128,.5); }
.nlv-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(var(--nlv-tile, 168px), 1fr)); gap: 6px;
            outline: none; }
.nlv-grid:focus-visible { outline: 1px dotted rgba(128,128,128,.6); outline-offset: 2px; }
.nlv-cell { margin: 0; }
.nlv-cell canvas { width: 100%; height: auto; display: block; cursor: crosshair; border-radius: 2px;
                   outline: 3px solid transparent; }
.nlv-cell.nlv-query canvas { outline-color: #00c853; }
.nlv-cell figcaption { font-size: 0.72rem; opacity: 0.75; text-align: center; white-space: nowrap; }
.nlv-note { font-size: 0.8rem; opacity: 0.8; margin-top: 4px; }
.nlv-error { color: #b00020; }
.nlv-compact .nlv-status { display: none; }
.nlv-compact .nlv-legend { flex-direction: column; align-items: stretch; gap: 0; width: 100%; font-size: 0.72rem; }
.nlv-compact .nlv-bar { width: 100%; }
.nlv-compact .nlv-top { min-height: 0; }
"""

# The control channel's module: it only hands its data to the bus the view module listens on.
_CONTROL_JS = """
export default function (component) {
  const { data } = component;
  if (!data || !data.group) return;
  const key = "__nlvizAttentionBus";
  if (!window[key]) window[key] = { views: new Map(), control: new Map(), hover: new Map(), frameRequested: new Set() };
  window[key].control.set(data.group, data);
  window.dispatchEvent(new CustomEvent("nlviz-control", { detail: data.group }));
}
"""


@lru_cache(maxsize=1)
def _components():
    js = (_HERE / "attention_view.js").read_text()
    view = st.components.v2.component("nlviz.attention_view", html='<div class="nlv-root"></div>', css=_CSS, js=js)
    control = st.components.v2.component("nlviz.attention_control", html="<span hidden></span>", js=_CONTROL_JS)
    return view, control


@st.cache_resource(max_entries=16, show_spinner=False)
def _payload(cache_key: tuple, block: str, group: str, view_id: str, min_tile: int, _analysis: Analysis) -> bytes:
    b = _analysis.capture[block]
    labels = {"group": group, "view_id": view_id, "block": block, "min_tile": min_tile}
    return viewdata.pack(b, _analysis.clip, labels=labels, frames_jpeg=_atlas(cache_key, _analysis))


@st.cache_resource(max_entries=8, show_spinner=False)
def _atlas(cache_key: tuple, _analysis: Analysis):
    return viewdata.atlas(_analysis.clip.frames)


def payload(cache_key: tuple, analysis: Analysis, block: str, *, group: str, view_id: str,
            min_tile: int = 168) -> bytes | None:
    """The bytes for one view, cached per (analysis, block); None (and a warning) if they cannot be made.

    ``min_tile``: the smallest width of a frame on the page, in CSS pixels (the grid fits as many
    frames a row as the width allows)."""
    try:
        return _payload(cache_key, block, group, view_id, int(min_tile), analysis)
    except Exception as e:  # a defect: the page falls back to the server-drawn strip, and says why
        import logging

        logging.getLogger("nlviz").exception("view payload failed")
        st.warning(f"The interactive view could not be prepared ({type(e).__name__}: {e}); showing the "
                   "server-drawn strip instead.")
        return None


def in_browser(analysis: Analysis, block: str) -> bool:
    """Whether this block's rows are computed in the browser (within the budget) or on the server."""
    return viewdata.fits_budget(analysis.capture[block])


def attention_view(data: bytes, *, key: str, on_pin=None):
    """Mount the view (its data is sent once per (analysis, block)); returns the component's result."""
    view, _ = _components()
    return view(data=data, key=key, on_pin_change=on_pin or (lambda: None), height="content")


def attention_control(group: str, *, pins: dict, style: str = "heat", hide_own: int | None = None,
                      shared: bool = False, rows: dict | None = None, heads: dict | None = None, key: str) -> None:
    """Send the small per-click state of a group of views: pinned queries (per view id), style, ...

    ``rows``: {view_id: {"frame", "x", "y", "values"[, "extra"]}}: server-computed rows for
    over-budget blocks ("extra": the share on tokens off the grid). ``heads``: {view_id: head or
    None}: the head a multi-head block's view shows (None or absent: the mean over heads).
    """
    _, control = _components()
    control(data={"group": group, "pins": pins, "style": style, "hide_own": hide_own, "shared": bool(shared),
                  "rows": rows or {}, "heads": heads or {}}, key=key, height=0)


def pin_value(key: str) -> dict | None:
    """The pin a click just sent ({frame, x, y, view}), read in the component's change callback."""
    state = st.session_state.get(key)
    value = state.get("pin") if state is not None else None
    return value if isinstance(value, dict) else None
