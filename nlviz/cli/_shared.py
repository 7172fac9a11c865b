"""Steps ``nlviz attend`` and ``nlviz compare`` share: their common arguments, and resolving the
video, the model(s), the sampling and the query, each failing with a :class:`CommandError` that
says what would work."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandError


def samples_line() -> str:
    from ..samples import bundled_samples

    names = list(bundled_samples())
    return ("bundled samples: " + ", ".join(f"sample:{n}" for n in names)) if names else "no bundled samples found"


def configure_view(parser: argparse.ArgumentParser, examples: str) -> None:
    """The video argument and the help's examples (``examples`` may name ``{samples}``)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = examples.format(samples=samples_line())
    parser.add_argument("video", metavar="VIDEO", help="video file, or sample:NAME for a bundled sample")


def configure_query(parser: argparse.ArgumentParser, *, width: int) -> None:
    """The query, output and sampling arguments; ``width``: default overlay width in pixels."""
    parser.add_argument("--frame", type=int, help="sampled frame of the query, 0-based (default: the middle one)")
    parser.add_argument("--xy", nargs=2, type=float, metavar=("X", "Y"),
                        help="query pixel in the displayed frame (default: the centre of the model's crop)")
    parser.add_argument("--out", default=".", help="output directory, created if needed (default: .)")
    parser.add_argument("--crop", choices=("center", "full"), default="center",
                        help="centre crop as in training (default), or the full frame")
    parser.add_argument("--frames", type=int, help="frames to sample (default: the model's clip length)")
    parser.add_argument("--stride", type=int, help="source frames between samples (default: the model's)")
    parser.add_argument("--width", type=int, default=width,
                        help=f"width of each frame's overlay in pixels (default {width})")


def video_of(text: str) -> tuple[Path, str]:
    """(file, how a view spec names it): ``sample:NAME`` stays so, a path becomes absolute."""
    from ..export import ExportError, resolve_video

    try:
        path = resolve_video(text)
    except ExportError as e:
        hint = "" if text.startswith("sample:") else f" ({samples_line()})"
        raise CommandError(f"{e}{hint}") from None
    return path, text if text.startswith("sample:") else str(path.resolve())


def load(name: str):
    """(model, how a view spec names it): a zoo name, or a checkpoint file's absolute path."""
    from .. import zoo
    from ..checkpoints.common import CheckpointError
    from ..download import DownloadError
    from ..resolve import load as resolve

    try:
        model = resolve(name)
    except FileNotFoundError as e:
        raise CommandError(f"unknown model: {e}; known models: {', '.join(zoo.names())}") from None
    except (CheckpointError, DownloadError, OSError) as e:
        raise CommandError(f"cannot load model {name}: {e}") from None
    return model, name if zoo.known(name) else str(Path(name).expanduser().resolve())


def sampling_of(args: argparse.Namespace):
    from ..explore import Sampling

    for flag in ("frames", "stride", "width"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise CommandError(f"--{flag} must be at least 1, got {v}")
    return Sampling(num_frames=args.frames, stride=args.stride, crop=args.crop)


def analyze_clip(model, name: str, video: Path, sampling, width: int):
    from ..capture import CaptureError
    from ..explore import analyze
    from ..video import VideoError

    try:
        return analyze(model, video, sampling, thumb_width=width)
    except CaptureError as e:
        raise CommandError(f"{name}: {e}") from None
    except (VideoError, ValueError) as e:
        raise CommandError(f"{video}: {e}") from None


def query_of(args: argparse.Namespace, clip) -> tuple[int, float, float]:
    """The query (frame, x, y): the flags, or the middle frame and the centre of the crop; checked."""
    from ..video import OutsideCropError

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
