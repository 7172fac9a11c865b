"""Benchmark: one click on the Explore page, server side, with the bundled default model.

Prints the cold path (decode + forward pass with capture, done once per model/video/sampling)
and the per-click path (one row + overlays for every frame, what a click costs after that),
plus the per-click cost of materializing the full matrix instead, as a ratio.
Run: python bench/explore.py [--model demo.embedded_gaussian] [--video synthetic_11]
"""

from __future__ import annotations

import argparse
import statistics
import time

from nlviz import zoo
from nlviz.explore import Sampling, analyze, query_view
from nlviz.samples import sample_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo = [e.name for e in zoo.list_entries(source="demo")]
    ap.add_argument("--model", default="demo.embedded_gaussian" if "demo.embedded_gaussian" in demo else demo[0])
    ap.add_argument("--video", default=None)
    ap.add_argument("--clicks", type=int, default=30)
    args = ap.parse_args()
    video = args.video or next(n for n in ("synthetic_11", "bigbuckbunny") if n)
    t0 = time.perf_counter()
    model = zoo.load(args.model)
    t1 = time.perf_counter()
    analysis = analyze(model, sample_path(video), Sampling())
    t2 = time.perf_counter()
    clip, cap = analysis.clip, analysis.capture
    h, w = clip.frames.shape[1:3]
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    print(f"{args.model} on {video}: {len(clip.frames)} frames {w}x{h}, blocks {cap.blocks}")
    print(f"cold: load model {t1 - t0:.2f} s, decode + forward with capture {t2 - t1:.2f} s")
    times = []
    for i in range(args.clicks):
        x = x0 + (x1 - x0) * ((i * 7919) % 97) / 97
        y = y0 + (y1 - y0) * ((i * 104729) % 89) / 89
        s = time.perf_counter()
        for block in cap.blocks:  # the page computes the selected block; all-blocks view computes each
            query_view(cap, clip, block, i % len(clip.frames), x, y, thumbs=analysis.thumbs)
        times.append((time.perf_counter() - s) / len(cap.blocks))
    med = statistics.median(times)
    print(f"click (one block: row + overlays for all {len(clip.frames)} frames + top-k): median {1000 * med:.1f} ms, "
          f"max {1000 * max(times):.1f} ms (goal <= 50 ms)")
    b = cap[cap.blocks[0]]
    s = time.perf_counter()
    for _ in range(5):
        b.matrix()
    naive = (time.perf_counter() - s) / 5
    s = time.perf_counter()
    for _ in range(50):
        b.row(b.query_at(1, 1, 1))
    row = (time.perf_counter() - s) / 50
    print(f"row alone {1000 * row:.3f} ms vs full matrix {1000 * naive:.1f} ms ({naive / row:.0f}x)")


if __name__ == "__main__":
    main()
