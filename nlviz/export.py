"""Exports of one view: files a person keeps, and a JSON spec that reproduces the view.

    spec = view_spec("demo.gaussian", "sample:synthetic_11", Sampling(), "res3.0.nl", 8, 32.5, 20.5)
    view, analysis = reproduce(ViewSpec.from_json(spec.to_json()))    # the same row, recomputed
    write_exports("out/", analysis, view, spec)                        # png, gif, mp4, npy, json

The view spec names the model (a zoo name or a checkpoint path) and the video (a bundled
sample as ``sample:<name>``, or a path) together with the sha256 of both files, so a spec
shared later says whether it still describes the same inputs: :func:`reproduce` refuses
(:class:`HashMismatchError`) when either file changed.

The byte producers (:func:`montage_png`, :func:`overlay_gif`, :func:`overlay_mp4`,
:func:`rows_npy`, :func:`spec_json`) serve the app's download buttons and
:func:`write_exports`; they never import Streamlit. Overlays are the view's own (thumbnail
size, the view's colour scale); a marker drawn on them is given in overlay pixels
(see :func:`query_marker`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .download import sha256_file
from .names import EXPORT_FORMATS as FORMATS  # one home for the names --help shows
from .explore import Analysis, QueryView, Sampling, analyze, query_view
from .render import ValueRange, colorize, draw_marker, montage, text_strip

SPEC_VERSION = 1
SAMPLE_PREFIX = "sample:"
PAD = 2  # pixels between the tiles of a montage
LEGEND_HEIGHT = 24  # the colour bar under a montage
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ExportError(Exception):
    """An export or a reproduction failed: unknown model or video, changed file, bad spec."""


class ViewSpecError(ExportError, ValueError):
    """A view spec is malformed: missing or unknown fields, wrong types, unknown version."""


class HashMismatchError(ExportError):
    """The model's checkpoint or the video is not the file the spec was made from."""

    def __init__(self, what: str, name: str, expected: str, actual: str) -> None:
        self.what, self.expected, self.actual = what, expected, actual
        super().__init__(
            f"the {what} differs from the one the view spec was made from: {name} has sha256 "
            f"{actual[:12]}..., the spec says {expected[:12]}..."
        )


# ----------------------------------------------------------------------------- hashes

_HASHES: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def _file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, mtime, size): hashing a checkpoint once is enough."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    digest = sha256_file(path)
    with _HASH_LOCK:
        _HASHES[key] = digest
    return digest


def resolve_video(video: str | Path) -> Path:
    """The file a spec's video names: ``sample:<name>`` (a bundled sample) or a path."""
    from .samples import sample_path

    text = str(video)
    if text.startswith(SAMPLE_PREFIX):
        try:
            return sample_path(text[len(SAMPLE_PREFIX):])
        except KeyError as e:
            raise ExportError(e.args[0]) from None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ExportError(f"no such video file: {text}")
    return path


def video_sha256(video: str | Path | bytes | bytearray | memoryview) -> str:
    """Hex sha256 of a video given as bytes, a path or ``sample:<name>``."""
    if isinstance(video, (bytes, bytearray, memoryview)):
        return hashlib.sha256(video).hexdigest()
    return _file_sha256(resolve_video(video))


