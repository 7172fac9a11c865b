"""`nlviz attend`: what a query pixel attends to, in every non-local block, written to files.

    nlviz attend sample:synthetic_11 --frame 8 --xy 32 20 --out out/    # png, gif, mp4, npy, json per block

Writes the exports of :func:`nlviz.export.write_exports` for every non-local block (or the one
named) and prints the paths on stdout. A missing video, an unknown model or block, a frame out of
range or a pixel outside the crop exits with status 2 and a message that says what would work.
"""

from __future__ import annotations

import argparse
import sys

from ..names import DEFAULT_MODEL, EXPORT_FORMATS
from . import CommandError
from ._shared import analyze_clip, configure_query, configure_view, load, query_of, sampling_of, video_of

ALL_FORMATS = ",".join(EXPORT_FORMATS)

EXAMPLES = """\
examples:
  nlviz attend sample:synthetic_11 --frame 8 --xy 32 20 --out out/
  nlviz attend walk.mp4 --model demo.gaussian --block res3.0.nl --formats png,json
  nlviz attend clip.webm --crop full --frames 8 --stride 4

VIDEO is a file or sample:NAME; {samples}.
Files are named <block>_f<frame>_x<x>_y<y>.<ext>: png (every frame's overlay, query marked),
gif and mp4 (the overlays animated), npy (the attention row on the key grid, float32),
json (a view spec: `nlviz.export.reproduce` computes the same view from it).
Coordinates are pixels of the displayed (sampled) frames; a pixel's centre is i + 0.5.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    configure_view(parser, EXAMPLES)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"zoo name or checkpoint file (default {DEFAULT_MODEL}; `nlviz zoo` lists names)")
    parser.add_argument("--block", help="only this non-local block (default: every block, one set of files each)")
    parser.add_argument("--head", type=int, default=None,
                        help="one attention head of multi-head blocks (default: the mean over heads); blocks "
                             "without that head show the mean, and files of one head are named <block>_h<head>_...")
    parser.add_argument("--formats", default=ALL_FORMATS, help=f"comma-separated (default {ALL_FORMATS})")
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second of the gif/mp4 (default 4)")
    configure_query(parser, width=192)


def _formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise CommandError(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from {ALL_FORMATS}")
    return formats


def main(args: argparse.Namespace) -> int:
    from ..explore import query_view
    from ..export import view_spec, write_exports

    formats = _formats(args.formats)
    if args.fps <= 0:
        raise CommandError(f"--fps must be positive, got {args.fps:g}")
    sampling = sampling_of(args)
    video, video_name = video_of(args.video)
    model, model_name = load(args.model)
    analysis = analyze_clip(model, args.model, video, sampling, args.width)
    blocks = analysis.capture.blocks
    if args.block is not None and args.block not in blocks:
        raise CommandError(f"{args.model} has no block {args.block!r}; its non-local blocks: {', '.join(blocks)}")
    frame, x, y = query_of(args, analysis.clip)
    clip = analysis.clip
    print(f"{args.model} on {args.video}: query frame {frame} (source frame {clip.indices[frame]}), "
          f"pixel ({x:g}, {y:g})", file=sys.stderr)
    if analysis.note:
        print(f"note: {analysis.note}", file=sys.stderr)
    if args.head is not None and args.head < 0:
        raise CommandError(f"--head must be 0 or more, got {args.head}")
    for block in [args.block] if args.block else blocks:
        heads = int(getattr(analysis.capture[block], "num_heads", 1))
        head = args.head if args.head is not None and args.head < heads and heads > 1 else None
        if args.head is not None and head is None:
            if args.block:
                raise CommandError(f"block {block} has {heads} head{'s' * (heads > 1)}: no head {args.head}")
            print(f"note: {block} has {heads} head{'s' * (heads > 1)}: its files show the mean", file=sys.stderr)
        capture = analysis.capture if head is None else analysis.capture.with_heads({block: head})
        view = query_view(capture, clip, block, frame, x, y, thumbs=analysis.thumbs)
        spec = view_spec(model_name, video_name, sampling, block, frame, x, y, view.pairwise, head=head)
        for path in write_exports(args.out, analysis, view, spec, formats=formats, fps=args.fps).values():
            print(path)
    return 0
