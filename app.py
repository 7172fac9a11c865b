"""nlviz — Explore: click a pixel, see where it attends in every frame, block by block."""

from __future__ import annotations

import streamlit as st

from nlviz import ui
from nlviz.explore import Sampling

st.set_page_config(page_title="nlviz · Explore", page_icon=":eye:", layout="wide", menu_items=ui.MENU_ITEMS)
ui.nav()
ui.restore_view()  # a shared link: its model, video, frame, pixel and block

model_name = ui.model_picker()
if model_name is None:
    st.stop()
video = ui.video_picker(default=ui.default_video_for(model_name))
sampling: Sampling = ui.sampling_controls(ui.model_spec(model_name))
if video is None:
    st.stop()
analysis = ui.analysis_or_error(model_name, video, sampling)
if analysis is None:
    st.stop()

st.title("Explore")
ui.caption_for(model_name, video, analysis)
query = ui.query_state(analysis)
block = ui.block_picker(analysis)
c1, c2 = st.columns(2)
with c1:
    reverse = ui.direction_toggle()
with c2:
    hide_own = ui.hide_own_toggle(default=ui.model_info(model_name).probe)
ui.write_view(model_name, video, query, block, reverse="1" if reverse else "")

left, right = st.columns([3, 2], gap="medium")
with left:
    ui.query_frame(analysis, query)
with right:
    ui.predictions(analysis)
if reverse:  # the clicked pixel as a key: which queries attend to it
    rview = ui.reverse_view_or_error(analysis, block, query)
    if rview is not None:
        ui.reverse_strip(analysis, rview, query)
else:
    view = ui.query_view_or_error(analysis, block, query, hide_own=hide_own)
    if view is not None:
        ui.attention_strip(analysis, view, query, hidden=hide_own is not None)
        ui.attention_numbers(analysis, view)
        ui.topk_arrows(analysis, view, query)
        ui.all_blocks(analysis, query, hide_own=hide_own)
        ui.export_buttons(model_name, video, sampling, analysis, view, query)
ui.how_to_read()
