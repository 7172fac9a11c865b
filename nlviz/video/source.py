"""Reading a video's bytes before FFmpeg sees them: :data:`Source` (a path, bytes or a binary
file-like object), recognising text, images and containers from the first bytes, refusing empty,
oversized and text inputs with a specific :class:`~nlviz.video.errors.VideoError`, and
:class:`_Source`, which reopens the same bytes as a fresh PyAV container (never a temporary file)."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO, Union

import av

from .errors import CorruptVideoError, EmptyVideoError, NotAVideoError, VideoNotFoundError, VideoTooLargeError

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

MAX_DIMENSION = 8192  # a video whose header claims a larger side is refused (pixels)
MAX_BYTES = 8 << 30  # inputs larger than this are refused (bytes)

_HEAD = 1 << 16  # bytes read to recognise a file before handing it to FFmpeg



def _looks_like_text(head: bytes) -> bool:
    """True for input that is plain text (a text file named .mp4, an HTML error page, ...)."""
    if not head or b"\x00" in head or head.startswith(b"YUV4MPEG2"):
        return False
    text = head.decode("utf-8", errors="replace")
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b"))
    return bad <= len(text) // 100


def _media_kind(head: bytes) -> str | None:
    """A name for the container the magic bytes announce, or None when nothing is recognised."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "an MP4/MOV video"
    checks = [
        (b"\x1a\x45\xdf\xa3", "a WebM/Matroska video"),
        (b"RIFF", "a RIFF (AVI/WebP) file"),
        (b"GIF8", "a GIF image"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"OggS", "an Ogg file"),
        (b"FLV", "an FLV video"),
        (b"DKIF", "an IVF video"),
        (b"YUV4MPEG2", "a Y4M video"),
        (b"\x00\x00\x01\xba", "an MPEG program stream"),
        (b"\x30\x26\xb2\x75", "a WMV/ASF video"),
    ]
    for magic, name in checks:
        if head.startswith(magic):
            return name
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47:
        return "an MPEG transport stream"
    return None


def _sniff_dimensions(head: bytes) -> tuple[str, int, int] | None:
    """(kind, W, H) read straight from an image/stream header, before FFmpeg allocates anything."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return "PNG", w, h
        if head[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", head[6:10])
            return "GIF", w, h
        if head.startswith(b"DKIF"):
            w, h = struct.unpack("<HH", head[12:16])
            return "IVF", w, h
        if head.startswith(b"YUV4MPEG2"):
            line = head.split(b"\n", 1)[0].split()
            dims = {tok[:1]: tok[1:] for tok in line[1:]}
            return "Y4M", int(dims.get(b"W", b"0")), int(dims.get(b"H", b"0"))
        if head.startswith(b"BM") and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return "BMP", abs(w), abs(h)
        if head.startswith(b"\xff\xd8"):
            i = 2
            while i + 9 <= len(head):
                if head[i] != 0xFF:
                    break
                marker = head[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                seg = struct.unpack(">H", head[i + 2 : i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", head[i + 5 : i + 9])
                    return "JPEG", w, h
                i += 2 + seg
    except (struct.error, ValueError):
        return None
    return None


class _Source:
    """The bytes of a video, reopenable as a fresh PyAV container any number of times."""

    def __init__(self, source: Source, max_bytes: int | None) -> None:
        self.path: str | None = None
        self.buffer: bytes | None = None
        self.file: BinaryIO | None = None
        limit = max_bytes if max_bytes is not None else float("inf")
        if isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if not p.exists():
                raise VideoNotFoundError(f"no such file: {p}")
            if p.is_dir():
                raise NotAVideoError(f"{p} is a folder, not a video")
            size = p.stat().st_size
            self.path, self.name = str(p.resolve()), p.name
            if 0 < size <= limit:
                with open(self.path, "rb") as f:
                    self.head = f.read(_HEAD)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self.buffer = bytes(source)
            size, self.name = len(self.buffer), "the uploaded data"
            self.head = self.buffer[:_HEAD]
        elif hasattr(source, "read"):
            self.name = getattr(source, "name", None) or "the uploaded file"
            if not isinstance(self.name, str):
                self.name = "the uploaded file"
            seekable = getattr(source, "seekable", lambda: False)()
            if seekable:
                size = source.seek(0, io.SEEK_END)
                source.seek(0)
                self.file = source
                if 0 < size <= limit:
                    self.head = source.read(_HEAD)
                    source.seek(0)
            else:  # a pipe or socket: read it into memory, at most limit + 1 bytes
                chunks, size = [], 0
                while size <= limit:
                    chunk = source.read(1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                self.buffer = b"".join(chunks)
                self.head = self.buffer[:_HEAD]
        else:
            raise TypeError(f"a video source is a path, bytes or a binary file object, not {type(source).__name__}")
        self.size = size
        if size == 0:
            raise EmptyVideoError(f"{self.name} is empty (0 bytes)")
        if size > limit:
            raise VideoTooLargeError(
                f"{self.name} is {size / 2**20:.0f} MiB, more than the limit of {limit / 2**20:.0f} MiB"
            )
        if isinstance(self.head, str):
            raise TypeError("open the file in binary mode ('rb')")
        if _looks_like_text(self.head):
            raise NotAVideoError(f"{self.name} is a text file, not a video or image")
        dims = _sniff_dimensions(self.head)
        if dims and max(dims[1], dims[2]) > MAX_DIMENSION:
            raise VideoTooLargeError(
                f"{self.name} is {dims[0]} of {dims[1]}x{dims[2]} pixels; at most {MAX_DIMENSION} per side is supported"
            )

    def open(self) -> av.container.InputContainer:
        """A fresh container on the source (the caller closes it)."""
        try:
            if self.path is not None:
                return av.open(self.path, metadata_errors="replace")
            if self.buffer is not None:
                return av.open(io.BytesIO(self.buffer), metadata_errors="replace")
            self.file.seek(0)
            return av.open(self.file, metadata_errors="replace")
        except av.error.FileNotFoundError as e:
            raise VideoNotFoundError(f"no such file: {self.name}") from e
        except av.error.FFmpegError as e:
            kind = _media_kind(self.head)
            if kind is None:
                raise NotAVideoError(f"{self.name} is not a video or image format that can be read") from e
            raise CorruptVideoError(
                f"{self.name} looks like {kind} but cannot be read: it is damaged or truncated"
            ) from e
