"""Probing, sampling and decoding a video into a :class:`~nlviz.video.geometry.Clip`:
:func:`probe` and :func:`load_clip`, the decode plan (which frames, seek or decode on) and the
preprocessing to the model's input.

Decoding (PyAV, from a path, bytes or a binary file-like object; never a temporary file):

- Frame numbers come from presentation timestamps: frame index = round((pts - start) *
  time_base * fps). The frame taken for a requested index i is the first decoded frame whose
  index is >= i (for constant-rate video: frame i itself). Animated GIF/APNG, whose frame
  delays vary, are numbered by decoding order instead. The frame count comes from the
  container (MP4, AVI), else from duration x rate (WebM stores no count); it is made exact by
  a pass over the packet headers when it matters (uniform sampling, a clip near the end), and
  corrected when the stream ends earlier than announced (truncated files).
- Only the sampled frames are kept (converted to RGB), so memory is bounded by
  T x the displayed frame size whatever the video's length. Decoding seeks (to the keyframe
  before a sample, then decodes forward to it) whenever a keyframe lies between the last
  decoded frame and the next sample, and decodes straight on otherwise: sparse samples in
  short-GOP video cost a seek each, dense samples or long GOPs cost one forward pass.
  Keyframe positions come from the container index (MP4/MOV/AVI) or from one pass that
  reads packet headers without decoding (WebM/MKV/TS/FLV), done only when samples are far
  apart. Seeking is used in MP4/MOV, Matroska/WebM, AVI, MPEG-TS and FLV, where it lands on
  exactly the frames a sequential decode gives; other containers (MPEG-PS, GIF, ...) are
  decoded in one forward pass.
- Decoded frames are converted to RGB at their display size: rotated by the stream's display
  matrix (phone videos), stretched for non-square pixels, and, when the long side exceeds
  ``max_side`` (default 1280), downscaled right there by area averaging (swscale AREA), so a
  4K frame never exists in RGB. ``Clip.frames`` and all displayed-pixel coordinates refer to
  that displayed size; ``Clip.source_size`` keeps the full display size.
- Still images (PNG, JPEG, ..., or a one-frame GIF) give one frame repeated T times.

Preprocessing follows the model's :class:`~nlviz.spec.ClipSpec`: resize so the short side is
``spec.short_side`` with bilinear interpolation (``cv2.INTER_LINEAR``, as the mmaction2 and
Caffe2 pipelines do; new sizes rounded half up), then either a centre crop of
``spec.crop_size`` (offset ``(size - crop) // 2``) or the whole resized frame ("full",
fully convolutional); then channel order, (x - mean) / std per channel, float32.
"""

from __future__ import annotations

import itertools
import math
import os
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.video.reformatter
import cv2
import numpy as np
import torch

from ..spec import ClipSpec
from .errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    UnsupportedCodecError,
    VideoError,
    VideoTooLargeError,
    VideoTooShortError,
)
from .geometry import Clip, ClipGeometry
from .source import MAX_BYTES, MAX_DIMENSION, Source, _Source

Progress = Callable[[float, str], None]

MAX_SIDE = 1280  # default cap on the long side of the displayed frames (pixels)

MAX_FRAME_MEMORY = 4 << 30  # the kept RGB frames may not need more than this (bytes)
SEEK_MARGIN = 4  # a seek pays off when it skips decoding more than this many frames



