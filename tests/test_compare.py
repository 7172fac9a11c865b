"""Comparing models: block matching, the common pixel grid, metrics, shared scales, notes."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nlviz import samples, zoo
from nlviz.capture import BlockCapture
from nlviz.compare import (
    GAP,
    LABEL_WIDTH,
    SIGNED,
    SOFTMAX,
    cell_image,
    compare,
    comparison_image,
    frame_mass,
    jensen_shannon,
    map_query,
    match_blocks,
    pair_metrics,
    pearson,
    pixel_density,
    tile_columns,
    weight_kind,
)
from nlviz.explore import Sampling, analyze
from nlviz.models import BlockInfo, build
from nlviz.video import ClipGeometry, OutsideCropError

VARIANTS = ("demo.embedded_gaussian", "demo.gaussian", "demo.dot_product", "demo.concatenation")


@pytest.fixture(scope="module")
def synthetic():
    return next(p for n, p in samples.bundled_samples().items() if n.startswith("synthetic_"))


@pytest.fixture(scope="module")
def analyses(synthetic):
    return {name: analyze(zoo.load(name), synthetic, thumb_width=64) for name in VARIANTS}


def fake_block(query_shape=(2, 4, 4), key_shape=(2, 2, 2), input_shape=(4, 16, 16)) -> BlockCapture:
    """A capture with the given grids (the factors' values do not matter for placement)."""
    theta = torch.zeros(1, 1, *query_shape)
    phi = torch.zeros(1, 1, *key_shape)
    return BlockCapture("b", "embedded_gaussian", "spacetime", 1.0, 1, theta, phi, None, input_shape)


# ----------------------------------------------------------------------------- matching


def _infos(*blocks: tuple[str, str, int]) -> list[BlockInfo]:
    """BlockInfo of (name, the family's stage, spatial stride) triples, as a family would give them."""
    return [BlockInfo(name, stage, (2, s, s), "nonlocal", name, depth=i) for i, (name, stage, s) in enumerate(blocks)]


def test_blocks_match_by_name_then_by_stage_and_ordinal():
    rows = match_blocks({
        "a": _infos(("res3.1.nl", "res3", 8), ("res3.3.nl", "res3", 8), ("res4.1.nl", "res4", 16)),
        "b": _infos(("res3.1.nl", "res3", 8), ("res3.2.nl", "res3", 8), ("res4.0.nl", "res4", 16),
                    ("res4.2.nl", "res4", 16)),
        # Inception-v1: Mixed_4x at res4's stride (16 px), Mixed_5x at res5's; paired by stride, not by name
        "c": _infos(("Mixed_4b.nl", "Mixed_4b", 16), ("Mixed_5c.nl", "Mixed_5c", 32)),
        "d": _infos(("head.nl", "head", 64)),
    })
    by_label = {r.label: r.blocks for r in rows}
    assert [r.label for r in rows] == ["res3.1.nl", "res3 #1", "res4 #1", "res4.2.nl", "Mixed_5c.nl", "head.nl"]
    assert by_label["res3.1.nl"] == {"a": "res3.1.nl", "b": "res3.1.nl", "c": None, "d": None}
    assert by_label["res3 #1"] == {"a": "res3.3.nl", "b": "res3.2.nl", "c": None, "d": None}
    assert by_label["res4 #1"] == {"a": "res4.1.nl", "b": "res4.0.nl", "c": "Mixed_4b.nl", "d": None}
    assert by_label["res4.2.nl"] == {"a": None, "b": "res4.2.nl", "c": None, "d": None}
    assert [r.stage for r in rows[-2:]] == ["res5", "head"]


# ----------------------------------------------------------------------------- the pixel grid


def test_density_of_one_hot_rows_is_hand_derived_and_their_jsd_is_one():
    # 4 frames x 16 x 16 input shown at 32 x 32: key t'=0 covers frames 0-1, key (h, w) 16 x 16 displayed px
    geo = ClipGeometry.build((32, 32), short_side=16, crop_size=16, crop="full", num_frames=4)
    b = fake_block()
    first, second = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    first[0, 0, 0], second[0, 1, 1] = 1.0, 1.0
    da, db = pixel_density(first, b, geo, (32, 32)), pixel_density(second, b, geo, (32, 32))
    assert da.shape == (4, 32, 32) and da.sum() == pytest.approx(1.0)
    expected = np.zeros((4, 32, 32))
    expected[0:2, 0:16, 0:16] = 1.0 / (2 * 16 * 16)  # weight / (frames x pixels the key covers)
    np.testing.assert_allclose(da, expected)
    assert frame_mass(da, 0) == pytest.approx(0.5) and frame_mass(da, 2) == 0.0
    assert jensen_shannon(da, db) == pytest.approx(1.0)
    assert jensen_shannon(da, da) == 0.0
    # a grid that cuts key cells in the middle of pixels still keeps every key's whole weight
    row = np.random.default_rng(0).random((2, 2, 2))
    for size in ((21, 21), (7, 13)):
        assert pixel_density(row, b, geo, size).sum() == pytest.approx(row.sum())


def test_jensen_shannon_and_pearson_by_hand():
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    m = (p + q) / 2
    expected = 0.5 * math.log2(1 / m[0]) + 0.5 * (0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1]))
    assert jensen_shannon(p, q) == pytest.approx(expected)
    assert jensen_shannon(2 * p, q) == pytest.approx(expected)  # normalized first
    assert math.isnan(jensen_shannon(np.zeros(2), q))
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0) and pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_pair_metrics_use_only_shared_source_frames():
    d = np.random.default_rng(1).random((4, 3, 3))
    same = pair_metrics(d, [0, 1, 2, 3], d[2:], [2, 3])
    assert same.shared_frames == 2 and same.jsd == pytest.approx(0.0, abs=1e-12)
    assert same.correlation == pytest.approx(1.0)
    assert pair_metrics(d, [0, 1, 2, 3], d, [10, 11, 12, 13]).shared_frames == 0


