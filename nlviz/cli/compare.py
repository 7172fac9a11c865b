"""`nlviz compare`: several models' attention for one query, side by side: a PNG and a JSON of metrics.

    nlviz compare sample:synthetic_11 --models demo.gaussian demo.dot_product --frame 8 --xy 32 20

Writes one side-by-side PNG (a column per model, a row per block row) and a JSON of the
comparison's metrics (:mod:`nlviz.compare`), and prints both paths on stdout. Bad input exits
with status 2 and a message that says what would work.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import CommandError
from ._shared import analyze_clip, configure_query, configure_view, load, query_of, sampling_of, video_of

EXAMPLES = """\
examples:
  nlviz compare sample:synthetic_11 --frame 8 --xy 32 20
  nlviz compare sample:synthetic_11 --models demo.gaussian demo.dot_product --per-model-scale
  nlviz compare walk.mp4 --models demo.embedded_gaussian demo.concatenation --out cmp/

VIDEO is a file or sample:NAME; {samples}.
The query (frame, x, y) is given in the first model's displayed frames and mapped to the
others by source frame and relative position. Blocks are paired by name, else by stage and
order. Writes compare_f<frame>_x<x>_y<y>.png and .json (per block row: entropy, mass on the
query's frame, and per pair of models the correlation and Jensen-Shannon divergence of the
attention on the common pixel grid).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    configure_view(parser, EXAMPLES)
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="two or more zoo names or checkpoint files (default: the bundled demo "
                             "models that have non-local blocks)")
    configure_query(parser, width=96)
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--shared-scale", dest="shared_scale", action="store_true", default=True,
                       help="one colour scale per block row across models (default)")
    scale.add_argument("--per-model-scale", dest="shared_scale", action="store_false",
                       help="each model's own colour scale")


def _default_models() -> list[str]:
    from .. import zoo

    return [e.name for e in zoo.list_entries("demo") if e.pairwise is not None]


def main(args: argparse.Namespace) -> int:
    import cv2

    from ..compare import compare, comparison_image

    names = list(args.models) if args.models else _default_models()
    if len(names) < 2:
        raise CommandError(f"compare needs at least two models, got {len(names)}: {' '.join(names) or '(none)'}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CommandError(f"model(s) given twice: {', '.join(twice)}")
    sampling = sampling_of(args)
    video, video_name = video_of(args.video)
    analyses = {}
    for name in names:
        model, _ = load(name)
        analyses[name] = analyze_clip(model, name, video, sampling, args.width)
    frame, x, y = query_of(args, analyses[names[0]].clip)
    for name, analysis in analyses.items():
        if analysis.note:
            print(f"note: {name}: {analysis.note}", file=sys.stderr)
    comp = compare(analyses, frame, x, y, shared_scale=args.shared_scale)
    for (row, model), note in comp.notes.items():
        print(f"note: {row}, {model}: {note}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare_f{frame}_x{x:g}_y{y:g}"
    png, report = out / f"{stem}.png", out / f"{stem}.json"
    ok, buf = cv2.imencode(".png", comparison_image(comp)[..., ::-1].copy())
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise CommandError("PNG encoding failed")
    png.write_bytes(buf.tobytes())
    data = {"video": video_name, "sampling": asdict(sampling), "query": {"frame": frame, "x": x, "y": y},
            **comp.to_dict()}
    report.write_text(json.dumps(data, indent=2))
    print(png)
    print(report)
    return 0
