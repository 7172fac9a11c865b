"""The view in the page's URL: a link opens the same model, video, frame, pixel and block.

    ?model=demo.embedded_gaussian&video=synthetic_11&frame=8&x=31.5&y=40.0&block=res3.1.nl
    (a multi-head block's picked head adds &head=2; none: the mean over heads)
    ?models=demo.gaussian,demo.dot_product&video=synthetic_11&frame=8&x=31.5&y=40.0   (Compare)
    ?model=i3d_inception.kinetics400_probe@tau=0.2&video=bigbuckbunny&...           (probe settings)
    ...&view=server                              (the server-drawn strip instead of the hover view)

Read once when a browser session starts (a shared link), written after every run (so the
address bar always holds the current view). Only bundled samples can be named in a URL; an
uploaded video leaves the ``video`` parameter out. Values that do not fit (an unknown model,
a frame or pixel outside the clip) are ignored and the page's defaults apply.
"""

from __future__ import annotations

import math

import streamlit as st

from .. import samples, zoo
from .models import is_file, restore_probe_settings

_RESTORED = "_url_restored"


def _number(text: str | None, kind: type) -> float | int | None:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def restore_view(*, model_key: str = "model", video_key: str = "video") -> None:
    """Put the URL's view into session state, once per browser session, before widgets are drawn."""
    ss = st.session_state
    if ss.get(_RESTORED):
        return
    ss[_RESTORED] = True
    qp = st.query_params
    model = qp.get("model")
    if model and is_file(model):
        ss[model_key] = model
    elif model and zoo.known(model):  # probe options go to their widgets, the entry to the picker
        ss[model_key] = restore_probe_settings(model, key=model_key)
    several = [m for m in (qp.get("models") or "").split(",") if zoo.known(m) or is_file(m)]
    if len(several) >= 2:
        ss["compare_models"] = several[:4]
    video = qp.get("video")
    if video and video in samples.bundled_samples():
        ss[video_key] = video
    for param, key, kind in (("frame", "q_frame", int), ("x", "q_x", float), ("y", "q_y", float)):
        value = _number(qp.get(param), kind)
        if value is not None:
            ss[key] = value
    if qp.get("block"):
        ss["block"] = qp.get("block")
    head = _number(qp.get("head"), int)
    if head is not None and head >= 0:  # the head picker falls back to the mean if the block has no such head
        ss["block_head"] = int(head)
    if qp.get("reverse") in ("1", "true"):
        ss["reverse"] = True
    if qp.get("view") in ("server", "hover"):
        ss["interactive"] = qp.get("view") == "hover"


def write_view(model: str, video, query, block: str | None, **extra: str) -> dict[str, str]:
    """Make the URL hold this view (``video``: a :class:`nlviz.ui.VideoChoice`); returns the parameters."""
    params = {"model": model}
    if video is not None and video.video_id.startswith("sample:"):
        params["video"] = video.label
    if query is not None:
        params.update(frame=str(query.frame), x=f"{query.x:.1f}", y=f"{query.y:.1f}")
    if block:
        params["block"] = block
        head = st.session_state.get("block_head")  # a multi-head block's picked head (absent: the mean)
        if isinstance(head, int) and not isinstance(head, bool):
            params["head"] = str(head)
    params.update({k: v for k, v in extra.items() if v})
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    return params
