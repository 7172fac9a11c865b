"""`nlviz attend` and `nlviz compare`: what a query pixel attends to, written to files.

One module serves both commands (``nlviz.cli`` passes each its own sub-parser, whose ``prog``
ends with the command name):

    nlviz attend sample:synthetic_11 --frame 8 --xy 32 20 --out out/    # png, gif, mp4, npy, json per block
    nlviz compare sample:synthetic_11 --models demo.gaussian demo.dot_product --frame 8 --xy 32 20

``attend`` writes the exports of :func:`nlviz.export.write_exports` for every non-local block
(or the one named); ``compare`` writes one side-by-side PNG (a column per model, a row per
block row) and a JSON of the comparison's metrics (:mod:`nlviz.compare`). Both print the
paths they wrote on stdout. A missing video, an unknown model or block, a frame out of range
or a pixel outside the crop exits with status 2 and a message that says what would work.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .cli import CommandError

DEFAULT_MODEL = "demo.embedded_gaussian"
ALL_FORMATS = "png,gif,mp4,npy,json"


def _command_of(parser: argparse.ArgumentParser) -> str:
    return parser.prog.split()[-1]


def _samples_line() -> str:
    from .samples import bundled_samples

    names = list(bundled_samples())
    return ("bundled samples: " + ", ".join(f"sample:{n}" for n in names)) if names else "no bundled samples found"


_ATTEND_EXAMPLES = """\
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

_COMPARE_EXAMPLES = """\
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
    command = _command_of(parser)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    examples = _COMPARE_EXAMPLES if command == "compare" else _ATTEND_EXAMPLES
    parser.epilog = examples.format(samples=_samples_line())
    parser.add_argument("video", metavar="VIDEO", help="video file, or sample:NAME for a bundled sample")
    if command == "compare":
        parser.add_argument("--models", nargs="+", metavar="MODEL",
                            help="two or more zoo names or checkpoint files (default: the bundled demo "
                                 "models that have non-local blocks)")
    else:
        parser.add_argument("--model", default=DEFAULT_MODEL,
                            help=f"zoo name or checkpoint file (default {DEFAULT_MODEL}; `nlviz zoo` lists names)")
        parser.add_argument("--block", help="only this non-local block (default: every block, one set of files each)")
        parser.add_argument("--formats", default=ALL_FORMATS, help=f"comma-separated (default {ALL_FORMATS})")
        parser.add_argument("--fps", type=float, default=4.0, help="frames per second of the gif/mp4 (default 4)")
    parser.add_argument("--frame", type=int, help="sampled frame of the query, 0-based (default: the middle one)")
    parser.add_argument("--xy", nargs=2, type=float, metavar=("X", "Y"),
                        help="query pixel in the displayed frame (default: the centre of the model's crop)")
    parser.add_argument("--out", default=".", help="output directory, created if needed (default: .)")
    parser.add_argument("--crop", choices=("center", "full"), default="center",
                        help="centre crop as in training (default), or the full frame")
    parser.add_argument("--frames", type=int, help="frames to sample (default: the model's clip length)")
    parser.add_argument("--stride", type=int, help="source frames between samples (default: the model's)")
    default_width = 96 if command == "compare" else 192
    parser.add_argument("--width", type=int, default=default_width,
                        help=f"width of each frame's overlay in pixels (default {default_width})")
    if command == "compare":
        scale = parser.add_mutually_exclusive_group()
        scale.add_argument("--shared-scale", dest="shared_scale", action="store_true", default=True,
                           help="one colour scale per block row across models (default)")
        scale.add_argument("--per-model-scale", dest="shared_scale", action="store_false",
                           help="each model's own colour scale")
    parser.set_defaults(_attend_command=command)


def main(args: argparse.Namespace) -> int:
    if getattr(args, "_attend_command", "attend") == "compare":
        return _compare(args)
    return _attend(args)


# ----------------------------------------------------------------------------- shared steps


def _video(text: str) -> tuple[Path, str]:
    """(file, how a view spec names it): ``sample:NAME`` stays so, a path becomes absolute."""
    from .export import ExportError, resolve_video

    try:
        path = resolve_video(text)
    except ExportError as e:
        hint = "" if text.startswith("sample:") else f" ({_samples_line()})"
        raise CommandError(f"{e}{hint}") from None
    return path, text if text.startswith("sample:") else str(path.resolve())


def _load(name: str):
    """(model, how a view spec names it): a zoo name, or a checkpoint file's absolute path."""
    from . import zoo
    from .checkpoints.common import CheckpointError
    from .download import DownloadError
    from .export import ExportError, load_model

    try:
        model = load_model(name)
    except ExportError as e:
        raise CommandError(f"unknown model: {e}; known models: {', '.join(zoo.names())}") from None
    except (CheckpointError, DownloadError, OSError) as e:
        raise CommandError(f"cannot load model {name}: {e}") from None
    return model, name if zoo.known(name) else str(Path(name).expanduser().resolve())


