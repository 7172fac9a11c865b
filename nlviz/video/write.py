"""Writing frames to files: :func:`write_mp4` (browser-playable H.264), :func:`encode_mp4` (the
same in memory) and :func:`write_gif` (a looping animated GIF)."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by repeating the last row/column once (yuv420p needs even sizes)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _encode_h264(frames: np.ndarray, target: str | BinaryIO, fps: float, crf: int, options: dict[str, str]) -> None:
    frames = _even(_check_frames(frames))
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    with av.open(target, "w", format="mp4", options=options) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "profile": "high"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0, *, crf: int = 18) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as a browser-playable MP4; returns the path.

    H.264 (libx264, High profile, yuv420p, ``crf`` quality) with the index at the front
    (faststart). yuv420p needs even sizes: an odd height or width is padded by repeating the
    last row or column once (nothing is cut). A partly written file is removed on error.
    """
    path = Path(path)
    try:
        _encode_h264(frames, str(path), fps, crf, {"movflags": "+faststart"})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def encode_mp4(frames: np.ndarray, fps: float = 8.0, *, crf: int = 18) -> bytes:
    """Like :func:`write_mp4`, in memory: fragmented MP4 bytes (plays in browsers, e.g. ``st.video``)."""
    buffer = io.BytesIO()
    _encode_h264(frames, buffer, fps, crf, {"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    return buffer.getvalue()


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as a looping animated GIF; returns the path.

    With Pillow (installed with matplotlib) each frame gets its own adaptive 256-colour
    palette; without it PyAV's GIF encoder uses a fixed 3-3-2 palette. GIF delays are in
    hundredths of a second, so the rate is rounded to that.
    """
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    try:
        try:
            from PIL import Image
        except ImportError:
            Image = None
        if Image is not None:
            images = [Image.fromarray(np.ascontiguousarray(f), "RGB") for f in frames]
            delay = max(20, int(round(100.0 / fps)) * 10)  # milliseconds, whole hundredths
            images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=delay, loop=0)
        else:
            with av.open(str(path), "w", format="gif") as out:
                stream = out.add_stream("gif", rate=Fraction(fps).limit_denominator(100))
                stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb8"
                for f in frames:
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
                out.mux(stream.encode(None))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
