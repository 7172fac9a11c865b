"""Video input: every format decodes, the right frames are sampled (seek == sequential),
coordinates map exactly between displayed frames and the model input, every bad input raises
its own VideoError, and the exports play back.

Test videos are generated here with PyAV: tiny (64x48), the frame number written in the top
row as 8 black/white 8x8 blocks (bit j of the number in block j), so the frames a clip holds can
be read back from its pixels.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from nlviz.spec import ClipSpec
from nlviz.video import (
    Clip,
    ClipGeometry,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    OutsideCropError,
    UnsupportedCodecError,
    VideoError,
    VideoNotFoundError,
    VideoTooLargeError,
    VideoTooShortError,
    encode_mp4,
    load_clip,
    probe,
    write_gif,
    write_mp4,
)

W, H = 64, 48
SPEC = ClipSpec(num_frames=4, stride=3, short_side=32, crop_size=32)  # tiny: fast preprocessing


# ----------------------------------------------------------------------------- helpers


def numbered_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """An RGB frame whose top row of 8x8 blocks spells i in binary; a grey ramp below."""
    f = np.full((h, w, 3), 60 + (2 * i) % 120, np.uint8)
    f[8:] = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None]
    for bit in range(8):
        f[0:8, 8 * bit : 8 * bit + 8] = 255 if (i >> bit) & 1 else 0
    return f


def frame_number(rgb: np.ndarray) -> int:
    """Read back the number written by :func:`numbered_frame`."""
    return sum(1 << bit for bit in range(8) if rgb[2:6, 8 * bit + 2 : 8 * bit + 6].mean() > 128)


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def make_video(
    target,
    codec: str = "libx264",
    fmt: str | None = None,
    n: int = 40,
    fps: int = 30,
    gop: int | None = 10,
    size: tuple[int, int] = (W, H),
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    rotation: int | None = None,
    frames: list[np.ndarray] | None = None,
):
    """Encode numbered frames with PyAV into a path or a file-like object."""
    target = str(target) if isinstance(target, Path) else target
    with av.open(target, "w", format=fmt) as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], pix_fmt
        if gop:
            s.codec_context.gop_size = gop
        if options:
            s.options = options
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            f = frames[i] if frames is not None else numbered_frame(i, *size)
            out.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(s.encode(None))
    return target


def plain_decode(path, indices: list[int]) -> list[np.ndarray]:
    """Reference: decode every frame in order with PyAV and keep those at ``indices``."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return [frames[i] for i in indices]


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    return buf.tobytes()


class StandInBlock:
    """A non-local block's coordinate methods with a proportional grid (like capture's BlockCapture)."""

    def __init__(self, input_shape, grid, key_grid=None):
        self.input_shape, self.grid = tuple(input_shape), tuple(grid)
        self.key_grid = tuple(key_grid or grid)

    def query_at(self, t, y, x):
        return tuple(int(math.floor(c * g / n)) for c, g, n in zip((t, y, x), self.grid, self.input_shape))

    def key_box(self, cell):
        box = []
        for c, g, n in zip(cell, self.key_grid, self.input_shape):
            box += [c * n / g, (c + 1) * n / g]
        return tuple(box)


# ----------------------------------------------------------------------------- fixtures