@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from the header, without decoding the whole video."""

    format: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # decoder name, e.g. "h264"
    frames: int  # number of frames (estimated from duration x rate when the container stores none)
    fps: float
    duration: float  # seconds
    size: tuple[int, int]  # (W, H) coded size of the frames
    is_still: bool


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """Frames per second: the guessed constant rate when it agrees with the average rate."""
    avg, guess = stream.average_rate, stream.guessed_rate
    avg = Fraction(avg) if avg and avg > 0 else None
    guess = Fraction(guess) if guess and guess > 0 else None
    if avg and guess and abs(avg - guess) <= avg / 100:
        return guess
    return avg or guess or (Fraction(stream.base_rate) if stream.base_rate and stream.base_rate > 0 else None)


_SEQUENTIAL_FORMATS = ("gif", "apng", "webp")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _threads(codec) -> None:
    """Decoder threading: frame + slice threads when there are more than 2 CPUs.

    On 2 CPUs, FFmpeg's default (slice threads) measured ~10% faster than frame threads for
    1080p H.264, the main thread being busy with the rest of the work.
    """
    if _cpus() > 2:
        codec.thread_type = "AUTO"


class _EndOfStream(Exception):
    """The stream ended (or broke) before a requested frame; ``count`` frames were usable."""

    def __init__(self, count: int, damaged: bool = False) -> None:
        super().__init__(count)
        self.count, self.damaged = count, damaged


class _Video:
    """An open container and its video stream, with frame-number arithmetic and decoding."""

    def __init__(self, source: _Source, container: av.container.InputContainer) -> None:
        self.source, self.container = source, container
        streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not streams:
            if not container.streams:
                raise EmptyVideoError(f"{source.name} holds no video frame (the container is empty)")
            what = "audio only" if container.streams.audio else "no video stream"
            raise NotAVideoError(f"{source.name} holds no video ({what})")
        self.stream = stream = streams[0]
        self.stream_index = stream.index
        self.format = container.format.name
        codec = stream.codec_context
        if codec is None:
            raise UnsupportedCodecError(
                f"{source.name} uses a video codec this FFmpeg build cannot decode;"
                " re-encode it as H.264 (MP4) or VP9 (WebM)"
            )
        if codec.name in ("ansi", "text", "bintext", "xbin", "idf"):
            raise NotAVideoError(f"{source.name} is a text file, not a video or image")
        self.codec = codec
        self.width, self.height = codec.width, codec.height
        if max(self.width, self.height) > MAX_DIMENSION:
            raise VideoTooLargeError(
                f"{source.name} has frames of {self.width}x{self.height} pixels;"
                f" at most {MAX_DIMENSION} per side is supported"
            )
        _threads(codec)
        self.is_image = self.format == "image2" or self.format.endswith("_pipe")
        self.by_count = self.format in _SEQUENTIAL_FORMATS  # frame numbers = decoding order
        self.tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        self.start_pts = stream.start_time if stream.start_time is not None else 0
        fps = _rate(stream)
        self.fps = fps if fps else Fraction(25)
        ratio = self.tb * self.fps  # frames per pts unit
        self._num, self._den = ratio.numerator, ratio.denominator
        # seeking is trusted in containers where it was verified to land on the right frames; MPEG-PS,
        # for one, returns timestamps shifted by half a frame after a seek: decode those in one pass
        self.seekable = not (self.by_count or self.is_image) and any(
            name in self.format for name in ("mp4", "matroska", "avi", "mpegts", "flv")
        )
        self._keyframes: list[int] | None = None
        self._scanned_to: float = -1
        self.total, self.total_exact = self._count_frames()

    def _count_frames(self) -> tuple[int, bool]:
        s = self.stream
        if self.is_image:
            return 1, True
        if self.by_count:  # numbered by decoding order: count exactly (GIFs are small)
            return 0, False
        if s.frames and s.frames > 0:
            return int(s.frames), True
        if s.duration and s.duration > 0:
            return max(1, round(s.duration * self.tb * self.fps)), False
        if self.container.duration and self.container.duration > 0:
            seconds = Fraction(self.container.duration, av.time_base)
            return max(1, round(seconds * self.fps)), False
        return 0, False  # unknown: counted by a pass over the packet headers (scan)

    # -- frame numbers
    def index_of(self, pts: int | None, previous: int) -> int:
        if pts is None or self.by_count:
            return previous + 1
        return (2 * (pts - self.start_pts) * self._num + self._den) // (2 * self._den)  # round half up

    def pts_of(self, index: int) -> int:
        return self.start_pts + (2 * index * self._den + self._num) // (2 * self._num)

    def seconds(self, pts: int | None, index: int) -> float:
        if pts is None:
            return float(index / self.fps)
        return float((pts - self.start_pts) * self.tb)

    # -- keyframes and frame count
    def keyframes(self, upto: int) -> list[int] | None:
        """Frame numbers of the keyframes up to ``upto`` (sorted), or None when unknown.

        From the container index when it lists every sample (MP4/MOV/AVI: a keyframe's rank
        in decoding order is its frame number for closed GOPs), else from a pass over the
        packet headers (no decoding) up to ``upto``, after which the container is reopened.
        """
        if not self.seekable:
            return None
        entries = self.stream.index_entries
        n = len(entries) if entries is not None else 0
        if n >= 2 and self.total_exact and n >= 0.9 * self.total:
            return [i for i, e in enumerate(entries) if e.is_keyframe] or [0]
        if self._keyframes is None or self._scanned_to < upto:
            self.scan(upto)
        return self._keyframes or None

    def scan(self, upto: int | None = None) -> None:
        """Read packet headers (no decoding) up to frame ``upto`` or to the end, then reopen.

        Records the keyframe positions; reaching the end also gives the exact frame count.
        """
        found, previous, count = [], -1, 0
        for packet in self.container.demux(self.stream):
            if packet.size == 0:
                continue
            idx = self.index_of(packet.pts, previous)
            previous, count = idx, count + 1
            if packet.is_keyframe:
                found.append(idx)
            if upto is not None and idx > upto + 32:  # past the last sample, allowing for B-frame reordering
                self._scanned_to = upto
                break
        else:
            self._scanned_to = float("inf")
            self.total, self.total_exact = (count if self.by_count else max(count, previous + 1)), True
        self._keyframes = sorted(found)
        self._reopen()

    def _reopen(self) -> None:
        index = self.stream_index
        self.container.close()
        self.container = self.source.open()
        self.stream = self.container.streams[index]
        self.codec = self.stream.codec_context
        _threads(self.codec)

    # -- decoding
    def _decode(self) -> Iterator[tuple[int, av.VideoFrame]]:
        previous = -1
        for packet in self.container.demux(self.stream):
            for frame in packet.decode():
                previous = self.index_of(frame.pts, previous)
                if max(frame.width, frame.height) > MAX_DIMENSION:
                    raise VideoTooLargeError(
                        f"{self.source.name} has frames of {frame.width}x{frame.height} pixels;"
                        f" at most {MAX_DIMENSION} per side is supported"
                    )
                yield previous, frame

    def from_start(self) -> Iterator[tuple[int, av.VideoFrame]]:
        return self._decode()

    def seek(self, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode from the keyframe at or before frame ``target``: an iterator of (index, frame).

        The landing point is checked: should the demuxer land after the target (timestamp
        vs decoding-order quirks), the seek is repeated further back until it does not.
        """
        back = 0
        while True:
            want = max(target - back, 0)
            self.container.seek(self.pts_of(want), stream=self.stream, backward=True, any_frame=False)
            self.codec.flush_buffers()
            frames = self._decode()
            first = next(frames, None)
            if first is not None and (first[0] <= target or want == 0):
                return itertools.chain([first], frames)
            if want == 0:
                return iter(())
            back = max(2 * back, 2 * SEEK_MARGIN)


