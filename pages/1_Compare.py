"""nlviz — Compare: one query, several models (pairwise-function variants) side by side."""

from __future__ import annotations

import streamlit as st

from nlviz import ui
from nlviz.ui import compare as cmp

st.set_page_config(page_title="nlviz · Compare", page_icon=":eye:", layout="wide", menu_items=ui.MENU_ITEMS)
ui.nav()
ui.restore_view()

names = cmp.models_picker()
if not names:
    st.stop()
video = ui.video_picker(default=ui.default_video_for(names[0]))
sampling = ui.sampling_controls(ui.model_spec(names[0]))
interactive = ui.interactive_toggle()
if video is None:
    st.stop()
analyses = cmp.analyses_or_error(names, video, sampling)
if analyses is None:
    st.stop()

first = analyses[names[0]]
ui.caption_for(names[0], video, first)
c1, c2 = st.columns([1, 1], vertical_alignment="bottom")
with c1:
    shared = cmp.scale_toggle()
with c2:
    style = ui.overlay_style()


@st.fragment
def view() -> None:
    """What a click changes: the pinned query's numbers in every column; reruns alone."""
    query = ui.query_state(first, default=ui.sample_query(video))
    ui.write_view(names[0], video, query, None, models=",".join(names), view="" if interactive else "server")
    comp = cmp.comparison_or_error(analyses, query, shared)
    if interactive and comp is not None:
        st.caption("Hover any frame of any column: every column shows the same pixel of the same source frame, each "
                   "model's own row computed in your browser. Click to pin it; rows pair blocks by name, else by stage.")
        drawn = cmp.hover_grid(comp, analyses, video, sampling, style=style)
        ui.query_inputs(first)
    else:
        drawn = False
        ui.query_frame(first, query)
    if comp is not None:
        if not drawn:
            cmp.comparison_grid(comp, analyses)
        cmp.comparison_metrics(comp)


view()
ui.how_to_read()
