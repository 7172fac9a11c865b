"""Benchmark: the hover view in headless Chromium (Debian's /usr/bin/chromium), figures printed.

1. Bytes per (analysis, block) sent to the browser (:mod:`nlviz.viewdata`) for the bundled demo
   models, the I3D probe's stages, and an I3D-R50 NL (random weights) res3/res4 at 32x224x224.
2. Hover -> every frame's overlay redrawn (pointer event to the end of the redraw, in the page),
   median and p95 over N moves, for a demo model, the probe at Mixed_4f (when its weights are on
   disk) and the I3D-R50 NL res3 block; in a bare page that loads the view's own module (the
   baseline beside it: the same row computed in Python, BlockCapture.row).
3. The real app (`streamlit run app.py` on 127.0.0.1): cold start -> first attention view,
   websocket messages sent while hovering, click -> numbers and address updated (median of N
   clicks), the Models page's first view.

Run: python bench/hover.py [--moves 200] [--clicks 8] [--skip-app]
"""

from __future__ import annotations

import argparse
import http.server
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

from nlviz import viewdata, zoo
from nlviz.capture import record
from nlviz.explore import Sampling, analyze
from nlviz.samples import bundled_samples

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PROBE = "i3d_inception.kinetics400_probe"


def _pct(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, tuple[bytes, str]] = {}

    def do_GET(self):  # noqa: N802
        body, kind = self.files.get(self.path, (b"", "text/plain"))
        self.send_response(200 if self.path in self.files else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


PAGE = (b"<!doctype html><meta charset=utf-8><body style='margin:0'><div id=host style='width:1100px'>"
        b"<div class=nlv-root></div></div><script type=module>import mount from '/view.js';"
        b"window.mountView = async (name) => { const r = await fetch('/p/' + name);"
        b" const u8 = new Uint8Array(await r.arrayBuffer());"
        b" mount({data: u8, parentElement: document.getElementById('host'), setTriggerValue: () => {}});"
        b" await window.__nlvizAttentionBus.views.get(name).ready; return true; };</script>")


def payload_sizes(cases: dict) -> None:
    print("\n== bytes sent per (analysis, block): factors (float32) and the whole payload (frames atlas included)")
    print(f"{'model / block':58s} {'queries':>10s} {'keys':>10s} {'C':>5s} {'factors MiB':>12s} {'payload MiB':>12s}  mode")
    for label, (b, clip) in cases.items():
        data = viewdata.pack(b, clip)
        mode = viewdata.unpack(data).header["mode"]
        print(f"{label:58s} {'x'.join(map(str, b.query_shape)):>10s} {'x'.join(map(str, b.key_shape)):>10s} "
              f"{b.theta.shape[1]:5d} {viewdata.factor_bytes(b) / 2**20:12.2f} {len(data) / 2**20:12.2f}  {mode}")


def hover_latency(pw, cases: dict, moves: int) -> None:
    print(f"\n== hover -> all frames redrawn, {moves} moves across one frame (bare page, 1440x900)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Files.files = {"/": (PAGE, "text/html"), "/view.js": ((ROOT / "nlviz/ui/attention_view.js").read_bytes(),
                                                           "text/javascript")}
    base = f"http://127.0.0.1:{server.server_address[1]}"
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
    try:
        for label, (b, clip) in cases.items():
            name = f"case{len(_Files.files)}"
            data = viewdata.pack(b, clip, labels={"view_id": name})
            if viewdata.unpack(data).header["mode"] != "browser":
                print(f"{label:58s} over the budget: server rows on click")
                continue
            _Files.files[f"/p/{name}"] = (data, "application/octet-stream")
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(base + "/")
            page.wait_for_function("() => !!window.mountView")
            page.evaluate("(n) => window.mountView(n)", name)
            box = page.locator("canvas.nlv-frame").first.bounding_box()
            for i in range(moves):
                f = (i % 50) / 50
                page.mouse.move(box["x"] + box["width"] * (0.05 + 0.9 * f), box["y"] + box["height"] * (0.3 + 0.4 * f))
                page.wait_for_timeout(8)
            page.wait_for_timeout(100)
            ms = page.evaluate(f"() => window.__nlvizAttentionBus.views.get('{name}').stats.hoverMs")
            cell = b.query_at(0.5, b.input_shape[1] / 2, b.input_shape[2] / 2)
            t0 = time.perf_counter()
            for _ in range(20):
                b.row(cell)
            py_ms = (time.perf_counter() - t0) / 20 * 1000
            print(f"{label:58s} {len(ms):4d} redraws: median {statistics.median(ms):6.1f} ms, p95 {_pct(ms, 95):6.1f} ms, "
                  f"max {max(ms):6.1f} ms   (python row alone: {py_ms:.2f} ms; frames drawn: {len(clip.frames)})")
            page.close()
    finally:
        browser.close()
        server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_figures(pw, clicks: int) -> None:
    print("\n== the real app (streamlit run app.py on 127.0.0.1, Chromium 1440x900)")
    port = _free_port()
    env = {**os.environ, "NLVIZ_VIEW": "hover"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    launched = time.monotonic()
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        sent, received = [], []
        page.on("websocket", lambda ws: (ws.on("framesent", lambda p: sent.append(len(p))),
                                         ws.on("framereceived", lambda p: received.append(len(p)))))
        page.goto(url)
        page.wait_for_function("() => { const b = window.__nlvizAttentionBus; return !!b && "
                               "[...b.views.values()].some(v => v.bitmap && v.stats.draws > 0); }", timeout=120_000)
        cold = time.monotonic() - launched
        print(f"cold start (server launch) -> first attention view: {cold:.1f} s; "
              f"bytes received by then: {sum(received) / 2**20:.2f} MiB in {len(received)} messages")
        page.wait_for_timeout(1500)
        box = page.locator("canvas.nlv-frame").nth(2).bounding_box()
        n0, r0 = len(sent), len(received)
        for i in range(100):
            page.mouse.move(box["x"] + box["width"] * (0.1 + 0.008 * i), box["y"] + box["height"] * 0.5)
            page.wait_for_timeout(8)
        page.wait_for_timeout(300)
        ms = page.evaluate("() => window.__nlvizAttentionBus.views.get('explore').stats.hoverMs")
        print(f"100 hovers: {len(sent) - n0} websocket messages sent, {len(received) - r0} received; "
              f"redraw median {statistics.median(ms):.1f} ms, p95 {_pct(ms, 95):.1f} ms")
        lat, sizes = [], []
        for i in range(clicks):
            before = page.evaluate("() => location.search")
            rec = len(received)
            t0 = time.monotonic()
            box = page.locator("canvas.nlv-frame").nth(2).bounding_box()
            page.mouse.click(box["x"] + box["width"] * (0.4 + 0.03 * i), box["y"] + box["height"] * (0.3 + 0.05 * i))
            page.wait_for_function("(s) => location.search !== s", arg=before, timeout=30_000)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')")
            lat.append(time.monotonic() - t0)
            page.wait_for_timeout(400)
            sizes.append(sum(received[rec:]))
        print(f"click -> numbers and address updated, {clicks} clicks: median {statistics.median(lat):.2f} s, "
              f"max {max(lat):.2f} s; received per click: median {statistics.median(sizes) / 1024:.0f} KiB")
        page2 = browser.new_page(viewport={"width": 1440, "height": 900})
        t0 = time.monotonic()
        page2.goto(url + "/Models")
        page2.get_by_text("Non-local blocks").first.wait_for(timeout=120_000)
        page2.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')",
                                timeout=120_000)
        print(f"Models page: open -> first view (no script running): {time.monotonic() - t0:.1f} s")
        browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--clicks", type=int, default=8)
    ap.add_argument("--skip-app", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from playwright.sync_api import sync_playwright

    cases = {}
    for entry in zoo.list_entries(source="demo"):
        if not entry.pairwise:
            continue
        a = analyze(zoo.load(entry.name), bundled_samples()[next(n for n in bundled_samples() if n.startswith("synthetic"))],
                    Sampling())
        for b in a.capture:
            cases[f"{entry.name} {b.name}"] = (b, a.clip)
    if zoo.is_cached(PROBE):
        a = analyze(zoo.load(PROBE), bundled_samples()["bigbuckbunny"], Sampling(start_frame=0))
        for b in a.capture:
            cases[f"{PROBE} {b.name} (32x224)"] = (b, a.clip)
    else:
        print(f"({PROBE} not in the cache: its rows are not measured; nlviz download {PROBE})")
    from nlviz.models import build

    torch.manual_seed(0)
    r50 = build("i3d_nl5_r50").eval()
    a = analyze(r50, bundled_samples()["bigbuckbunny"], Sampling(num_frames=32, stride=2, start_frame=0))
    for name in ("res3.1.nl", "res4.1.nl"):
        if name in a.capture:
            cases[f"i3d_nl5_r50 (random) {name} (32x224)"] = (a.capture[name], a.clip)
    payload_sizes(cases)
    with sync_playwright() as pw:
        hover_cases = {k: v for k, v in cases.items()
                       if k.startswith("demo.embedded_gaussian") or "Mixed_4f" in k or "res3.1" in k}
        hover_latency(pw, hover_cases, args.moves)
        if not args.skip_app:
            app_figures(pw, args.clicks)


if __name__ == "__main__":
    main()