def _dir_sha256(path: Path) -> str:
    """sha256 of a checkpoint directory (a hub snapshot): over each file's relative name and sha256,
    in name order; hidden files and folders (a download tool's own metadata) are left out."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{_file_sha256(f)}\n".encode())
    return h.hexdigest()


def checkpoint_path(model: str | Path) -> Path:
    """The checkpoint file of a zoo name (where it is or would be cached) or of a path (a file, or a
    checkpoint directory such as a saved hub snapshot)."""
    from . import zoo

    text = str(model)
    path = Path(text[len("file:"):] if text.startswith("file:") else text).expanduser()
    if not zoo.known(text) and (path.is_file() or path.is_dir()):
        return path
    try:
        zoo.get(text)
    except KeyError as e:
        raise ExportError(f"{text}: no such checkpoint file, and {e.args[0]}") from None
    return zoo.cached_path(text)


def checkpoint_sha256(model: str | Path) -> str:
    """Hex sha256 of a model's checkpoint file: a zoo name's file, or a checkpoint path.

    A zoo model not downloaded yet has no file to hash: its published sha256 is used when the
    zoo knows it, else :class:`ExportError` says to download it first.
    """
    from . import zoo

    path = checkpoint_path(model)
    if path.is_file():
        return _file_sha256(path)
    if path.is_dir():
        return _dir_sha256(path)
    entry = zoo.get(str(model))
    if entry.sha256:
        return entry.sha256
    raise ExportError(f"{model} is not downloaded yet (run `nlviz download {model}`), so its file cannot be hashed")


# ----------------------------------------------------------------------------- the view spec


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ViewSpecError(message)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _check_sampling(sampling: Any) -> dict:
    _check(isinstance(sampling, Mapping), f"'sampling' must be an object, got {type(sampling).__name__}")
    known = {f.name for f in fields(Sampling)}
    unknown = sorted(set(sampling) - known)
    _check(not unknown, f"unknown sampling field(s) {unknown}; known: {sorted(known)}")
    for name in ("num_frames", "stride"):
        v = sampling.get(name)
        _check(v is None or (_is_int(v) and v > 0), f"sampling.{name} must be a positive integer or null, got {v!r}")
    v = sampling.get("start_frame")
    _check(v is None or (_is_int(v) and v >= 0), f"sampling.start_frame must be an integer >= 0 or null, got {v!r}")
    _check(isinstance(sampling.get("uniform", False), bool), "sampling.uniform must be true or false")
    crop = sampling.get("crop", "center")
    _check(crop in ("center", "full"), f"sampling.crop must be 'center' or 'full', got {crop!r}")
    return dict(sampling)


@dataclass(frozen=True)
class ViewSpec:
    """Everything needed to compute one view again: model, video, sampling, query, block.

    ``model``: a zoo name or a checkpoint path; ``video``: ``sample:<name>`` or a path; the two
    sha256 say which files exactly. ``sampling``: the fields of :class:`~nlviz.explore.Sampling`.
    ``frame``, ``x``, ``y``: the query in displayed-frame pixels. ``pairwise``: the block's
    pairwise function, recorded for the reader (and checked by :func:`reproduce`). ``head``: the
    attention head shown, for a multi-head block (None, and absent from older specs: the mean
    over heads, as a one-head block has it).
    """

    model: str
    checkpoint_sha256: str
    video: str
    video_sha256: str
    sampling: dict
    frame: int
    x: float
    y: float
    block: str
    pairwise: str | None
    version: int = SPEC_VERSION
    head: int | None = None

    def __post_init__(self) -> None:
        _check(_is_int(self.version), f"'version' must be an integer, got {self.version!r}")
        _check(self.version == SPEC_VERSION,
               f"unknown view spec version {self.version}; this nlviz reads version {SPEC_VERSION}")
        for name in ("model", "video", "block"):
            v = getattr(self, name)
            _check(isinstance(v, str) and v.strip() != "", f"'{name}' must be a non-empty string, got {v!r}")
        for name in ("checkpoint_sha256", "video_sha256"):
            v = getattr(self, name)
            _check(isinstance(v, str) and _HEX64.fullmatch(v) is not None,
                   f"'{name}' must be 64 lowercase hex digits, got {v!r}")
        object.__setattr__(self, "sampling", _check_sampling(self.sampling))
        _check(_is_int(self.frame) and self.frame >= 0, f"'frame' must be an integer >= 0, got {self.frame!r}")
        for name in ("x", "y"):
            v = getattr(self, name)
            _check(_is_number(v), f"'{name}' must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        _check(self.pairwise is None or isinstance(self.pairwise, str),
               f"'pairwise' must be a string or null, got {self.pairwise!r}")
        _check(self.head is None or (_is_int(self.head) and self.head >= 0),
               f"'head' must be an integer >= 0 or null, got {self.head!r}")

    def to_json(self, indent: int | None = 2) -> str:
        """The spec as JSON text (every field, ``version`` included)."""
        return json.dumps(asdict(self), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ViewSpec":
        """Parse and validate a spec written by :meth:`to_json`; :class:`ViewSpecError` says what is wrong."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ViewSpecError(f"a view spec must be JSON: {e}") from None
        _check(isinstance(data, dict), f"a view spec must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data and n not in OPTIONAL_SPEC_FIELDS]
        _check(not missing, f"view spec lacks field(s): {', '.join(missing)}")
        unknown = sorted(set(data) - set(names))
        _check(not unknown, f"view spec has unknown field(s): {', '.join(unknown)}")
        return cls(**data)

    def sampling_obj(self) -> Sampling:
        """The :class:`~nlviz.explore.Sampling` the spec names."""
        return Sampling(**self.sampling)


OPTIONAL_SPEC_FIELDS = ("head",)  # fields a spec may leave out (written by older nlviz): their defaults hold


def view_spec(
    model: str | Path, video: str | Path, sampling: Sampling, block: str, frame: int, x: float, y: float,
    pairwise: str | None = None, head: int | None = None,
) -> ViewSpec:
    """A spec for a view, hashing the model's checkpoint and the video (``sample:<name>`` or a path)."""
    return ViewSpec(
        model=str(model),
        checkpoint_sha256=checkpoint_sha256(model),
        video=str(video),
        video_sha256=video_sha256(video),
        sampling=asdict(sampling),
        frame=int(frame),
        x=float(x),
        y=float(y),
        block=block,
        pairwise=pairwise,
        head=None if head is None else int(head),
    )


def _load_model(model: str | Path):
    """The model a spec names (:func:`nlviz.resolve.load`); ExportError for a name that is neither."""
    from .resolve import load

    checkpoint_path(model)  # an ExportError that names the problem for an unknown name
    try:
        return load(model)
    except FileNotFoundError as e:
        raise ExportError(str(e)) from None


def reproduce(spec: ViewSpec, *, verify: bool = True, thumb_width: int = 192) -> tuple[QueryView, Analysis]:
    """Compute the view a spec describes again: (view, analysis).

    With ``verify`` the video and the checkpoint are hashed first and compared with the spec
    (:class:`HashMismatchError` names the one that differs), and the block's pairwise function
    is checked. Raises :class:`ExportError` for an unknown model, video or block, and the
    library's own errors (e.g. :class:`~nlviz.video.OutsideCropError`) for a query the clip
    does not have.
    """
    video = resolve_video(spec.video)
    if verify:
        actual = video_sha256(video)
        if actual != spec.video_sha256:
            raise HashMismatchError("video", spec.video, spec.video_sha256, actual)
        actual = checkpoint_sha256(spec.model)
        if actual != spec.checkpoint_sha256:
            raise HashMismatchError("checkpoint", spec.model, spec.checkpoint_sha256, actual)
    model = _load_model(spec.model)
    analysis = analyze(model, video, spec.sampling_obj(), thumb_width=thumb_width)
    if spec.block not in analysis.capture:
        raise ExportError(f"the model has no block {spec.block!r}; its blocks: {', '.join(analysis.capture.blocks)}")
    actual_pairwise = analysis.capture[spec.block].pairwise
    if verify and spec.pairwise is not None and actual_pairwise != spec.pairwise:
        raise ExportError(f"block {spec.block} uses {actual_pairwise}, the spec says {spec.pairwise}")
    capture = analysis.capture if spec.head is None else analysis.capture.with_heads({spec.block: spec.head})
    view = query_view(capture, analysis.clip, spec.block, spec.frame, spec.x, spec.y, thumbs=analysis.thumbs)
    return view, analysis


# ----------------------------------------------------------------------------- bytes

Marker = tuple[int, float, float]  # (frame, x, y) in overlay pixels


def query_marker(analysis: Analysis, view: QueryView, frame: int, x: float, y: float) -> Marker:
    """A query in displayed-frame pixels -> where to mark it on ``view``'s overlays."""
    f = view.overlays.shape[2] / analysis.clip.frames.shape[2]
    return int(frame), x * f, y * f


def overlay_frames(view: QueryView, marker: Marker | None = None) -> np.ndarray:
    """The view's overlays (T, h, w, 3), with the query marked on its frame when ``marker`` is given."""
    frames = view.overlays.copy()
    if marker is not None:
        k, mx, my = marker
        frames[k] = draw_marker(frames[k], mx, my)
    return frames


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with ``text`` in its top-left corner on a dark box (skipped on tiny tiles)."""
    if tile.shape[1] < 40:
        return tile
    scale = 0.35 if tile.shape[1] < 128 else 0.45
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (tw + 6, th + base + 4), (0, 0, 0), -1)
    cv2.putText(out, text, (3, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _legend(width: int, scale: ValueRange) -> np.ndarray:
    """A white strip LEGEND_HEIGHT high: the colour bar and, next to it, what its ends mean."""
    strip = np.full((LEGEND_HEIGHT, width, 3), 255, np.uint8)
    bar_w = max(8, min(160, width // 3))
    ramp = np.linspace(scale.vmin, scale.vmax, bar_w, dtype=np.float32)[None, :].repeat(LEGEND_HEIGHT - 8, 0)
    strip[4 : LEGEND_HEIGHT - 4, 2 : 2 + bar_w] = colorize(ramp, scale)
    text, font_scale = scale.label, 0.4
    room = width - bar_w - 10
    while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] > room:
        text = text[:-1]
    if room > 10:
        cv2.putText(strip, text, (bar_w + 8, LEGEND_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (30, 30, 30), 1,
                    cv2.LINE_AA)
    return strip


def montage_image(
    analysis: Analysis, view: QueryView, frame: int, x: float, y: float, columns: int = 8, *,
    captions: bool = True, legend: bool = True,
) -> np.ndarray:
    """Every frame's overlay tiled row-major (``columns`` per line), the query marked: RGB uint8.

    ``frame``, ``x``, ``y``: the query in displayed-frame pixels. Captions name each frame's
    number; the legend strip (LEGEND_HEIGHT pixels) under the tiles shows the colour scale, and
    the model's note (the I3D probe's label: not a trained non-local network) heads the picture.
    """
    tiles = list(overlay_frames(view, query_marker(analysis, view, frame, x, y)))
    if captions:
        tiles = [_caption(t, f"{k}" + (" query" if k == frame else "")) for k, t in enumerate(tiles)]
    img = montage(tiles, max(1, min(columns, len(tiles))), pad=PAD)
    if legend:
        img = np.concatenate([img, _legend(img.shape[1], view.scale)])
    if analysis.note:
        img = np.concatenate([text_strip(img.shape[1], analysis.note), img])
    return img


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise ExportError("PNG encoding failed")
    return buf.tobytes()


def montage_png(
    analysis: Analysis, view: QueryView, frame: int, x: float, y: float, columns: int = 8, *,
    captions: bool = True, legend: bool = True,
) -> bytes:
    """:func:`montage_image` as PNG bytes."""
    return _png(montage_image(analysis, view, frame, x, y, columns, captions=captions, legend=legend))


def overlay_gif(view: QueryView, fps: float = 4, *, marker: Marker | None = None) -> bytes:
    """The overlays as a looping animated GIF (one frame per sampled frame)."""
    from .video import write_gif

    with tempfile.TemporaryDirectory(prefix="nlviz-gif-") as tmp:
        path = write_gif(overlay_frames(view, marker), Path(tmp) / "view.gif", fps)
        return path.read_bytes()


def overlay_mp4(view: QueryView, fps: float = 4, *, marker: Marker | None = None) -> bytes:
    """The overlays as browser-playable MP4 bytes (H.264, yuv420p, odd sizes padded to even)."""
    from .video import encode_mp4

    return encode_mp4(overlay_frames(view, marker), fps)


def rows_npy(rows: QueryView | np.ndarray | Mapping[str, QueryView | np.ndarray]) -> bytes:
    """Attention rows as NumPy bytes: one row (T', H', W') float32 as ``.npy``; a mapping
    block name -> row (or view) as ``.npz`` with one array per block."""
    def as_array(r: QueryView | np.ndarray) -> np.ndarray:
        return np.asarray(r.row if isinstance(r, QueryView) else r, dtype=np.float32)

    buf = io.BytesIO()
    if isinstance(rows, Mapping):
        np.savez(buf, **{name: as_array(r) for name, r in rows.items()})
    else:
        np.save(buf, as_array(rows))
    return buf.getvalue()


def spec_json(spec: ViewSpec) -> bytes:
    """The spec as UTF-8 JSON bytes."""
    return spec.to_json().encode("utf-8")


# ----------------------------------------------------------------------------- files


def export_stem(block: str, frame: int, x: float, y: float, head: int | None = None) -> str:
    """File name stem of a view's exports: ``<block>_f<frame>_x<x>_y<y>`` (``_h<head>`` after the
    block for one head of a multi-head block)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", block) + ("" if head is None else f"_h{int(head)}")
    return f"{safe}_f{int(frame)}_x{x:g}_y{y:g}"


