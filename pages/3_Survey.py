"""nlviz — Survey: attention statistics of every block over a whole set of clips, several models compared."""

from __future__ import annotations

import streamlit as st

from nlviz import ui
from nlviz.ui import survey

st.set_page_config(page_title="nlviz · Survey", page_icon=":eye:", layout="wide", menu_items=ui.MENU_ITEMS)
ui.nav()
st.title("Survey")

out, run_first = survey.source()
if out is None:
    st.info("Pick at least one model in the sidebar, or give the folder of a survey (`nlviz survey ... --out DIR`).")
    st.stop()
if run_first and not survey.run_bundled(out):
    st.stop()
loaded = survey.results(out)
if loaded is None:
    st.stop()
df, errors, summary = loaded
if df.empty:
    st.warning(f"Every clip of {out} failed ({errors} error rows); see `nlviz survey`'s output.")
    st.stop()
survey.caption(df, errors, summary)
survey.charts(df)
survey.block_table(df, out)
