"""nlviz — Compare: one click, several models (pairwise-function variants) side by side."""

from __future__ import annotations

import streamlit as st

from nlviz import ui
from nlviz.ui import compare as cmp

st.set_page_config(page_title="nlviz · Compare", page_icon=":eye:", layout="wide", menu_items=ui.MENU_ITEMS)
ui.nav()
ui.restore_view()
st.title("Compare")

names = cmp.models_picker()
if not names:
    st.stop()
video = ui.video_picker(default=ui.default_video_for(names[0]))
sampling = ui.sampling_controls(ui.model_spec(names[0]))
if video is None:
    st.stop()
analyses = cmp.analyses_or_error(names, video, sampling)
if analyses is None:
    st.stop()

first = analyses[names[0]]
ui.caption_for(names[0], video, first)
query = ui.query_state(first)
ui.write_view(names[0], video, query, None, models=",".join(names))
left, right = st.columns([3, 2], gap="medium")
with left:
    ui.query_frame(first, query)
with right:
    shared = cmp.scale_toggle()
    st.caption("The click is in the first model's frame; every model gets the same pixel of the same source "
               "frame. Rows pair blocks by name, else by stage.")
comp = cmp.comparison_or_error(analyses, query, shared)
if comp is not None:
    cmp.comparison_grid(comp, analyses)
    cmp.comparison_metrics(comp)
ui.how_to_read()