def write_exports(
    out_dir: str | Path, analysis: Analysis, view: QueryView, spec: ViewSpec, *,
    formats: Iterable[str] = FORMATS, fps: float = 4,
) -> dict[str, Path]:
    """Write the view's exports into ``out_dir`` (created if needed): {format: path}.

    png: :func:`montage_png`; gif / mp4: the overlays animated (the MP4 with its index up front
    for players); npy: the row; json: the spec. The query comes from ``spec``.
    """
    from .video import write_gif, write_mp4

    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; known: {', '.join(FORMATS)}")
    if spec.block != view.block:
        raise ValueError(f"the spec is for block {spec.block}, the view for {view.block}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = export_stem(view.block, spec.frame, spec.x, spec.y, spec.head)
    marker = query_marker(analysis, view, spec.frame, spec.x, spec.y)
    written: dict[str, Path] = {}
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        if fmt == "png":
            path.write_bytes(montage_png(analysis, view, spec.frame, spec.x, spec.y))
        elif fmt == "gif":
            write_gif(overlay_frames(view, marker), path, fps)
        elif fmt == "mp4":
            write_mp4(overlay_frames(view, marker), path, fps)
        elif fmt == "npy":
            path.write_bytes(rows_npy(view))
        else:
            path.write_bytes(spec_json(spec))
        written[fmt] = path
    return written


__all__ = [
    "FORMATS",
    "LEGEND_HEIGHT",
    "PAD",
    "ExportError",
    "HashMismatchError",
    "ViewSpec",
    "ViewSpecError",
    "checkpoint_path",
    "checkpoint_sha256",
    "export_stem",
    "montage_image",
    "montage_png",
    "overlay_frames",
    "overlay_gif",
    "overlay_mp4",
    "query_marker",
    "reproduce",
    "resolve_video",
    "rows_npy",
    "spec_json",
    "video_sha256",
    "view_spec",
    "write_exports",
]
