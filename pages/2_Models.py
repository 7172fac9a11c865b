"""nlviz — Models: the zoo, downloads, local checkpoints, and what each non-local block does."""

from __future__ import annotations

import streamlit as st

from nlviz import ui

st.set_page_config(page_title="nlviz · Models", page_icon=":eye:", layout="wide", menu_items=ui.MENU_ITEMS)
ui.nav()
st.title("Models")

ui.zoo_table()
ui.zoo_downloads()

st.header("Architecture")
st.caption("Pick a model (bundled, downloaded, or a local checkpoint) and a clip in the sidebar: the table "
           "lists its non-local blocks with their grids on that clip and statistics of their attention over "
           "256 query cells per block drawn with a fixed seed (or over every query, with the toggle below), "
           "among them GCNet's measure of how much the map depends on the query.")
model_name = ui.model_picker()
if model_name is None:
    st.stop()
video = ui.video_picker(default=ui.default_video_for(model_name))
sampling = ui.sampling_controls(ui.model_spec(model_name))
if video is None:
    st.stop()
analysis = ui.analysis_or_error(model_name, video, sampling)
if analysis is None:
    st.stop()
ui.caption_for(model_name, video, analysis)
ui.architecture(model_name, video, sampling, analysis)