def test_map_query_matches_source_frames_and_scales_pixels():
    geo = lambda w, h: SimpleNamespace(frame_size=(w, h))  # noqa: E731
    ref = SimpleNamespace(indices=[0, 1, 2, 3], geometry=geo(64, 64))
    other = SimpleNamespace(indices=[0, 2, 4], geometry=geo(128, 96))
    (k, x, y), note = map_query(ref, other, 2, 10.0, 32.0)
    assert (k, x, y) == (1, 20.0, 48.0) and note is None
    (k, _, _), note = map_query(ref, other, 3, 10.0, 32.0)
    assert k in (1, 2) and "nearest" in note


# ----------------------------------------------------------------------------- comparisons of real models


def test_a_model_compared_with_itself_has_correlation_one_and_jsd_zero(analyses):
    a = analyses["demo.embedded_gaussian"]
    comp = compare({"one": a, "two": a}, 8, 32.5, 20.5)
    assert [r.label for r in comp.rows] == a.capture.blocks
    for row in comp.rows:
        pair = comp.metrics[row.label].pairs[("one", "two")]
        assert pair.correlation == pytest.approx(1.0)
        assert pair.jsd == pytest.approx(0.0, abs=1e-12)
        assert pair.shared_frames == len(a.clip.frames)
        m = comp.metrics[row.label].models["one"]
        view = comp.views[(row.label, "one")]
        assert m.entropy == view.entropy and 0 < m.own_frame_mass <= m.own_slice_share <= 1


def test_different_variants_differ_and_shared_scale_covers_every_model(analyses):
    # a query where the dot-product demo's rows go negative in every block (on the demo task's sample)
    comp = compare(analyses, 8, 32.5, 32.5)
    for row in comp.rows:
        pair = comp.metrics[row.label].pairs[("demo.embedded_gaussian", "demo.gaussian")]
        assert 0 < pair.jsd <= 1
        scales = comp.scale[row.label]
        # one scale per kind of weight: probabilities from 0, f/N diverging (dot_product is negative somewhere)
        assert set(scales) == {SOFTMAX, SIGNED} and scales[SIGNED].signed and not scales[SOFTMAX].signed
        for m in VARIANTS:
            view = comp.views[(row.label, m)]
            scale = scales[weight_kind(view.signed)]
            assert view.scale == scale
            assert scale.vmin <= view.row.min() and view.row.max() <= scale.vmax
        softmax = [comp.views[(row.label, m)].row.max() for m in VARIANTS if not comp.views[(row.label, m)].signed]
        assert scales[SOFTMAX].vmax == pytest.approx(max(softmax))  # not stretched by the f/N models
    json.dumps(comp.to_dict(), allow_nan=False)  # NaN metrics (all-zero rows) become null

    own = compare(analyses, 8, 32.5, 32.5, shared_scale=False)
    assert not own.scale
    label = own.rows[0].label
    assert own.views[(label, "demo.gaussian")].scale != own.views[(label, "demo.dot_product")].scale


