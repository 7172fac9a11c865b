"""Inputs and the cached analysis: the video picker, sampling widgets, and decode + forward pass once.

Per-video work (decode + one forward pass with capture) is cached by the string key (model name,
its file stamp, video hash, sampling), bounded, and holds CPU tensors and numpy only.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import streamlit as st

from .. import samples
from ..explore import Analysis, Sampling, analyze
from .models import get_model, model_info, model_stamp


MAX_UPLOAD_MB = 200


@dataclass(frozen=True)
class VideoChoice:
    """A video picked in the sidebar: a stable id for cache keys, a label, and how to read it."""

    video_id: str  # "sample:<name>" or "upload:<sha256>"
    label: str
    path: str | None = None  # bundled sample
    data: bytes | None = None  # uploaded bytes


@st.cache_resource(max_entries=8, show_spinner=False)
def _analysis(model_name: str, model_stamp: str, video_id: str, sampling: Sampling, _video: VideoChoice) -> Analysis:
    model = get_model(model_name)
    source = _video.path if _video.path is not None else io.BytesIO(_video.data)
    return analyze(model, source, sampling)


def get_analysis(model_name: str, video: VideoChoice, sampling: Sampling) -> Analysis:
    """Decode + forward pass with capture, once per (model, video, sampling); bounded and shared."""
    return _analysis(model_name, model_stamp(model_name), video.video_id, sampling, video)


def sample_query(video: VideoChoice | None) -> tuple[int, float, float] | None:
    """A bundled sample's own first query (on an object, for the demo task's clips), else None."""
    if video is None or video.path is None:
        return None
    return samples.default_query(video.label)


def video_picker(*, key: str = "video", default: str | None = None) -> VideoChoice | None:
    """Sidebar: a bundled sample or an upload. Returns the choice, or None when nothing is usable."""
    bundled = samples.bundled_samples()
    options = list(bundled) + ["Upload a video..."]
    if st.session_state.get(key) not in options:  # a URL or another page may have set it already
        st.session_state[key] = default if default in options else options[0]
    choice = st.sidebar.selectbox("Video", options, key=key)
    if choice != "Upload a video...":
        return VideoChoice(f"sample:{choice}", choice, path=str(bundled[choice]))
    up = st.sidebar.file_uploader("Video file", type=["mp4", "webm", "mov", "avi", "mkv", "gif", "png", "jpg", "jpeg"],
                                  key=f"{key}_upload", help=f"Up to {MAX_UPLOAD_MB} MB.")
    if up is None:
        st.info("Upload a video in the sidebar, or pick a bundled sample.")
        return None
    data = up.getvalue()
    digest = _upload_digest(up.file_id, len(data), data)
    return VideoChoice(f"upload:{digest}", up.name, data=data)


def _upload_digest(file_id: str, size: int, data: bytes) -> str:
    """sha256 of an upload, computed once per uploaded file (remembered in the session)."""
    memo = st.session_state.setdefault("_upload_digests", {})
    if file_id not in memo:
        memo.clear()  # one upload at a time per session: keep the memo bounded
        memo[file_id] = hashlib.sha256(data).hexdigest()[:16]
    return memo[file_id]


def model_spec(model_name: str):
    """The clip spec of a model (zoo models: without loading it)."""
    return model_info(model_name).spec


def sampling_controls(spec, *, key: str = "sampling") -> Sampling:
    """Sidebar sampling widgets, defaulting to the model's own spec."""
    with st.sidebar.expander("Sampling", expanded=False):
        num_frames = st.number_input("Frames", 1, 128, int(spec.num_frames), key=f"{key}_frames",
                                     help=f"The model was trained on {spec.num_frames} frames.")
        uniform = st.checkbox("Spread over the whole video", False, key=f"{key}_uniform",
                              help="Evenly spaced frames instead of one every `stride` frames.")
        stride = st.number_input("Stride (source frames between samples)", 1, 64, int(spec.stride),
                                 key=f"{key}_stride", disabled=uniform)
        start = st.number_input("Start frame", 0, 1_000_000, 0, key=f"{key}_start", disabled=uniform)
        full = st.toggle("Full frame (fully convolutional)", False, key=f"{key}_full",
                         help=f"Off: the centre {spec.crop_size}x{spec.crop_size} crop the model was trained on. "
                              "On: the whole frame, resized so its short side is "
                              f"{spec.short_side} px, so you can click anywhere.")
    return Sampling(num_frames=int(num_frames), stride=None if uniform else int(stride),
                    start_frame=None if uniform else int(start), uniform=bool(uniform),
                    crop="full" if full else "center")


def analysis_or_error(model_name: str, video: VideoChoice, sampling: Sampling) -> Analysis | None:
    """The cached analysis, computed with a status box; a clear error (and None) on bad input."""
    from ..checkpoints import CheckpointError
    from ..download import DownloadError
    from ..video import VideoError
    from ..weights import WeightsError

    try:
        with st.spinner(f"Decoding {video.label} and running {model_name}..."):
            return get_analysis(model_name, video, sampling)
    except VideoError as e:
        st.error(f"Cannot use this video: {e}")
    except (WeightsError, CheckpointError, DownloadError) as e:
        st.error(f"Cannot load model {model_name}: {e}")
    except Exception as e:  # a defect: say so plainly, keep the server up, log the traceback
        import logging

        logging.getLogger("nlviz").exception("analysis failed")
        st.error(f"Something went wrong while analysing this video with {model_name}: {type(e).__name__}: {e}")
    return None


def view_key(model_name: str, video: VideoChoice, sampling: Sampling) -> tuple:
    """What identifies an analysis in the app's caches (model, its file stamp, video, sampling)."""
    return (model_name, model_stamp(model_name), video.video_id, sampling)