def _sampling(args: argparse.Namespace):
    from .explore import Sampling

    for flag in ("frames", "stride", "width"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise CommandError(f"--{flag} must be at least 1, got {v}")
    return Sampling(num_frames=args.frames, stride=args.stride, crop=args.crop)


def _analyze(model, name: str, video: Path, sampling, width: int):
    from .capture import CaptureError
    from .explore import analyze
    from .video import VideoError

    try:
        return analyze(model, video, sampling, thumb_width=width)
    except CaptureError as e:
        raise CommandError(f"{name}: {e}") from None
    except (VideoError, ValueError) as e:
        raise CommandError(f"{video}: {e}") from None


def _query(args: argparse.Namespace, clip) -> tuple[int, float, float]:
    """The query (frame, x, y): the flags, or the middle frame and the centre of the crop; checked."""
    from .video import OutsideCropError

    n = len(clip.frames)
    frame = n // 2 if args.frame is None else args.frame
    if not 0 <= frame < n:
        raise CommandError(f"frame {frame} is outside the clip: it has {n} sampled frames, 0..{n - 1}")
    if args.xy is None:
        x0, y0, x1, y1 = clip.geometry.crop_rect()
        x, y = (x0 + x1) / 2, (y0 + y1) / 2
    else:
        x, y = args.xy
    try:
        clip.geometry.to_input(frame, x, y)
    except OutsideCropError as e:
        raise CommandError(f"{e} (--xy is in pixels of the {clip.geometry.frame_size[0]}x"
                           f"{clip.geometry.frame_size[1]} displayed frame)") from None
    return frame, x, y


# ----------------------------------------------------------------------------- attend


def _formats(text: str) -> list[str]:
    from .export import FORMATS

    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise CommandError(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(FORMATS)}")
    return formats


def _attend(args: argparse.Namespace) -> int:
    from .explore import query_view
    from .export import view_spec, write_exports

    formats = _formats(args.formats)
    if args.fps <= 0:
        raise CommandError(f"--fps must be positive, got {args.fps:g}")
    sampling = _sampling(args)
    video, video_name = _video(args.video)
    model, model_name = _load(args.model)
    analysis = _analyze(model, args.model, video, sampling, args.width)
    blocks = analysis.capture.blocks
    if args.block is not None and args.block not in blocks:
        raise CommandError(f"{args.model} has no block {args.block!r}; its non-local blocks: {', '.join(blocks)}")
    frame, x, y = _query(args, analysis.clip)
    clip = analysis.clip
    print(f"{args.model} on {args.video}: query frame {frame} (source frame {clip.indices[frame]}), "
          f"pixel ({x:g}, {y:g})", file=sys.stderr)
    if analysis.note:
        print(f"note: {analysis.note}", file=sys.stderr)
    for block in [args.block] if args.block else blocks:
        view = query_view(analysis.capture, clip, block, frame, x, y, thumbs=analysis.thumbs)
        spec = view_spec(model_name, video_name, sampling, block, frame, x, y, view.pairwise)
        for path in write_exports(args.out, analysis, view, spec, formats=formats, fps=args.fps).values():
            print(path)
    return 0


# ----------------------------------------------------------------------------- compare


def _default_models() -> list[str]:
    from . import zoo

    return [e.name for e in zoo.list_entries("demo") if e.pairwise is not None]


def _compare(args: argparse.Namespace) -> int:
    import cv2

    from .compare import compare, comparison_image

    names = list(args.models) if args.models else _default_models()
    if len(names) < 2:
        raise CommandError(f"compare needs at least two models, got {len(names)}: {' '.join(names) or '(none)'}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CommandError(f"model(s) given twice: {', '.join(twice)}")
    sampling = _sampling(args)
    video, video_name = _video(args.video)
    analyses = {}
    for name in names:
        model, _ = _load(name)
        analyses[name] = _analyze(model, name, video, sampling, args.width)
    frame, x, y = _query(args, analyses[names[0]].clip)
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