def test_a_model_without_a_block_at_a_stage_gets_none_and_a_note(analyses, synthetic):
    torch.manual_seed(0)
    fewer = build("tiny_i3d_nl2", blocks=(1, 2, 1, 1), temporal_kernels=((3,), (3, 3), (3,), (1,)),
                  nonlocal_blocks=((), (1,), (), ()), num_classes=4)
    comp = compare({"demo": analyses["demo.gaussian"], "fewer": analyze(fewer, synthetic, thumb_width=64)},
                   8, 32.5, 20.5)
    assert [r.label for r in comp.rows] == ["res3 #1", "res4.0.nl"]
    assert comp.rows[0].blocks == {"demo": "res3.0.nl", "fewer": "res3.1.nl"}
    assert comp.views[("res3 #1", "fewer")] is not None
    assert comp.views[("res4.0.nl", "fewer")] is None
    assert "no non-local block" in comp.notes[("res4.0.nl", "fewer")]
    with pytest.raises(ValueError, match="no non-local block"):
        cell_image(comp, ("res4.0.nl", "fewer"))
    assert set(comp.metrics["res4.0.nl"].models) == {"demo"} and not comp.metrics["res4.0.nl"].pairs
    assert comp.metrics["res3 #1"].pairs[("demo", "fewer")].shared_frames == 16


def test_a_query_outside_one_models_crop_gives_a_note_not_an_exception():
    video = samples.bundled_samples()["bigbuckbunny"]  # 640 x 360: the centre crop leaves out the sides
    model = zoo.load("demo.gaussian")
    full = analyze(model, video, Sampling(crop="full"), thumb_width=96)
    center = analyze(model, video, Sampling(crop="center"), thumb_width=96)
    comp = compare({"full": full, "center": center}, 8, 50.0, 100.0)
    for row in comp.rows:
        assert comp.views[(row.label, "full")] is not None
        assert comp.views[(row.label, "center")] is None
        assert "crop" in comp.notes[(row.label, "center")]
    inside = compare({"full": full, "center": center}, 8, 320.0, 180.0)
    pair = inside.metrics[inside.rows[0].label].pairs[("full", "center")]
    assert 0 <= pair.jsd <= 1 and pair.shared_frames == 16
    with pytest.raises(OutsideCropError):
        compare({"full": full}, 99, 10.0, 10.0)


def test_a_query_frame_another_clip_lacks_maps_to_the_nearest_with_a_note(analyses, synthetic):
    sparse = analyze(zoo.load("demo.gaussian"), synthetic, Sampling(num_frames=8, stride=2), thumb_width=64)
    assert sparse.clip.indices == [0, 2, 4, 6, 8, 10, 12, 14]
    dense = analyses["demo.gaussian"]
    comp = compare({"dense": dense, "sparse": sparse}, 4, 32.5, 20.5)
    assert comp.queries["sparse"][0] == 2 and not comp.notes
    assert comp.metrics[comp.rows[0].label].pairs[("dense", "sparse")].shared_frames == 8
    comp = compare({"dense": dense, "sparse": sparse}, 5, 32.5, 20.5)
    assert "nearest" in comp.notes[(comp.rows[0].label, "sparse")]


def test_comparison_image_has_a_column_per_model_and_a_row_per_block_row(analyses):
    comp = compare(analyses, 8, 32.5, 20.5)
    img = comparison_image(comp)
    cols = tile_columns(16)
    cell = max(160, cols * 64 + (cols - 1) * 2)
    assert img.dtype == np.uint8 and img.shape[1] == LABEL_WIDTH + len(VARIANTS) * (cell + GAP) + GAP
    tiles = cols * 64 + (cols - 1) * 2  # 16 frames of 64 px thumbnails, 4 x 4
    assert cell_image(comp, (comp.rows[0].label, "demo.gaussian")).shape == (tiles, tiles, 3)
