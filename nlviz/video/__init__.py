"""Video input: decode, sample and preprocess a clip as a model expects; map original <-> model pixels.

    clip = load_clip("walk.mp4", spec=model.spec)          # num_frames x stride from the middle
    clip = load_clip(data, spec=model.spec, uniform=True)  # bytes, evenly spread over the video
    clip.frames      # (T, H, W, 3) uint8 RGB, the sampled frames as shown to the user
    clip.input       # (1, 3, T, H_in, W_in) float32, normalized as the model was trained
    clip.geometry    # ClipGeometry: displayed frame (k, x, y) <-> model input (t, y, x)
    clip.notes       # what was done that the user should know (looping, lower stride, ...)

The package, one seam a module (every name is imported here: ``from nlviz.video import X``):

- :mod:`~nlviz.video.errors`: :class:`VideoError` and its subclasses; messages meant for the user.
- :mod:`~nlviz.video.geometry`: :class:`ClipGeometry` (displayed frame <-> model input, exact
  arithmetic on continuous coordinates) and :class:`Clip`.
- :mod:`~nlviz.video.source`: the input's bytes (path, bytes, file-like), recognised and checked
  before FFmpeg sees them, reopenable as PyAV containers.
- :mod:`~nlviz.video.decode`: :func:`probe`, :func:`load_clip`: frame numbering, the decode plan
  (seek or decode on), decoding only the sampled frames, preprocessing as the model's
  :class:`~nlviz.spec.ClipSpec` says.
- :mod:`~nlviz.video.write`: :func:`write_mp4` (browser-playable H.264), :func:`encode_mp4`,
  :func:`write_gif`.
"""

from __future__ import annotations

from .decode import MAX_FRAME_MEMORY, MAX_SIDE, SEEK_MARGIN, Progress, VideoInfo, load_clip, probe
from .decode import _Video  # noqa: F401  (private: tests count its decoding)
from .errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    OutsideCropError,
    UnsupportedCodecError,
    VideoError,
    VideoNotFoundError,
    VideoTooLargeError,
    VideoTooShortError,
)
from .geometry import Clip, ClipGeometry
from .source import MAX_BYTES, MAX_DIMENSION, Source
from .write import encode_mp4, write_gif, write_mp4

__all__ = [
    "MAX_BYTES",
    "MAX_DIMENSION",
    "MAX_FRAME_MEMORY",
    "MAX_SIDE",
    "SEEK_MARGIN",
    "Progress",
    "Source",
    "Clip",
    "ClipGeometry",
    "CorruptVideoError",
    "EmptyVideoError",
    "NotAVideoError",
    "OutsideCropError",
    "UnsupportedCodecError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoTooLargeError",
    "VideoTooShortError",
    "encode_mp4",
    "load_clip",
    "probe",
    "write_gif",
    "write_mp4",
]