FORMATS = {  # name: (encoder, file name, muxer, pixel format, encoder options)
    "h264_mp4": ("libx264", "v.mp4", None, "yuv420p", {"preset": "ultrafast", "crf": "10"}),
    "hevc_mp4": ("libx265", "v.mp4", None, "yuv420p", {"crf": "10", "x265-params": "log-level=none"}),
    "vp8_webm": ("libvpx", "v.webm", None, "yuv420p", {"crf": "4", "b": "2M"}),
    "vp9_webm": ("libvpx-vp9", "v.webm", None, "yuv420p", {"crf": "10", "b": "0", "deadline": "realtime"}),
    "av1_mkv": ("libsvtav1", "v.mkv", None, "yuv420p", {"crf": "10", "preset": "12", "svtav1-params": "log-level=0"}),
    "h264_mov": ("libx264", "v.mov", None, "yuv420p", {"preset": "ultrafast", "crf": "10"}),
    "mpeg4_avi": ("mpeg4", "v.avi", None, "yuv420p", {"qscale": "2"}),
    "h264_mkv": ("libx264", "v.mkv", None, "yuv420p", {"preset": "ultrafast", "crf": "10"}),
    "gif": ("gif", "v.gif", None, "rgb8", None),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """One 40-frame numbered video per format whose encoder this PyAV build has."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, (codec, fname, fmt, pix, opts) in FORMATS.items():
        if not has_encoder(codec):
            continue
        path = root / f"{name}_{fname}"
        make_video(path, codec, fmt, pix_fmt=pix, options=opts)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def long_h264(tmp_path_factory) -> Path:
    """120 frames, GOP 12, with B-frames (pts != dts: the seek landing check matters)."""
    path = tmp_path_factory.mktemp("long") / "bframes.mp4"
    return make_video(path, "libx264", n=120, gop=12, options={"preset": "veryfast", "bf": "3", "crf": "12"})


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_decodes_the_requested_frames(name, videos):
    codec = FORMATS[name][0]
    if name not in videos:
        pytest.skip(f"this PyAV build has no {codec} encoder to make a {name} test file")
    clip = load_clip(videos[name], spec=SPEC, start_frame=5)
    assert clip.indices == [5, 8, 11, 14]
    assert [frame_number(f) for f in clip.frames] == [5, 8, 11, 14]
    assert clip.frames.shape == (4, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.input.shape == (1, 3, 4, 32, 32) and clip.input.dtype == torch.float32
    assert clip.fps == pytest.approx(30, rel=0.12)  # GIF delays are whole hundredths of a second
    assert clip.total_frames == 40 and clip.source_size == (W, H) and not clip.is_still
    assert clip.timestamps[0] == pytest.approx(5 / 30, abs=0.01)
    uniform = load_clip(videos[name], spec=SPEC, uniform=True)
    assert uniform.indices == [5, 15, 25, 35]
    assert [frame_number(f) for f in uniform.frames] == [5, 15, 25, 35]


def test_av1_encoder_is_available():
    """AV1 must be covered by the format test: some AV1 encoder has to exist in PyAV."""
    assert any(has_encoder(n) for n in ("libsvtav1", "libaom-av1", "librav1e")), "no AV1 encoder in PyAV"


def test_bytes_and_file_objects(videos):
    data = videos["h264_mp4"].read_bytes()
    from_bytes = load_clip(data, spec=SPEC, start_frame=2)
    with open(videos["h264_mp4"], "rb") as f:
        f.read(100)  # a file object is read from its start whatever its position
        from_file = load_clip(f, spec=SPEC, start_frame=2)
        assert not f.closed  # the caller's file stays open

    class Pipe(io.RawIOBase):  # not seekable: read into memory
        def __init__(self, b):
            self._b = io.BytesIO(b)

        def readable(self):
            return True

        def readinto(self, buf):
            chunk = self._b.read(len(buf))
            buf[: len(chunk)] = chunk
            return len(chunk)

    from_pipe = load_clip(Pipe(data), spec=SPEC, start_frame=2)
    for clip in (from_bytes, from_file, from_pipe):
        assert [frame_number(f) for f in clip.frames] == [2, 5, 8, 11]
    assert np.array_equal(from_bytes.frames, from_file.frames) and np.array_equal(from_bytes.frames, from_pipe.frames)


def test_still_images_repeat_one_frame(tmp_path):
    rgb = numbered_frame(77)
    png = png_bytes(rgb)
    clip = load_clip(png, spec=SPEC)
    assert clip.is_still and clip.indices == [0, 0, 0, 0] and clip.fps == 1.0
    assert all(np.array_equal(f, rgb) for f in clip.frames)  # PNG is lossless
    assert "still image" in clip.notes[0]
    renamed = tmp_path / "picture.mp4"  # a PNG is an image whatever its name
    renamed.write_bytes(png)
    assert load_clip(renamed, spec=SPEC).is_still
    ok, jpg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    clip = load_clip(jpg.tobytes(), spec=SPEC, num_frames=3)
    assert clip.is_still and len(clip.frames) == 3 and frame_number(clip.frames[0]) == 77
    gif1 = make_video(io.BytesIO(), "gif", "gif", n=1, pix_fmt="rgb8").getvalue()
    assert load_clip(gif1, spec=SPEC).is_still


def test_rotated_video_is_shown_upright(tmp_path):
    frames = [np.zeros((H, W, 3), np.uint8) for _ in range(3)]
    for f in frames:
        f[:16, :16] = 255  # a white square in the top-left corner of the coded picture
    path = make_video(tmp_path / "rot.mp4", n=3, frames=frames, rotation=90, options={"crf": "5"})
    clip = load_clip(path, spec=SPEC, num_frames=3, stride=1)
    assert clip.frames.shape == (3, W, H, 3)  # portrait
    assert clip.source_size == (H, W)
    # 90 degrees counter-clockwise: the top-left corner goes to the bottom-left
    assert clip.frames[0][-8:, :8].mean() > 200 and clip.frames[0][:8, :8].mean() < 50


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("kwargs", [dict(uniform=True), dict(start_frame=3), dict(start_frame=50, stride=7)])
def test_seek_and_sequential_decoding_give_the_same_frames(long_h264, kwargs):
    spec = SPEC.with_(num_frames=8, stride=5)
    clips = {mode: load_clip(long_h264, spec=spec, decode=mode, **kwargs) for mode in ("auto", "seek", "sequential")}
    ref = clips["sequential"]
    for mode, clip in clips.items():
        assert clip.indices == ref.indices, mode
        assert np.array_equal(clip.frames, ref.frames), mode
        assert torch.equal(clip.input, ref.input), mode
    assert [frame_number(f) for f in ref.frames] == ref.indices
    plain = plain_decode(long_h264, ref.indices)
    assert all(np.array_equal(a, b) for a, b in zip(ref.frames, plain))


@pytest.mark.parametrize("name", ["vp9_webm", "h264_mkv", "mpeg4_avi"])
def test_seek_equals_sequential_without_a_full_index(name, videos):
    """WebM/MKV store no per-frame index: keyframes come from a packet-header pass."""
    spec = SPEC.with_(num_frames=5)
    clips = [load_clip(videos[name], spec=spec, uniform=True, decode=m) for m in ("auto", "seek", "sequential")]
    for clip in clips[1:]:
        assert clip.indices == clips[0].indices and np.array_equal(clip.frames, clips[0].frames)
    assert [frame_number(f) for f in clips[0].frames] == clips[0].indices


def test_auto_decodes_only_from_the_keyframe_before_each_sample(tmp_path, monkeypatch):
    import nlviz.video as video

    path = make_video(tmp_path / "gop15.mp4", n=150, gop=15, options={"preset": "ultrafast", "sc_threshold": "0"})
    decoded = []
    plain = video._Video._decode

    def counting(self):
        for idx, frame in plain(self):
            decoded.append(idx)
            yield idx, frame

    monkeypatch.setattr(video._Video, "_decode", counting)
    spec = SPEC.with_(num_frames=5, stride=2)
    clips = {}
    for mode in ("auto", "sequential"):
        decoded.clear()
        clips[mode] = load_clip(path, spec=spec, uniform=True, decode=mode)
        clips[mode, "n"] = len(decoded)
    assert clips["auto"].indices == [15, 45, 75, 105, 135]  # each one a keyframe: nothing else decoded
    assert clips["auto", "n"] <= 5 + 2 and clips["sequential", "n"] >= 136
    assert np.array_equal(clips["auto"].frames, clips["sequential"].frames)
    decoded.clear()
    dense = load_clip(path, spec=spec, start_frame=100, decode="auto")  # frames 100..108: seek to 90, read on
    assert dense.indices == [100, 102, 104, 106, 108] and min(decoded) == 90 and len(decoded) <= 19 + 2


@pytest.mark.parametrize(
    "codec, fmt, pix, opts",
    [
        ("libx264", "mpegts", "yuv420p", {"preset": "ultrafast", "crf": "10"}),
        ("mpeg2video", "mpeg", "yuv420p", {"qscale": "2"}),  # MPEG-PS: timestamps shift after a seek
        ("flv", "flv", "yuv420p", {"qscale": "2"}),
        ("apng", "apng", "rgb24", None),
    ],
)
def test_more_containers(codec, fmt, pix, opts):
    data = make_video(io.BytesIO(), codec, fmt, n=60, gop=12, pix_fmt=pix, options=opts).getvalue()
    for kwargs in (dict(uniform=True), dict(start_frame=25), dict(stride=14)):
        clips = [load_clip(data, spec=SPEC, decode=m, **kwargs) for m in ("auto", "seek", "sequential")]
        assert [frame_number(f) for f in clips[0].frames] == clips[0].indices, kwargs
        for clip in clips[1:]:
            assert clip.indices == clips[0].indices and np.array_equal(clip.frames, clips[0].frames)
    assert load_clip(data, spec=SPEC, uniform=True).indices == [7, 22, 37, 52]


def test_start_in_seconds_and_past_the_end(videos):
    clip = load_clip(videos["h264_mp4"], spec=SPEC, start=0.5)
    assert clip.indices[0] == 15 and clip.timestamps[0] == pytest.approx(0.5)
    with pytest.raises(VideoTooShortError, match="past the end"):
        load_clip(videos["h264_mp4"], spec=SPEC, start_frame=40)
    with pytest.raises(ValueError):
        load_clip(videos["h264_mp4"], spec=SPEC, start=1.0, start_frame=3)


def test_default_clip_is_centred(videos):
    clip = load_clip(videos["h264_mp4"], spec=SPEC)  # span 10 of 40 frames
    assert clip.indices == [15, 18, 21, 24] and clip.stride == 3


def test_too_short_error_loop_and_reduce_stride(tmp_path):
    path = make_video(tmp_path / "short.mp4", n=20)
    spec = SPEC.with_(num_frames=8, stride=4)  # needs 29 frames
    with pytest.raises(VideoTooShortError) as e:
        load_clip(path, spec=spec)
    assert "20 frames" in str(e.value) and "29" in str(e.value)
    loop = load_clip(path, spec=spec, on_short="loop")
    assert loop.indices == [0, 4, 8, 12, 16, 0, 4, 8]
    assert [frame_number(f) for f in loop.frames] == loop.indices
    assert any("wraps" in n for n in loop.notes)
    reduced = load_clip(path, spec=spec, on_short="reduce_stride")
    assert reduced.stride == 2 and reduced.indices == [2 + 2 * i for i in range(8)]  # span 15, centred
    assert any("stride lowered from 4 to 2" in n for n in reduced.notes)
    assert [frame_number(f) for f in reduced.frames] == reduced.indices
    tiny = make_video(tmp_path / "tiny.mp4", n=6)
    repeated = load_clip(tiny, spec=spec, on_short="reduce_stride")
    assert repeated.indices == [0, 0, 1, 2, 3, 3, 4, 5]
    assert [frame_number(f) for f in repeated.frames] == repeated.indices
    with pytest.raises(VideoTooShortError, match="6 frames"):
        load_clip(tiny, spec=spec, uniform=True)


def test_one_frame_video_is_too_short(tmp_path):
    path = make_video(tmp_path / "one.mp4", n=1)
    with pytest.raises(VideoTooShortError) as e:
        load_clip(path, spec=SPEC, on_short="error")
    assert "has 1 frame " in str(e.value) and "need 10" in str(e.value)


def test_max_side_downscales_right_after_decoding(tmp_path):
    frames = [cv2.resize(numbered_frame(i), (128, 64), interpolation=cv2.INTER_NEAREST) for i in range(12)]
    path = make_video(tmp_path / "wide.mp4", n=12, size=(128, 64), frames=frames, options={"crf": "5"})
    clip = load_clip(path, spec=SPEC.with_(num_frames=2, stride=5), max_side=64)
    assert clip.frames.shape == (2, 32, 64, 3) and clip.source_size == (128, 64)
    assert any("downscaled from 128x64 to 64x32" in n for n in clip.notes)
    assert [frame_number(cv2.resize(f, (W, H))) for f in clip.frames] == clip.indices
    g = clip.geometry
    assert g.frame_size == (64, 32) and g.resized_size == (64, 32) and g.crop_offset == (16, 0)
    assert g.frame_to_source(10.0, 10.0) == (20.0, 20.0)
    assert g.to_input(1, 32.0, 16.0) == (1.5, 16.0, 16.0)
    full = load_clip(path, spec=SPEC.with_(num_frames=2, stride=5), max_side=None)
    assert full.frames.shape == (2, 64, 128, 3) and not any("downscaled" in n for n in full.notes)


def test_progress_is_reported(videos):
    seen = []
    load_clip(videos["h264_mp4"], spec=SPEC, uniform=True, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(isinstance(m, str) and m for _, m in seen)


def test_input_normalization_and_channel_order():
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[...] = (200, 100, 50)
    png = png_bytes(rgb)
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 5.0)
    clip = load_clip(png, spec=SPEC.with_(mean=mean, std=std))
    x = clip.input[0, :, 0]
    assert torch.allclose(x[:, 5, 5], torch.tensor([95.0, 20.0, 4.0]))
    bgr = load_clip(png, spec=SPEC.with_(mean=mean, std=std, channel_order="BGR")).input[0, :, 0]
    assert torch.allclose(bgr[:, 5, 5], torch.tensor([(50 - 10) / 2, (100 - 20) / 4, (200 - 30) / 5]))
    full = load_clip(png, spec=SPEC, crop="full")
    assert full.input.shape == (1, 3, 4, 32, 43)  # 64x48 -> short side 32 -> 43x32 (42.67 rounded)


def test_input_matches_a_direct_resize_and_crop(videos):
    clip = load_clip(videos["h264_mp4"], spec=ClipSpec(num_frames=2, stride=4, short_side=40, crop_size=36))
    g = clip.geometry
    assert g.resized_size == (53, 40) and g.crop_offset == (8, 2)  # 64*40/48 = 53.3
    ref = cv2.resize(clip.frames[1], (53, 40), interpolation=cv2.INTER_LINEAR)[2:38, 8:44].astype(np.float32)
    ref = (ref - 114.75) / 57.375
    assert torch.allclose(clip.input[0, :, 1], torch.from_numpy(ref).permute(2, 0, 1), atol=1e-5)


# ----------------------------------------------------------------------------- geometry


def test_geometry_center_crop_by_hand():
    g = ClipGeometry.build((320, 240), short_side=256, crop_size=224, num_frames=8)
    assert g.resized_size == (341, 256) and g.crop_offset == (58, 16) and g.input_size == (224, 224)
    assert g.input_shape == (8, 224, 224)
    t, y, x = g.to_input(3, 160.0, 120.0)
    assert (t, y, x) == (3.5, pytest.approx(112.0), pytest.approx(160 * 341 / 320 - 58))
    assert g.crop_rect() == pytest.approx((58 * 320 / 341, 15.0, 282 * 320 / 341, 225.0))
    for bad in [(3, 10.0, 120.0), (3, 160.0, 5.0), (3, 160.0, 230.0)]:  # inside the frame, outside the crop
        with pytest.raises(OutsideCropError, match="centre crop"):
            g.to_input(*bad)
    for bad in [(3, -1.0, 120.0), (3, 320.0, 120.0), (3, 160.0, 240.0)]:
        with pytest.raises(OutsideCropError, match="outside the 320x240 frame"):
            g.to_input(*bad)
    for k in (-1, 8, 2.5):
        with pytest.raises(OutsideCropError, match="sampled frames"):
            g.to_input(k, 160.0, 120.0)
    assert issubclass(OutsideCropError, ValueError) and issubclass(OutsideCropError, VideoError)


def test_geometry_odd_size_and_full_frame():
    g = ClipGeometry.build((321, 241), short_side=256, crop_size=224, num_frames=4)
    assert g.resized_size == (341, 256) and g.crop_offset == (58, 16)  # 321 * 256 / 241 = 340.98
    t, y, x = g.to_input(0, 160.5, 120.5)  # the frame's centre pixel -> the resized frame's centre
    assert x == pytest.approx(170.5 - 58) and y == pytest.approx(128.0 - 16)
    f = ClipGeometry.build((321, 241), short_side=256, crop_size=224, crop="full", num_frames=4)
    assert f.crop_offset == (0, 0) and f.input_size == (341, 256)
    assert f.crop_rect() == (0.0, 0.0, 321.0, 241.0)
    assert f.to_input(2, 0.0, 0.0) == (2.5, 0.0, 0.0)
    assert f.to_input(2, 320.999, 240.999)[1:] == (pytest.approx(255.999, abs=1e-2), pytest.approx(340.999, abs=1e-2))
    portrait = ClipGeometry.build((241, 321), short_side=256, crop_size=224)
    assert portrait.resized_size == (256, 341) and portrait.crop_offset == (16, 58)


@pytest.mark.parametrize("crop", ["center", "full"])
@pytest.mark.parametrize("size", [(320, 240), (321, 241), (241, 321), (1280, 720), (64, 48)])
def test_geometry_round_trips(size, crop):
    short, side = (32, 32) if size == (64, 48) else (256, 224)
    g = ClipGeometry.build(size, short_side=short, crop_size=side, crop=crop, num_frames=6)
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = g.crop_rect()
    for _ in range(50):
        k = int(rng.integers(6))
        x, y = rng.uniform(x0, x1 - 1e-6), rng.uniform(y0, y1 - 1e-6)
        t, yi, xi = g.to_input(k, x, y)
        k2, x2, y2 = g.to_frame(t, yi, xi)
        assert k2 == k and x2 == pytest.approx(x, abs=1e-9) and y2 == pytest.approx(y, abs=1e-9)
    # the whole input maps onto the crop rectangle, and boxes onto sub-rectangles
    wi, hi = g.input_size
    frames, rect = g.input_box_to_frames(0, 6, 0, hi, 0, wi)
    assert frames == list(range(6)) and rect == pytest.approx(g.crop_rect())


def test_input_box_to_frames_time_overlap():
    g = ClipGeometry.build((320, 240), short_side=256, crop_size=224, num_frames=8)
    assert g.input_box_to_frames(2, 4, 0, 1, 0, 1)[0] == [2, 3]
    assert g.input_box_to_frames(2.0000000001, 3.9999999999, 0, 1, 0, 1)[0] == [2, 3]  # float noise at edges
    assert g.input_box_to_frames(1.5, 2.5, 0, 1, 0, 1)[0] == [1, 2]  # partial overlap counts
    assert g.input_box_to_frames(7, 9, 0, 1, 0, 1)[0] == [7]  # clipped to the clip


def test_query_cell_and_key_region_with_an_i3d_like_block():
    """I3D: temporal stride 2 before the block (T_in 8 -> 4), spatial stride 32 (224 -> 7); keys pooled 1x2x2."""
    g = ClipGeometry.build((320, 240), short_side=256, crop_size=224, num_frames=8)
    clip = Clip(
        frames=np.zeros((8, 240, 320, 3), np.uint8),
        indices=list(range(0, 16, 2)),
        timestamps=[i / 15 for i in range(8)],
        fps=30.0,
        source_size=(320, 240),
        input=torch.zeros(1, 3, 8, 224, 224),
        geometry=g,
    )
    block = StandInBlock((8, 224, 224), (4, 7, 7), key_grid=(4, 3, 3))
    # frame 5, pixel centre (160.5, 120.5): input x = 160.5 * 341/320 - 58 = 113.03, y = 112.53
    assert clip.query_cell(block, 5, 160.5, 120.5) == (2, 3, 3)
    assert clip.query_cell(block, 0, 55.0, 16.0) == (0, 0, 0)
    with pytest.raises(OutsideCropError):
        clip.query_cell(block, 5, 10.0, 120.0)
    frames, (x0, y0, x1, y1) = clip.key_region(block, (1, 0, 2))
    assert frames == [2, 3]  # key time slice 1 covers input frames [2, 4)
    # key column 2 covers input x [149.33, 224), row 0 covers y [0, 74.67)
    assert x0 == pytest.approx((224 * 2 / 3 + 58) * 320 / 341) and x1 == pytest.approx(282 * 320 / 341)
    assert y0 == pytest.approx(16 * 240 / 256) and y1 == pytest.approx((224 / 3 + 16) * 240 / 256)
    # every key cell's region lies inside the crop, and the cells tile it
    cx0, cy0, cx1, cy1 = g.crop_rect()
    area = 0.0
    for h in range(3):
        for w in range(3):
            _, (a, b, c, d) = clip.key_region(block, (0, h, w))
            assert cx0 - 1e-9 <= a < c <= cx1 + 1e-9 and cy0 - 1e-9 <= b < d <= cy1 + 1e-9
            area += (c - a) * (d - b)
    assert area == pytest.approx((cx1 - cx0) * (cy1 - cy0))


def test_query_cell_on_a_real_clip(videos):
    clip = load_clip(videos["h264_mp4"], spec=ClipSpec(num_frames=8, stride=2, short_side=32, crop_size=32))
    block = StandInBlock(clip.input.shape[2:], (4, 4, 4))
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    assert (x0, y0, x1, y1) == (pytest.approx(5 * 64 / 43), 0.0, pytest.approx(37 * 64 / 43), 48.0)
    assert clip.query_cell(block, 7, x1 - 0.01, y1 - 0.01) == (3, 3, 3)
    assert clip.query_cell(block, 0, x0, y0) == (0, 0, 0)


# ----------------------------------------------------------------------------- errors


def tiny_png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 64


def test_error_family():
    for cls in (NotAVideoError, CorruptVideoError, EmptyVideoError, UnsupportedCodecError, VideoTooLargeError,
                VideoTooShortError, OutsideCropError, VideoNotFoundError):
        assert issubclass(cls, VideoError)


def test_garbage_and_text_are_not_videos(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(NotAVideoError):
        load_clip(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), spec=SPEC)
    text = tmp_path / "notes.txt"  # FFmpeg alone would play a .txt file as ANSI art
    text.write_text("Some notes about a video.\n" * 40)
    with pytest.raises(NotAVideoError, match="text file"):
        load_clip(text, spec=SPEC)
    renamed = tmp_path / "notes.mp4"
    renamed.write_text("Some notes about a video.\n" * 40)
    with pytest.raises(NotAVideoError, match="text file"):
        load_clip(renamed, spec=SPEC)
    with pytest.raises(NotAVideoError, match="text file"):
        load_clip(b"<html><body>404 Not Found</body></html>", spec=SPEC)


def test_empty_inputs(tmp_path):
    with pytest.raises(EmptyVideoError):
        load_clip(b"", spec=SPEC)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyVideoError):
        load_clip(empty, spec=SPEC)


def test_zero_frame_mp4_is_empty(tmp_path):
    path = tmp_path / "noframes.mp4"
    with av.open(str(path), "w") as out:  # a header, no frame
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    with pytest.raises(EmptyVideoError):
        load_clip(path, spec=SPEC)


def test_truncated_mp4(videos, tmp_path):
    data = videos["h264_mp4"].read_bytes()  # moov at the end: cut, the index is gone
    with pytest.raises(CorruptVideoError, match="damaged or truncated"):
        load_clip(data[: len(data) // 2], spec=SPEC)
    with pytest.raises(CorruptVideoError):
        load_clip(data[:100], spec=SPEC)
    # index at the front (faststart) and the frame data cut: the readable frames are used, and said so
    fast_path = tmp_path / "fast.mp4"
    write_mp4(np.stack([numbered_frame(i) for i in range(40)]), fast_path, fps=30)
    full = fast_path.read_bytes()
    with av.open(io.BytesIO(full)) as c:
        sizes = [p.size for p in c.demux(video=0) if p.size]
    cut = full[: len(full) - sum(sizes[20:])]  # drop the last 20 frames' data
    clip = load_clip(cut, spec=SPEC, uniform=True)
    assert clip.total_frames < 40 and any("header announces 40" in n for n in clip.notes)
    assert [frame_number(f) for f in clip.frames] == clip.indices


def test_huge_dimensions_in_the_header():
    with pytest.raises(VideoTooLargeError, match="100000x100000"):
        load_clip(tiny_png_header(100000, 100000), spec=SPEC)
    gif = b"GIF89a" + struct.pack("<HH", 60000, 60000) + b"\xf7\x00\x00" + b"\0" * 800
    with pytest.raises(VideoTooLargeError, match="60000x60000"):
        load_clip(gif, spec=SPEC)
    y4m = b"YUV4MPEG2 W40000 H30000 F30:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 1000
    with pytest.raises(VideoTooLargeError, match="40000x30000"):
        load_clip(y4m, spec=SPEC)
    ivf = b"DKIF" + struct.pack("<HHIHHIIII", 0, 32, 0x30385056, 20000, 9000, 30, 1, 1, 0) + b"\0" * 100
    with pytest.raises(VideoTooLargeError, match="20000x9000"):
        load_clip(ivf, spec=SPEC)


def test_too_many_bytes(videos):
    with pytest.raises(VideoTooLargeError, match="MiB"):
        load_clip(videos["h264_mp4"], spec=SPEC, max_bytes=1000)
    with pytest.raises(VideoTooLargeError):
        load_clip(videos["h264_mp4"].read_bytes(), spec=SPEC, max_bytes=1000)


def test_unsupported_codec(videos):
    data = videos["mpeg4_avi"].read_bytes().replace(b"FMP4", b"ZZZZ")  # a fourcc no decoder knows
    with pytest.raises(UnsupportedCodecError, match="cannot decode"):
        load_clip(data, spec=SPEC)


def test_animated_webp_is_decoded_or_refused_clearly():
    if not has_encoder("libwebp_anim"):
        pytest.skip("this PyAV build has no animated WebP encoder")
    data = make_video(io.BytesIO(), "libwebp_anim", "webp", n=12, pix_fmt="yuva420p").getvalue()
    try:
        clip = load_clip(data, spec=SPEC, uniform=True)
    except UnsupportedCodecError as e:  # FFmpeg builds without an animated WebP decoder
        assert "animated WebP" in str(e)
    else:
        assert [frame_number(f) for f in clip.frames] == clip.indices


def test_audio_only_and_missing_file(tmp_path):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\1" * 8000)
    with pytest.raises(NotAVideoError, match="no video"):
        load_clip(buf.getvalue(), spec=SPEC)
    with pytest.raises(VideoNotFoundError):
        load_clip(tmp_path / "nope.mp4", spec=SPEC)
    with pytest.raises(FileNotFoundError):
        load_clip(tmp_path / "nope.mp4", spec=SPEC)
    with pytest.raises(NotAVideoError, match="folder"):
        load_clip(tmp_path, spec=SPEC)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_files_are_closed_on_success_and_on_error(videos, tmp_path):
    def open_fds():
        return len(list(Path("/proc/self/fd").iterdir()))

    truncated = tmp_path / "cut.mp4"
    data = videos["h264_mp4"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    load_clip(videos["h264_mp4"], spec=SPEC)  # warm up: imports, decoder threads
    before = open_fds()
    for _ in range(3):
        load_clip(videos["vp9_webm"], spec=SPEC, uniform=True)  # includes the keyframe pass and reopening
        load_clip(videos["h264_mp4"], spec=SPEC)
        with pytest.raises(CorruptVideoError):
            load_clip(truncated, spec=SPEC)
        with pytest.raises(VideoTooShortError):
            load_clip(videos["h264_mp4"], spec=SPEC, start_frame=39)
    assert open_fds() == before


def test_bad_arguments(videos):
    v = videos["h264_mp4"]
    for kwargs in (dict(crop="left"), dict(on_short="pad"), dict(decode="fast"), dict(num_frames=0), dict(start=-1.0)):
        with pytest.raises(ValueError):
            load_clip(v, spec=SPEC, **kwargs)
    with pytest.raises(TypeError):
        load_clip(12345, spec=SPEC)


def test_probe(videos):
    info = probe(videos["vp9_webm"])
    assert info.codec in ("vp9", "libvpx-vp9") and info.frames == 40 and info.fps == pytest.approx(30)
    assert info.size == (W, H) and not info.is_still and info.duration == pytest.approx(40 / 30)
    assert probe(png_bytes(numbered_frame(1))).is_still


# ----------------------------------------------------------------------------- export


def test_write_mp4_plays_back_with_even_size(tmp_path):
    frames = np.stack([cv2.resize(numbered_frame(i), (65, 49), interpolation=cv2.INTER_NEAREST) for i in range(10)])
    path = write_mp4(frames, tmp_path / "out.mp4", fps=7.5)
    assert path == tmp_path / "out.mp4"
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert (s.width, s.height) == (66, 50) and s.frames == 10 and float(s.average_rate) == pytest.approx(7.5)
    back = load_clip(path, spec=SPEC, num_frames=10, stride=1, max_side=None)
    assert back.frames.shape == (10, 50, 66, 3)
    assert np.abs(back.frames[:, :49, :65].astype(int) - frames).mean() < 4  # padding repeats the edge
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: browsers can start playing at once


def test_encode_mp4_bytes_and_write_gif(tmp_path):
    frames = np.stack([numbered_frame(i) for i in range(6)])
    clip = load_clip(encode_mp4(frames, fps=6), spec=SPEC, num_frames=6, stride=1)
    assert [frame_number(f) for f in clip.frames] == list(range(6))
    gif = write_gif(frames, tmp_path / "out.gif", fps=5)
    back = load_clip(gif, spec=SPEC, num_frames=6, stride=1)
    assert [frame_number(f) for f in back.frames] == list(range(6))
    assert back.timestamps[1] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        write_mp4(frames[..., 0], tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


# ----------------------------------------------------------------------------- the bundled sample


def test_bundled_big_buck_bunny():
    root = Path(__file__).resolve().parent.parent / "assets" / "samples"
    path = root / "bigbuckbunny.mp4"
    assert path.stat().st_size <= 1 << 20
    assert "Blender Foundation" in (root / "CREDITS.md").read_text()
    info = probe(path)
    assert info.codec == "h264" and info.frames >= 64
    clip = load_clip(path, spec=ClipSpec(num_frames=32, stride=2))
    assert clip.input.shape == (1, 3, 32, 224, 224) and clip.notes == []
