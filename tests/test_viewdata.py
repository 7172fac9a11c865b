"""The view payload (nlviz.viewdata): what pack writes, unpack reads back, exactly; budget and fallbacks.

The browser's reader of the same layout is tested in Chromium (tests/browser/test_hover_browser.py),
which recomputes rows from these bytes and compares them with BlockCapture.row.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
import torch

from nlviz import viewdata
from nlviz.capture import record
from nlviz.nonlocal_block import NonLocalBlock
from nlviz.render import ValueRange, colorize
from nlviz.video import Clip, ClipGeometry


class Net(torch.nn.Module):
    def __init__(self, pairwise: str, dims: str = "spacetime") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv3d(3, 8, (1, 4, 4), stride=(1, 4, 4))
        self.nl = NonLocalBlock(8, pairwise=pairwise, dims=dims)
        for p in self.nl.parameters():
            torch.nn.init.normal_(p, std=0.3)

    def forward(self, x):
        return self.nl(self.stem(x)).mean(dim=(2, 3, 4))


def _clip(t: int = 4, size: int = 32) -> Clip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, size, size + 8, 3), dtype=np.uint8)
    geo = ClipGeometry.build((size + 8, size), short_side=size, crop_size=size, num_frames=t)
    x = torch.from_numpy(rng.standard_normal((1, 3, t, size, size)).astype(np.float32))
    return Clip(frames, list(range(t)), [k / 8 for k in range(t)], 8.0, (size + 8, size), x, geo)


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian", "dot_product", "concatenation"])
def test_round_trip(pairwise):
    clip = _clip()
    _, cap = record(Net(pairwise), clip.input)
    b = cap["nl"]
    data = viewdata.pack(b, clip, labels={"model": "<img src=x onerror=alert(1)>", "view_id": "v"})
    assert data[:4] == b"NLVZ" and struct.unpack("<I", data[4:8])[0] == viewdata.VERSION
    got = viewdata.unpack(data)
    h = got.header
    assert h["mode"] == "browser" and h["pairwise"] == pairwise and h["query_shape"] == list(b.query_shape)
    assert h["labels"]["model"] == "<img src=x onerror=alert(1)>"  # carried as data; the page sets it as text
    for s in h["sections"].values():
        assert s["offset"] % 8 == 0
    c = b.theta.shape[1]
    theta = b.theta[0].reshape(c, -1).T.numpy()
    phi = b.phi[0].reshape(c, -1).T.numpy()
    if pairwise == "concatenation":
        wf = b.concat_weight.numpy()
        np.testing.assert_allclose(got.arrays["q_term"], theta.astype(np.float64) @ wf[:c], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.arrays["k_term"], phi.astype(np.float64) @ wf[c:], rtol=1e-5, atol=1e-6)
        assert "theta" not in got.arrays
    else:
        np.testing.assert_array_equal(got.arrays["theta"], theta)
        np.testing.assert_array_equal(got.arrays["phi"], phi)
    # a row recomputed from the payload alone, the way the browser does it, is the block's row
    cell = (2, 3, 5)
    qi = (cell[0] * b.query_shape[1] + cell[1]) * b.query_shape[2] + cell[2]
    if pairwise == "concatenation":
        logits = np.maximum(got.arrays["q_term"][qi].astype(np.float64) + got.arrays["k_term"], 0)
    else:
        logits = got.arrays["phi"].astype(np.float64) @ got.arrays["theta"][qi].astype(np.float64)
    if pairwise in ("gaussian", "embedded_gaussian"):
        e = np.exp(logits * h["scale"] - (logits * h["scale"]).max())
        row = e / e.sum()
    else:
        row = logits / logits.size
    np.testing.assert_allclose(row, b.row(cell).numpy().ravel(), atol=1e-5, rtol=1e-4)
    # the frames: one JPEG atlas of every displayed frame
    sheet = cv2.imdecode(np.frombuffer(got.atlas_jpeg, np.uint8), cv2.IMREAD_COLOR)
    tw, th = h["atlas"]["tile"]
    assert sheet.shape[1] == h["atlas"]["columns"] * tw and h["atlas"]["count"] == len(clip.frames)


def test_slices_and_geometry_place_keys_as_the_server_does():
    clip = _clip()
    _, cap = record(Net("embedded_gaussian"), clip.input)
    h = viewdata.unpack(viewdata.pack(cap["nl"], clip)).header
    assert h["geometry"]["crop_rect"] == list(clip.geometry.crop_rect())
    assert [s["frames"] for s in h["slices"]] == [[k] for k in range(4)]
    x0, y0, x1, y1 = h["slices"][0]["rect"]
    assert (x0, y0, x1, y1) == pytest.approx(clip.geometry.crop_rect())


def test_colour_tables_are_the_ones_the_server_draws_with():
    clip = _clip()
    _, cap = record(Net("dot_product"), clip.input)
    arrays = viewdata.unpack(viewdata.pack(cap["nl"], clip)).arrays
    v = np.array([[0.0, 0.25, 0.5, 1.0]])
    for name, scale in (("lut_seq", ValueRange(0, 1, "inferno", False)), ("lut_div", ValueRange(-1, 1, "RdBu_r", True))):
        idx = np.clip((v - scale.vmin) / (scale.vmax - scale.vmin) * 255, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(arrays[name][idx[0]], colorize(v, scale)[0])


def test_over_budget_blocks_are_sent_without_factors():
    clip = _clip()
    _, cap = record(Net("embedded_gaussian"), clip.input)
    b = cap["nl"]
    assert viewdata.factor_bytes(b) == 4 * b.theta.shape[1] * (b.theta[0, 0].numel() + b.phi[0, 0].numel())
    got = viewdata.unpack(viewdata.pack(b, clip, budget=viewdata.factor_bytes(b) - 1))
    assert got.header["mode"] == "server" and "theta" not in got.arrays and "phi" not in got.arrays
    assert viewdata.fits_budget(b) and not viewdata.fits_budget(b, budget=100)


def test_bad_bytes_are_refused():
    with pytest.raises(viewdata.ViewDataError, match="magic"):
        viewdata.unpack(b"PNG\x00" + bytes(20))
    data = bytearray(viewdata.pack(record(Net("gaussian"), _clip().input)[1]["nl"], _clip()))
    data[4:8] = struct.pack("<I", 99)
    with pytest.raises(viewdata.ViewDataError, match="version 99"):
        viewdata.unpack(bytes(data))


def test_budget_of_an_i3d_r50_res3_block_at_32_frames():
    """The issue's reference case: I3D-R50 NL res3 at 32x224x224 (queries 16x28x28, keys 16x14x14, C' 256)."""
    nq, nk, c = 16 * 28 * 28, 16 * 14 * 14, 256
    assert 4 * c * (nq + nk) == 16_056_320 <= viewdata.BUDGET_BYTES  # 15.3 MiB: hovered in the browser
