"""nlviz: Explore page (placeholder until the Explore page lands)."""

import streamlit as st

st.set_page_config(page_title="nlviz", layout="wide")
st.title("nlviz")
st.write("See what the non-local blocks of a video network attend to. The Explore page is on its way.")
