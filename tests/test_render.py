"""Rendering: key rows placed on the right pixels and frames, honest scales, overlays, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from nlviz.capture import BlockCapture
from nlviz.render import (
    arrows_montage,
    colorize,
    frame_heatmaps,
    montage,
    overlay,
    shannon_entropy,
    temporal_profile,
    top_keys,
    value_range,
)
from nlviz.video import ClipGeometry
import torch


def block(query_shape=(2, 4, 4), key_shape=(2, 2, 2), input_shape=(4, 16, 16)) -> BlockCapture:
    """A capture with the given grids (the factors' values do not matter for placement)."""
    theta = torch.zeros(1, 1, *query_shape)
    phi = torch.zeros(1, 1, *key_shape)
    return BlockCapture("b", "embedded_gaussian", "spacetime", 1.0, 1, theta, phi, None, input_shape)


def test_heatmap_places_each_key_cell_on_its_pixels_and_frames():
    # input 4 frames x 16 x 16, full frame shown at 32 x 32 (2 displayed px per input px)
    geo = ClipGeometry.build((32, 32), short_side=16, crop_size=16, crop="full", num_frames=4)
    b = block()
    row = np.arange(8, dtype=np.float32).reshape(2, 2, 2)  # value = 4 t + 2 h + w
    heat = frame_heatmaps(row, b, geo, (32, 32), 4)
    # key t'=0 covers input frames 0-1, t'=1 frames 2-3; key (h, w) covers 8x8 input px = 16x16 displayed
    assert heat[0, 0, 0] == 0 and heat[1, 0, 31] == 1 and heat[1, 31, 0] == 2 and heat[0, 20, 20] == 3
    assert heat[2, 0, 0] == 4 and heat[3, 31, 31] == 7
    assert not np.isnan(heat).any()


def test_heatmap_is_nan_outside_the_centre_crop():
    # a 48 x 32 frame, short side 16 -> 24 x 16, centre crop 16: columns 4..20 resized = 8..40 displayed
    geo = ClipGeometry.build((48, 32), short_side=16, crop_size=16, crop="center", num_frames=4)
    heat = frame_heatmaps(np.ones((2, 2, 2), np.float32), block(), geo, (32, 48), 4)
    assert np.isnan(heat[:, :, :8]).all() and np.isnan(heat[:, :, 40:]).all()
    assert (heat[:, :, 8:40] == 1).all()


def test_value_ranges_are_honest():
    soft = value_range([np.array([0.1, 0.7, 0.2])], signed_variant=False)
    assert (soft.vmin, soft.vmax, soft.signed) == (0.0, 0.7, False)
    signed = value_range([np.array([-0.3, 0.1]), np.array([0.2])], signed_variant=True)
    assert (signed.vmin, signed.vmax, signed.signed, signed.cmap) == (-0.3, 0.3, True, "RdBu_r")
    positive = value_range([np.array([0.0, 0.4])], signed_variant=True)  # f/N >= 0 (concatenation)
    assert (positive.vmin, positive.vmax, positive.signed) == (0.0, 0.4, False)


def test_diverging_map_is_white_at_zero_blue_below_red_above():
    scale = value_range([np.array([-1.0, 1.0])], signed_variant=True)
    rgb = colorize(np.array([[-1.0, 0.0, 1.0]]), scale)[0]
    assert rgb[1].min() > 240  # white
    assert rgb[0][2] > rgb[0][0] and rgb[2][0] > rgb[2][2]  # blue, red


def test_overlay_dims_unseen_pixels_and_darkens_unattended_ones():
    frames = np.full((1, 2, 2, 3), 200, np.uint8)
    heat = np.array([[[np.nan, 0.0], [0.5, 1.0]]], np.float32)
    out = overlay(frames, heat, value_range([heat[~np.isnan(heat)]], False), alpha=0.6)
    assert (out[0, 0, 0] == 90).all()  # 200 * 0.45: outside the model's view
    assert (out[0, 0, 1] == 104).all()  # zero weight: the frame darkened by 0.6 * 0.8, uncoloured
    top = out[0, 1, 1].astype(int)  # the largest weight: full brightness, tinted by the colour map's top
    assert top.sum() > out[0, 1, 0].astype(int).sum() > out[0, 0, 1].astype(int).sum()


def test_top_keys_sorted_and_placed():
    geo = ClipGeometry.build((32, 32), short_side=16, crop_size=16, crop="full", num_frames=4)
    row = np.zeros((2, 2, 2), np.float32)
    row[1, 0, 1], row[0, 1, 0] = 0.6, 0.3
    top = top_keys(row, block(), geo, k=2)
    assert [t.cell for t in top] == [(1, 0, 1), (0, 1, 0)]
    assert top[0].frames == (2, 3) and (top[0].x, top[0].y) == (24.0, 8.0)
    assert top[1].frames == (0, 1) and (top[1].x, top[1].y) == (8.0, 24.0)
    img = arrows_montage(np.zeros((4, 32, 32, 3), np.uint8), 0, (16, 16), top, columns=4)
    assert img.shape == (32, 4 * 32 + 3 * 4, 3) and img.any()


def test_profile_entropy_montage():
    row = np.full((2, 2, 2), 1 / 8)
    assert temporal_profile(row).tolist() == [0.5, 0.5]
    assert shannon_entropy(row) == pytest.approx(np.log(8))
    assert np.isnan(shannon_entropy(np.zeros(8)))  # attends nowhere: no entropy to speak of
    assert montage([np.zeros((2, 3, 3), np.uint8)] * 3, columns=2, pad=1).shape == (5, 7, 3)
