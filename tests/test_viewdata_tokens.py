"""The hover view's payload for token attention (MViT, Swin3D), and the browser's rows against
TokenCapture's, per head and for the head mean.

The view's own module (nlviz/ui/attention_view.js) runs under Node (its row code needs no DOM):
``computeRow`` on a payload packed here, for query cells and heads, against ``TokenCapture.row``
and ``extra_weight``. Skipped where ``node`` is missing; tests/browser covers the page itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from nlviz import viewdata
from nlviz.capture import record
from nlviz.video import Clip, ClipGeometry

from test_torchvision_video import small_mvit, small_swin

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "nlviz" / "ui" / "attention_view.js"

RUNNER = """
import { readFileSync } from "node:fs";
const mod = await import(process.argv[2]);
const u8 = new Uint8Array(readFileSync(process.argv[3]));
const { header, arrays } = mod.unpack(u8);
const jobs = JSON.parse(readFileSync(process.argv[4], "utf8"));
const out = jobs.map(([cell, head]) => {
  const view = { header, arrays, id: "v", control: { heads: { v: head } } };
  const row = mod.computeRow(view, cell);
  const box = header.tokens.rule === "swin_window" ? mod.windowBox(header, cell) : null;
  return { row: Array.from(row), extra: view.extraWeight, box };
});
console.log(JSON.stringify(out));
"""


def _clip(t: int, h: int, w: int) -> Clip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    geo = ClipGeometry.build((w, h), short_side=min(h, w), crop_size=min(h, w), num_frames=t)
    x = torch.from_numpy(rng.standard_normal((1, 3, t, min(h, w), min(h, w))).astype(np.float32))
    return Clip(frames, list(range(t)), [k / 8 for k in range(t)], 8.0, (w, h), x, geo)


def _browser_rows(tmp_path, payload: bytes, jobs) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    mod = tmp_path / "attention_view.mjs"
    mod.write_text(JS.read_text())
    (tmp_path / "run.mjs").write_text(RUNNER)
    (tmp_path / "payload.bin").write_bytes(payload)
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    res = subprocess.run([node, str(tmp_path / "run.mjs"), mod.as_uri(), str(tmp_path / "payload.bin"),
                          str(tmp_path / "jobs.json")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _check(tmp_path, b, clip, n_cells=6):
    data = viewdata.pack(b, clip, labels={"view_id": "v"})
    view = viewdata.unpack(data)
    h = view.header
    assert h["mode"] == "browser" and h["attention"] == "tokens"
    assert h["tokens"]["heads"] == b.num_heads and h["tokens"]["key_extra"] == b.key_extra
    assert view.arrays["theta"].shape == (int(np.prod(b.query_shape)), b.num_heads * b.channels)
    assert view.arrays["phi"].shape == (b.key_extra + int(np.prod(b.key_shape)), b.num_heads * b.channels)
    rng = np.random.default_rng(3)
    cells = [tuple(int(rng.integers(0, s)) for s in b.query_shape) for _ in range(n_cells)]
    cells.append(tuple(s - 1 for s in b.query_shape))
    jobs = [[list(c), head] for c in cells for head in [None, *range(b.num_heads)]]
    got = _browser_rows(tmp_path, data, jobs)
    worst = 0.0
    for (cell, head), g in zip(jobs, got):
        want = b.row(tuple(cell), head=head).numpy().ravel()
        worst = max(worst, float(np.abs(np.asarray(g["row"]) - want).max()))
        if getattr(b.rule, "window_box", None) is not None:
            assert [tuple(r) for r in g["box"]] == list(b.rule.window_box(tuple(cell)))
        if b.key_extra:
            assert g["extra"] == pytest.approx(b.extra_weight(tuple(cell), head=head), abs=1e-5)
        else:
            assert g["extra"] is None
    assert worst <= 1e-5, worst
    return h


def test_mvit_rows_in_the_browser_equal_python(tmp_path):
    model = small_mvit(True)
    clip = _clip(8, 32, 40)
    with torch.no_grad():
        _, cap = record(model, clip.input)
    h = _check(tmp_path, cap["blocks.0.attn"], clip)
    assert h["tokens"]["rule"] == "mvit_rel_pos" and h["tokens"]["extra_label"] == "class token"
    _check(tmp_path, cap["blocks.1.attn"], clip)  # two heads, pooled queries
    _check(tmp_path, cap["blocks.3.attn"], clip)  # q and k off the qkv projection


def test_mvit_v1_global_rows_in_the_browser(tmp_path):
    model = small_mvit(False)
    clip = _clip(8, 32, 32)
    with torch.no_grad():
        _, cap = record(model, clip.input)
    assert _check(tmp_path, cap["blocks.1.attn"], clip)["tokens"]["rule"] == "global"


def test_swin_window_rows_in_the_browser_with_shift_and_padding(tmp_path):
    model = small_swin()
    clip = _clip(6, 40, 44)
    with torch.no_grad():
        _, cap = record(model, clip.input)
    for name in ("features.0.0.attn", "features.0.1.attn", "features.2.1.attn"):
        h = _check(tmp_path, cap[name], clip)
        assert h["tokens"]["rule"] == "swin_window"
    assert cap["features.0.1.attn"].key_extra > 0  # padding is an extra key there


def test_token_factor_bytes_and_budget():
    model = small_mvit(True)
    clip = _clip(8, 32, 32)
    with torch.no_grad():
        _, cap = record(model, clip.input)
    b = cap["blocks.0.attn"]
    c = b.num_heads * b.channels
    assert viewdata.factor_bytes(b) == 4 * c * (256 + 64 + 1) + b.rule.nbytes
    assert viewdata.fits_budget(b) and not viewdata.fits_budget(b, budget=1000)
    data = viewdata.unpack(viewdata.pack(b, clip, budget=1000))
    assert data.header["mode"] == "server" and "theta" not in data.arrays
