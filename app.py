"""nlviz — Explore: hover or click a pixel, see where it attends in every frame, block by block."""

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
interactive = ui.interactive_toggle()
if video is None:
    st.stop()
analysis = ui.analysis_or_error(model_name, video, sampling)
if analysis is None:
    st.stop()

ui.caption_for(model_name, video, analysis)
c = st.columns([4, 2, 2, 2], vertical_alignment="bottom")
with c[0]:
    block = ui.block_picker(analysis)
with c[1]:
    style = ui.overlay_style()
with c[2]:
    reverse = ui.direction_toggle()
with c[3]:
    hide_own = ui.hide_own_toggle(default=ui.model_info(model_name).probe)


@st.fragment
def view() -> None:
    """What a click changes (the pinned query): reruns alone, the sidebar and pickers stay as they are."""
    query = ui.query_state(analysis, default=ui.sample_query(video))
    ui.write_view(model_name, video, query, block, reverse="1" if reverse else "",
                  view="" if interactive else "server")
    if reverse:  # the clicked pixel as a key: which queries attend to it
        ui.query_frame(analysis, query)
        rview = ui.reverse_view_or_error(analysis, block, query)
        if rview is not None:
            ui.reverse_strip(analysis, rview, query)
        return
    top = st.container()  # the view stays put above any warning about the query
    qview = ui.query_view_or_error(analysis, block, query, hide_own=hide_own, style=style)
    with top:
        hover = interactive and ui.attention_view(model_name, video, sampling, analysis, block, query,
                                                  hide_own=hide_own, style=style, view=qview)
    if hover:
        ui.query_inputs(analysis)
    else:
        ui.query_frame(analysis, query)
        if qview is not None:
            ui.attention_strip(analysis, qview, query, hidden=hide_own is not None)
    if qview is None:
        return
    left, right = st.columns([3, 2], gap="medium")
    with left:
        ui.attention_numbers(analysis, qview)
    with right:
        ui.predictions(analysis, query=query)
    ui.topk_arrows(analysis, qview, query)
    ui.all_blocks(analysis, query, hide_own=hide_own, style=style)
    ui.export_buttons(model_name, video, sampling, analysis, qview, query)


view()
ui.how_to_read()
