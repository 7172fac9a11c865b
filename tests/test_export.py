"""Exports of a view: the view spec and its round trip, and the bytes behind the download buttons."""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import replace

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from nlviz import zoo
from nlviz.download import sha256_file
from nlviz.explore import Sampling, analyze, query_view
from nlviz.export import (
    LEGEND_HEIGHT,
    PAD,
    ExportError,
    HashMismatchError,
    ViewSpec,
    ViewSpecError,
    checkpoint_sha256,
    montage_png,
    overlay_gif,
    overlay_mp4,
    query_marker,
    reproduce,
    resolve_video,
    rows_npy,
    spec_json,
    video_sha256,
    view_spec,
    write_exports,
)

MODEL, VIDEO, BLOCK, QUERY = "demo.gaussian", "sample:synthetic_11", "res3.0.nl", (8, 32.5, 20.5)


@pytest.fixture(scope="module")
def spec() -> ViewSpec:
    return view_spec(MODEL, VIDEO, Sampling(), BLOCK, *QUERY, pairwise="gaussian")


@pytest.fixture(scope="module")
def direct():
    """The view computed the ordinary way, without any spec."""
    analysis = analyze(zoo.load(MODEL), resolve_video(VIDEO))
    return query_view(analysis.capture, analysis.clip, BLOCK, *QUERY, thumbs=analysis.thumbs), analysis


def test_spec_json_round_trip_reproduces_the_same_row(spec, direct):
    again = ViewSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec_json(spec)) == json.loads(spec.to_json())
    view, analysis = reproduce(again)
    assert np.array_equal(view.row, direct[0].row)
    assert view.block == BLOCK and view.pairwise == "gaussian" and analysis.clip.indices == direct[1].clip.indices


def test_spec_records_the_file_hashes(spec):
    assert spec.checkpoint_sha256 == sha256_file(zoo.cached_path(MODEL))
    assert spec.video_sha256 == sha256_file(resolve_video(VIDEO)) == video_sha256(resolve_video(VIDEO).read_bytes())
    assert checkpoint_sha256(str(zoo.cached_path(MODEL))) == spec.checkpoint_sha256  # a path works as well
    with pytest.raises(ExportError, match="demo"):
        checkpoint_sha256("demo.no_such_model")
    with pytest.raises(ExportError, match="synthetic_11"):
        resolve_video("sample:no_such_sample")


def test_file_hashes_follow_changes_to_the_file(tmp_path):
    f = tmp_path / "clip.bin"
    f.write_bytes(b"one")
    first = video_sha256(f)
    f.write_bytes(b"two")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert video_sha256(f) != first and video_sha256(f) == video_sha256(b"two")


def test_a_tampered_hash_names_what_differs(spec):
    with pytest.raises(HashMismatchError, match="video") as e:
        reproduce(replace(spec, video_sha256="0" * 64))
    assert e.value.what == "video"
    with pytest.raises(HashMismatchError, match="checkpoint") as e:
        reproduce(replace(spec, checkpoint_sha256="f" * 64))
    assert e.value.what == "checkpoint"
    view, _ = reproduce(replace(spec, video_sha256="0" * 64), verify=False)
    assert view.block == BLOCK


def test_a_spec_can_name_a_checkpoint_file(spec, direct):
    path_spec = replace(spec, model=str(zoo.cached_path(MODEL)))
    view, _ = reproduce(ViewSpec.from_json(path_spec.to_json()))
    assert np.array_equal(view.row, direct[0].row)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("block"), "lacks field"),
        (lambda d: d.update(colour="red"), "unknown field"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(video_sha256="abc"), "video_sha256"),
        (lambda d: d.update(frame=-1), "frame"),
        (lambda d: d.update(x="left"), "'x'"),
        (lambda d: d["sampling"].update(crop="zoom"), "crop"),
        (lambda d: d["sampling"].update(fps=3), "unknown sampling"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(spec, change, message):
    data = json.loads(spec.to_json())
    change(data)
    with pytest.raises(ViewSpecError, match=message) as e:
        ViewSpec.from_json(json.dumps(data))
    assert isinstance(e.value, ValueError)


def test_not_json_is_refused():
    with pytest.raises(ViewSpecError, match="JSON"):
        ViewSpec.from_json("{not json")
    with pytest.raises(ViewSpecError, match="object"):
        ViewSpec.from_json("[1, 2]")


def test_montage_png_decodes_to_the_montage_size(direct):
    view, analysis = direct
    t, h, w = view.overlays.shape[:3]
    for columns in (8, 5, 100):
        img = cv2.imdecode(np.frombuffer(montage_png(analysis, view, *QUERY, columns=columns), np.uint8),
                           cv2.IMREAD_COLOR)
        cols = min(columns, t)
        rows = math.ceil(t / cols)
        assert img.shape == (rows * h + (rows - 1) * PAD + LEGEND_HEIGHT, cols * w + (cols - 1) * PAD, 3)
    plain = cv2.imdecode(np.frombuffer(montage_png(analysis, view, *QUERY, legend=False), np.uint8), cv2.IMREAD_COLOR)
    assert plain.shape[0] == 2 * h + PAD


def test_gif_has_one_frame_per_sampled_frame(direct):
    view, analysis = direct
    with Image.open(io.BytesIO(overlay_gif(view, marker=query_marker(analysis, view, *QUERY)))) as gif:
        assert gif.format == "GIF" and gif.n_frames == len(view.overlays)
        assert gif.size == (view.overlays.shape[2], view.overlays.shape[1])


def test_mp4_is_h264_yuv420p_with_one_frame_per_sampled_frame(direct):
    view, _ = direct
    with av.open(io.BytesIO(overlay_mp4(view))) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == len(view.overlays)
    assert frames[0].shape == view.overlays.shape[1:]  # 192 x 192: even, nothing padded


def test_npy_holds_the_exact_row(direct):
    view, _ = direct
    row = np.load(io.BytesIO(rows_npy(view)))
    assert row.dtype == np.float32 and np.array_equal(row, view.row)
    both = np.load(io.BytesIO(rows_npy({BLOCK: view, "other": view.row * 2})))
    assert set(both.files) == {BLOCK, "other"} and np.array_equal(both[BLOCK], view.row)


def test_write_exports_writes_each_format_under_one_name(tmp_path, spec, direct):
    view, analysis = direct
    written = write_exports(tmp_path / "out", analysis, view, spec)
    assert list(written) == ["png", "gif", "mp4", "npy", "json"]
    for fmt, path in written.items():
        assert path.name == f"res3.0.nl_f8_x32.5_y20.5.{fmt}" and path.stat().st_size > 0
    assert ViewSpec.from_json(written["json"].read_text()) == spec
    assert np.array_equal(np.load(written["npy"]), view.row)
    with pytest.raises(ValueError, match="bmp"):
        write_exports(tmp_path, analysis, view, spec, formats=["bmp"])
