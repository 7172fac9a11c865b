"""The hover view in Chromium for token attention (torchvision's MViT and Swin3D, small random
configurations): the head picked through the control channel drives the rows, which equal
TokenCapture's per head and for the mean, and the status line names the head and the class
token's share. The bare page and payload server are test_hover_browser's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nlviz import viewdata
from nlviz.capture import record
from nlviz.video import Clip, ClipGeometry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_hover_browser import ROWS_JS, _Files, harness  # noqa: E402,F401 (the fixture is used by name)
from test_torchvision_video import small_mvit, small_swin  # noqa: E402

pytestmark = pytest.mark.browser

SET_HEAD_JS = """([group, id, head]) => { const b = window.__nlvizAttentionBus;
    const c = Object.assign({}, b.control.get(group) || {group}, {heads: {[id]: head}});
    b.control.set(group, c); window.dispatchEvent(new CustomEvent("nlviz-control", {detail: group})); }"""


def _clip(t: int, size: int) -> Clip:
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 255, (t, size, size + 8, 3), dtype=np.uint8)
    geo = ClipGeometry.build((size + 8, size), short_side=size, crop_size=size, num_frames=t)
    x = torch.from_numpy(rng.standard_normal((1, 3, t, size, size)).astype(np.float32))
    return Clip(frames, list(range(t)), [k / 8 for k in range(t)], 8.0, (size + 8, size), x, geo)


def _queries(clip: Clip, n: int = 10):
    rng = np.random.default_rng(5)
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    return [(int(rng.integers(0, len(clip.frames))), float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
            for _ in range(n)]


@pytest.mark.parametrize("kind", ["mvit", "swin"])
def test_browser_token_rows_follow_the_picked_head(kind, harness, new_page):  # noqa: F811
    if kind == "mvit":
        model, clip, block = small_mvit(True), _clip(8, 32), "blocks.1.attn"
    else:
        model, clip, block = small_swin(), _clip(6, 40), "features.0.1.attn"
    with torch.no_grad():
        _, cap = record(model, clip.input)
    b = cap[block]
    view_id = f"tok_{kind}"
    _Files.files[f"/p/{view_id}"] = (viewdata.pack(b, clip, labels={"view_id": view_id}), "application/octet-stream")
    page = new_page()
    page.goto(harness)
    page.wait_for_function("() => window.harnessReady === true")
    page.evaluate("(n) => window.mountView(n)", view_id)
    queries = _queries(clip)
    for head in [None, *range(b.num_heads)]:
        page.evaluate(SET_HEAD_JS, [view_id, view_id, head])
        got = page.evaluate(ROWS_JS, [view_id, queries, None])
        worst = 0.0
        for (k, x, y), g in zip(queries, got):
            cell = clip.query_cell(b, k, x, y)
            assert tuple(g["cell"]) == cell
            worst = max(worst, float(np.abs(np.asarray(g["row"]) - b.row(cell, head=head).numpy().ravel()).max()))
            if b.key_extra:
                assert g["extra"] == pytest.approx(b.extra_weight(cell, head=head), abs=1e-5)
        assert worst <= 1e-5, (head, worst)
    # hovering shows the head and, for MViT, the class token's share in the status line
    page.evaluate(SET_HEAD_JS, [view_id, view_id, 1])
    canvas = page.locator("canvas.nlv-frame").nth(2).bounding_box()
    page.mouse.move(canvas["x"] + canvas["width"] * 0.5, canvas["y"] + canvas["height"] * 0.5)
    page.wait_for_timeout(150)
    status = page.locator(".nlv-status").inner_text()
    assert f"head 1 of {b.num_heads}" in status, status
    if kind == "mvit":
        assert "class token:" in status and "(not drawn)" in status, status