# ----------------------------------------------------------------------------- sampling


def _plan(
    total: int, num_frames: int, stride: int, start_frame: int | None, uniform: bool, on_short: str, fps: float
) -> tuple[list[int], int | None, list[str]]:
    """Source frame numbers to sample, the stride used (None: uniform) and notes for the user."""
    n, t = total, num_frames
    notes: list[str] = []
    plural = "s" if n != 1 else ""
    if uniform:
        if n < t:
            if on_short == "error":
                raise VideoTooShortError(
                    f"the video has {n} frame{plural}; {t} evenly spaced frames need at least {t}"
                )
            notes.append(f"the video has only {n} frame{plural}: some are repeated to make {t}")
        return [(2 * i + 1) * n // (2 * t) for i in range(t)], None, notes
    if start_frame is not None and start_frame >= n:
        raise VideoTooShortError(
            f"start frame {start_frame} is past the end of the video ({n} frame{plural}, {n / fps:.2f} s)"
        )
    span = (t - 1) * stride + 1
    start = start_frame if start_frame is not None else max(0, (n - span) // 2)
    if start + span <= n:
        return [start + stride * i for i in range(t)], stride, notes
    where = f" from frame {start}" if start_frame is not None else ""
    if on_short == "error":
        raise VideoTooShortError(
            f"the video has {n} frame{plural} ({n / fps:.2f} s); {t} frames every {stride} need {span}{where}."
            " Choose fewer frames, a smaller stride, sampling spread over the whole video, or looping"
        )
    if on_short == "loop":
        notes.append(
            f"the video has {n} frame{plural}, fewer than the {span} needed{where}: sampling wraps around to its start"
        )
        return [(start + stride * i) % n for i in range(t)], stride, notes
    # reduce_stride
    room = n - (start_frame or 0)
    s = (room - 1) // (t - 1) if t > 1 else stride
    if s >= 1:
        s = min(s, stride)
        span = (t - 1) * s + 1
        start = start_frame if start_frame is not None else (n - span) // 2
        notes.append(
            f"the video has {n} frame{plural}, fewer than the {(t - 1) * stride + 1} needed{where}:"
            f" stride lowered from {stride} to {s}"
        )
        return [start + s * i for i in range(t)], s, notes
    if n >= t:
        start = n - t
        notes.append(f"start moved from frame {start_frame} to {start} so that {t} consecutive frames fit (stride 1)")
        return [start + i for i in range(t)], 1, notes
    notes.append(f"the video has only {n} frame{plural}, fewer than {t}: frames are repeated (stride below 1)")
    return [i * n // t for i in range(t)], 1, notes


# ----------------------------------------------------------------------------- decoding the samples


class _Converter:
    """Decoded frames -> RGB uint8 at the display size, rotated for display (one swscale context reused)."""

    def __init__(self, frame: av.VideoFrame, stream, max_side: int | None) -> None:
        w, h = frame.width, frame.height
        sar = stream.sample_aspect_ratio or getattr(stream.codec_context, "sample_aspect_ratio", None)
        if sar and sar > 0 and sar != 1:  # non-square pixels: stretch as a player does
            w = max(1, round(w * sar))
        self.turns = round((frame.rotation or 0) / 90) % 4
        self.full = (h, w) if self.turns % 2 else (w, h)  # display size at full resolution
        scale = min(1.0, max_side / max(w, h)) if max_side else 1.0
        self.size = (max(1, round(w * scale)), max(1, round(h * scale)))  # before rotation
        self.shape = (self.size[0], self.size[1], 3) if self.turns % 2 else (self.size[1], self.size[0], 3)
        self.reformatter = av.video.reformatter.VideoReformatter()

    def __call__(self, frame: av.VideoFrame, out: np.ndarray) -> None:
        """Convert ``frame`` into ``out`` (H, W, 3) uint8: swscale AREA when resizing, then rotation."""
        if self.size == (frame.width, frame.height):
            rgb = self.reformatter.reformat(frame, format="rgb24").to_ndarray()
        else:
            rgb = self.reformatter.reformat(
                frame, self.size[0], self.size[1], "rgb24", interpolation="AREA"
            ).to_ndarray()
        out[...] = np.rot90(rgb, self.turns) if self.turns else rgb


@dataclass
class _Decoded:
    """The frames decoded for sorted unique target frame numbers."""

    frames: np.ndarray  # (len(targets), H, W, 3) uint8 RGB, one per target
    indices: list[int]  # frame number actually decoded for each target
    seconds: list[float]  # its time from the first frame
    full_size: tuple[int, int]  # (W, H) full-resolution display size


def _collect(
    video: _Video, targets: list[int], decode: str, max_side: int | None, progress: Progress | None
) -> _Decoded:
    """Decode the frames at ``targets`` (sorted, unique frame numbers); only those are converted and kept."""
    mode = decode if video.seekable else "sequential"
    keyframes = None
    gaps = [b - a for a, b in zip(targets, targets[1:])]
    if mode == "auto" and gaps and max(gaps) > SEEK_MARGIN + 1:
        if progress:
            progress(0.05, "finding keyframes")
        keyframes = video.keyframes(targets[-1])

    def keyframe_before(target: int) -> int | None:
        if not keyframes or keyframes[0] > target:
            return None
        return keyframes[bisect_right(keyframes, target) - 1]

    convert: _Converter | None = None
    store = None
    indices: list[int] = []
    seconds: list[float] = []
    frames: Iterator | None = None
    pos, i = -1, 0
    while i < len(targets):
        target = targets[i]
        if mode == "seek":
            seek = True
        elif mode == "sequential":
            seek = False
        elif frames is None:  # nothing decoded yet: seek unless the target is near the start
            kf = keyframe_before(target)
            seek = (kf if kf is not None else target) > SEEK_MARGIN
        else:  # seek when a keyframe lies well beyond the current position
            kf = keyframe_before(target)
            seek = kf is not None and kf > pos + SEEK_MARGIN
        if seek:
            frames, pos = video.seek(target), -1
        elif frames is None:
            frames = video.from_start()
        try:
            for idx, frame in frames:
                pos = idx
                if idx < target:
                    continue
                if convert is None:
                    convert = _Converter(frame, video.stream, max_side)
                    need = len(targets) * math.prod(convert.shape)
                    if need > MAX_FRAME_MEMORY:
                        raise VideoTooLargeError(
                            f"{len(targets)} frames of {convert.size[0]}x{convert.size[1]} pixels need more than"
                            f" {MAX_FRAME_MEMORY >> 30} GiB; set a smaller max_side"
                        )
                    store = np.empty((len(targets), *convert.shape), np.uint8)
                convert(frame, store[i])
                when = video.seconds(frame.pts, idx)
                first = i
                while i < len(targets) and targets[i] <= idx:  # a gap in the stream: one frame serves several
                    if i > first:
                        store[i] = store[first]
                    indices.append(idx)
                    seconds.append(when)
                    i += 1
                if progress:
                    progress(0.1 + 0.8 * i / len(targets), f"decoded {i} of {len(targets)} frames")
                break
            else:
                raise _EndOfStream(pos + 1)
        except av.error.FFmpegError as e:
            if pos < 0:
                raise _undecodable(video.source, e) from e
            raise _EndOfStream(pos + 1, damaged=True) from e
    return _Decoded(store, indices, seconds, convert.full)


# ----------------------------------------------------------------------------- preprocessing


def _model_input(frames: np.ndarray, geometry: ClipGeometry, spec: ClipSpec) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (1, 3, T, H_in, W_in) float32: resize, crop, channel order, normalize."""
    (wr, hr), (ox, oy), (wi, hi) = geometry.resized_size, geometry.crop_offset, geometry.input_size
    small = np.empty((len(frames), hi, wi, 3), np.uint8)
    for k, f in enumerate(frames):
        r = f if (wr, hr) == (f.shape[1], f.shape[0]) else cv2.resize(f, (wr, hr), interpolation=cv2.INTER_LINEAR)
        small[k] = r[oy : oy + hi, ox : ox + wi]
    x = torch.from_numpy(small).permute(3, 0, 1, 2).float()  # (3, T, H_in, W_in), RGB
    if spec.channel_order == "BGR":
        x = x.flip(0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1, 1)
    return ((x - mean) / std).contiguous()[None]


# ----------------------------------------------------------------------------- public entry points


def _undecodable(src: _Source, error: Exception) -> VideoError:
    """The error for a video whose frames cannot be decoded at all."""
    head = src.head
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP" and b"ANIM" in head[:4096]:
        return UnsupportedCodecError(f"{src.name} is an animated WebP, which cannot be decoded here; use GIF or MP4")
    reason = getattr(error, "strerror", None) or error
    return CorruptVideoError(f"{src.name} cannot be decoded: it is damaged ({reason})")


def _run(source: Source, max_bytes: int | None, body: Callable[[_Video], Any]) -> Any:
    """Open ``source``, run ``body`` on it, close it; every decoder failure becomes a VideoError."""
    src = _Source(source, max_bytes)
    try:
        container = src.open()
        video = None
        try:
            video = _Video(src, container)
            return body(video)
        finally:
            (video.container if video is not None else container).close()
    except VideoError:
        raise
    except av.error.FFmpegError as e:
        raise _undecodable(src, e) from e
    except MemoryError as e:
        raise VideoTooLargeError(f"not enough memory to decode {src.name}") from e


def probe(source: Source, *, max_bytes: int | None = MAX_BYTES) -> VideoInfo:
    """Format, codec, frame count, rate, duration and size of a video, from its header."""

    def body(video: _Video) -> VideoInfo:
        if not video.total:
            video.scan()
        total = video.total
        fps = float(video.fps) if not video.is_image else 1.0
        size = (video.width, video.height)
        return VideoInfo(video.format, video.codec.name, total, fps, total / fps, size, video.is_image)

    return _run(source, max_bytes, body)


def load_clip(
    source: Source,
    *,
    spec: ClipSpec,
    num_frames: int | None = None,
    stride: int | None = None,
    start: float | None = None,
    start_frame: int | None = None,
    uniform: bool = False,
    crop: str = "center",
    max_side: int | None = MAX_SIDE,
    on_short: str = "error",
    progress: Progress | None = None,
    decode: str = "auto",
    max_bytes: int | None = MAX_BYTES,
) -> Clip:
    """Decode, sample and preprocess a clip from ``source`` as the model of ``spec`` expects.

    source: a path, bytes, or a binary file-like object (read from its start), holding a video
      (MP4/MOV/MKV/WebM/AVI/GIF/...: H.264, HEVC, VP8, VP9, AV1, MPEG-4, ...) or a still image.
    num_frames, stride: T frames, one every ``stride`` source frames (default: the spec's).
    start / start_frame: first sampled frame, in seconds or as a frame number (default: the
      clip is centred in the video). ``uniform=True``: T frames evenly spread over the whole
      video instead (frame floor((2i + 1) N / 2T) of N, segment centres).
    crop: "center" (the spec's square crop after resizing, as in training) or "full" (the whole
      resized frame; fully convolutional).
    max_side: displayed frames whose long side is larger are downscaled to it right after
      decoding (None: never).
    on_short: when the video is too short for the sampling: "error" raises
      :class:`VideoTooShortError`, "loop" wraps frame numbers around, "reduce_stride" lowers the
      stride until the clip fits (then repeats frames if even stride 1 does not).
    progress: optional callback (fraction in [0, 1], message).
    decode: "auto" (seek or read on, whichever decodes less), "seek" (seek before every
      sample) or "sequential" (one pass from the start); the frames are the same. Containers
      where seeking is not trusted (see the module notes) always take one pass.
    max_bytes: larger inputs are refused with :class:`VideoTooLargeError`.

    Returns a :class:`Clip`: frames (T, H, W, 3) uint8, input (1, 3, T, H_in, W_in) float32.
    Raises a :class:`VideoError` subclass for every problem with the input.
    """
    t = int(num_frames if num_frames is not None else spec.num_frames)
    s = int(stride if stride is not None else spec.stride)
    if t < 1 or s < 1:
        raise ValueError(f"num_frames and stride must be >= 1, got {t} and {s}")
    if start is not None and start_frame is not None:
        raise ValueError("give start (seconds) or start_frame, not both")
    if (start is not None and start < 0) or (start_frame is not None and start_frame < 0):
        raise ValueError("the start of the clip cannot be negative")
    if crop not in ("center", "full"):
        raise ValueError(f"crop must be 'center' or 'full', got {crop!r}")
    if on_short not in ("error", "loop", "reduce_stride"):
        raise ValueError(f"on_short must be 'error', 'loop' or 'reduce_stride', got {on_short!r}")
    if decode not in ("auto", "seek", "sequential"):
        raise ValueError(f"decode must be 'auto', 'seek' or 'sequential', got {decode!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1 or None, got {max_side}")
    if spec.crop_size > spec.short_side and crop == "center":
        raise ValueError(f"the spec's crop ({spec.crop_size}) is larger than its short side ({spec.short_side})")

    def say(fraction: float, message: str) -> None:
        if progress is not None:
            progress(float(min(max(fraction, 0.0), 1.0)), message)

    def body(video: _Video) -> Clip:
        say(0.0, "opening the video")
        fps = float(video.fps)
        if video.is_image:
            return still(_collect(video, [0], "sequential", max_side, None), "still image")
        first = int(start_frame) if start_frame is not None else (round(start * fps) if start is not None else None)
        near_end = (first or 0) + (t - 1) * s + 1 > 0.9 * video.total
        if not video.total or (not video.total_exact and (uniform or near_end)):
            video.scan()  # exact count when estimated (duration x rate) and it matters; keyframes come with it
        total = video.total
        announced, damaged = total, False
        for _attempt in range(4):
            if total < 1:
                raise EmptyVideoError(f"{video.source.name} holds no video frame")
            if total == 1 and video.format in _SEQUENTIAL_FORMATS:
                return still(_collect(video, [0], "sequential", max_side, None), "single-frame image")
            indices, used_stride, notes = _plan(total, t, s, first, uniform, on_short, fps)
            targets = sorted(set(indices))
            try:
                got = _collect(video, targets, decode, max_side, progress)
            except _EndOfStream as end:
                if end.count <= 0:
                    raise EmptyVideoError(f"{video.source.name} holds no decodable video frame") from None
                if end.count >= total:  # nothing learned: give up rather than loop
                    raise CorruptVideoError(f"{video.source.name} ended unexpectedly: it is damaged") from None
                total, damaged = end.count, damaged or end.damaged
                video._reopen()
                continue
            if damaged or announced - total > 1:
                why = "it is damaged after that" if damaged else "it is truncated"
                notes.insert(
                    0, f"only the first {total} frames are readable although the header announces {announced} ({why})"
                )
            slot = {target: j for j, target in enumerate(targets)}
            order = [slot[i] for i in indices]
            return finish(got, order, fps, notes, total, used_stride, False)
        raise CorruptVideoError(f"{video.source.name} keeps ending before its announced length: it is damaged")

    def still(got: _Decoded, what: str) -> Clip:
        notes = [f"{what}: its one frame is repeated {t} times (the model sees no motion)"]
        return finish(got, [0] * t, 1.0, notes, 1, None, True)

    def finish(
        got: _Decoded, order: list[int], fps: float, notes: list[str], total: int, used_stride: int | None, still: bool
    ) -> Clip:
        say(0.92, "preprocessing")
        h, w = got.frames.shape[1:3]
        full = got.full_size
        geometry = ClipGeometry.build(
            (w, h), short_side=spec.short_side, crop_size=spec.crop_size, crop=crop, num_frames=t, source_size=full
        )
        if full != (w, h):
            notes.append(f"frames downscaled from {full[0]}x{full[1]} to {w}x{h} for display (max_side={max_side})")
        x = _model_input(got.frames, geometry, spec)  # one per decoded frame
        identity = order == list(range(len(got.frames)))
        if not identity:
            x = x[:, :, order]
        clip = Clip(
            frames=got.frames if identity else got.frames[order],
            indices=[got.indices[j] for j in order],
            timestamps=[got.seconds[j] for j in order],
            fps=fps,
            source_size=full,
            input=x,
            geometry=geometry,
            notes=notes,
            total_frames=total,
            stride=used_stride,
            is_still=still,
        )
        say(1.0, "done")
        return clip

    return _run(source, max_bytes, body)
