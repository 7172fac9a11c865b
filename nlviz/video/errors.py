"""The errors of video input: :class:`VideoError` and its subclasses, one per way a video can
fail (missing, not a video, corrupt, empty, unsupported codec, too large, too short, a position
outside the crop). Each carries a message meant for the user."""

from __future__ import annotations


class VideoError(Exception):
    """Any problem with a video input; the message is meant for the user."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path names no file."""


class NotAVideoError(VideoError):
    """The input is not a video or image (garbage bytes, a text file, audio only)."""


class CorruptVideoError(VideoError):
    """The input looks like a video but cannot be read (truncated, damaged)."""


class EmptyVideoError(VideoError):
    """The input is empty (zero bytes) or its video holds no frame."""


class UnsupportedCodecError(VideoError):
    """The video is compressed with a codec this build of FFmpeg cannot decode."""


class VideoTooLargeError(VideoError):
    """Frames or file too large to handle (huge dimensions in the header, too many bytes)."""


class VideoTooShortError(VideoError):
    """The video has fewer frames than the requested sampling needs (with ``on_short="error"``)."""


class OutsideCropError(VideoError, ValueError):
    """A position outside the frame, or outside the region the model sees (the centre crop)."""
