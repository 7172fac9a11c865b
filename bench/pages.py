"""Benchmark: the server-side cost of a click on the Compare page and in the reverse view, and of
the Models page's whole-block statistics, with the bundled demo models.

Each figure is printed next to its baseline from the same process: the Compare click against
the same number of single-model Explore clicks, the reverse view (a column: every query's row)
against one forward row, the statistics against one full matrix.
Run: python bench/pages.py [--video synthetic_11] [--clicks 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from nlviz import zoo
from nlviz.compare import compare
from nlviz.ui.compare import COMPARE_WIDTH
from nlviz.explore import Sampling, analyze, query_view, reverse_view
from nlviz.samples import sample_path
from nlviz.stats import capture_stats


def _median_ms(fn, n: int) -> float:
    times = []
    for i in range(n):
        s = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - s)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default="synthetic_11")
    ap.add_argument("--clicks", type=int, default=20)
    args = ap.parse_args()
    names = [e.name for e in zoo.list_entries(source="demo") if e.pairwise][:4]
    analyses = {n: analyze(zoo.load(n), sample_path(args.video), Sampling()) for n in names}
    first = analyses[names[0]]
    clip = first.clip
    x0, y0, x1, y1 = clip.geometry.crop_rect()
    t = len(clip.frames)

    def query(i: int) -> tuple[int, float, float]:
        return i % t, x0 + (x1 - x0) * ((i * 7919) % 97) / 97, y0 + (y1 - y0) * ((i * 104729) % 89) / 89

    blocks = first.capture.blocks
    single = _median_ms(lambda i: [query_view(a.capture, a.clip, b, *query(i), thumbs=a.thumbs)
                                   for a in analyses.values() for b in blocks], args.clicks)
    both = _median_ms(lambda i: compare(analyses, *query(i), thumb_width=COMPARE_WIDTH), args.clicks)
    cells = len(names) * len(blocks)
    print(f"Compare click, {len(names)} models x {len(blocks)} blocks (overlays {COMPARE_WIDTH} px wide): median "
          f"{both:.1f} ms; the same {cells} Explore views (192 px) {single:.1f} ms ({both / single:.2f}x)")

    cap = first.capture
    for b in blocks:
        row = _median_ms(lambda i: cap[b].row(cap[b].query_at(*first.clip.geometry.to_input(*query(i)))), args.clicks)
        rev = _median_ms(lambda i: reverse_view(cap, clip, b, *query(i), thumbs=first.thumbs), args.clicks)
        print(f"{b}: reverse view (column over {cap[b].query_shape} queries + overlays) {rev:.1f} ms; "
              f"one forward row {row:.2f} ms ({rev / row:.0f}x)")

    s = time.perf_counter()
    capture_stats(cap)
    stats = time.perf_counter() - s
    s = time.perf_counter()
    for b in cap:
        b.matrix()
    full = time.perf_counter() - s
    print(f"Models page statistics over every query of {len(cap)} blocks: {1000 * stats:.1f} ms; "
          f"full matrices alone {1000 * full:.1f} ms ({stats / full:.1f}x)")


if __name__ == "__main__":
    main()
