"""nlviz.explore.query_view options: hiding the query's own neighbourhood."""

from __future__ import annotations

import numpy as np
import pytest

from nlviz import samples, zoo
from nlviz.explore import Sampling, analyze, own_neighbourhood, query_view


@pytest.fixture(scope="module")
def analysis():
    names = [n for n in zoo.names("demo") if zoo.get(n).pairwise in ("embedded_gaussian", "gaussian")]
    if not names:
        pytest.skip("no bundled softmax demo model")
    return analyze(zoo.load(names[0]), samples.bundled_samples()["synthetic_11"], Sampling())


def test_own_neighbourhood_by_hand(analysis):
    b = analysis.capture[analysis.capture.blocks[0]]  # queries 8x16x16, keys 8x8x8 (1x2x2 pooled)
    assert b.query_shape == (8, 16, 16) and b.key_shape == (8, 8, 8)
    mask = own_neighbourhood(b, (3, 5, 11), 1)  # key cell (3, 2, 5)
    expected = np.zeros((8, 8, 8), bool)
    expected[3, 1:4, 4:7] = True
    assert np.array_equal(mask, expected)
    edge = own_neighbourhood(b, (0, 0, 15), 2)  # clipped at the grid's border: key (0, 0, 7)
    assert edge.sum() == 3 * 3 and edge[0, :3, 5:].all()


def test_hiding_the_own_neighbourhood_hides_exactly_those_keys(analysis):
    clip, cap = analysis.clip, analysis.capture
    name = cap.blocks[0]
    b = cap[name]
    frame, x, y = 6, 22.0, 41.0
    full = query_view(cap, clip, name, frame, x, y, thumbs=analysis.thumbs)
    hidden = query_view(cap, clip, name, frame, x, y, thumbs=analysis.thumbs, hide_own=1)
    mask = own_neighbourhood(b, full.cell, 1)
    assert np.array_equal(full.row, hidden.row)  # the numbers still describe the whole row
    assert hidden.entropy == full.entropy
    # the hidden keys are drawn as "not seen" (NaN) where they lie, nothing else changes
    newly_nan = np.isnan(hidden.heat) & ~np.isnan(full.heat)
    assert newly_nan.any()
    frames_hidden = sorted(set(np.nonzero(newly_nan)[0]))
    kt = int(np.nonzero(mask.any(axis=(1, 2)))[0][0])
    slice_frames, _ = clip.geometry.input_box_to_frames(*b.key_box((kt, 0, 0)))
    assert frames_hidden == sorted(slice_frames)
    keep = ~np.isnan(hidden.heat)
    assert np.array_equal(hidden.heat[keep], full.heat[keep])
    # the colour scale and the top-k ignore them
    assert hidden.scale.vmax == pytest.approx(float(full.row[~mask].max()))
    assert all(not mask[k.cell] for k in hidden.top) and len(hidden.top) == len(full.top)
