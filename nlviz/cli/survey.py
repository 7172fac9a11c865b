"""`nlviz survey`: attention statistics over a whole dataset, in-process or on a Ray cluster.

    nlviz survey clips/ --models demo.embedded_gaussian demo.dot_product --queries 64 --out survey/
    nlviz survey list.txt --models i3d_nl5_r50.kinetics400_mmaction2_embedded_gaussian \\
        --engine ray --ray-address auto --device cuda --out k400_val/

Writes ``OUT/rows/part-*.parquet`` (one row per clip x model x block [x head]; a clip that
cannot be decoded gets a row with its error) and ``OUT/summary.json`` (models, sampling,
versions, seeds, per-block means). A second run with the same OUT skips the clips already
there, so a killed run resumes where it stopped. See :mod:`nlviz.survey`.
"""

from __future__ import annotations

import argparse
import sys

from . import CommandError

EXAMPLES = """\
examples:
  nlviz survey assets/samples --models demo.embedded_gaussian demo.dot_product --out survey/
  nlviz survey clips.txt --models demo.gaussian --queries 128 --seed 1 --out survey/
  nlviz survey /data/k400/val --models MODEL --engine ray --ray-address auto --device cuda --out k400/

INPUTS are video files, directories (searched recursively for videos) or list files (.txt/.lst:
one path per line, relative to the list's folder). Queries are sampled per clip and block
(seeded by --seed and the clip's file name: the same cells in every run and on either engine).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, directories or list files")
    parser.add_argument("--models", nargs="+", metavar="MODEL", required=True,
                        help="zoo names or checkpoint files")
    parser.add_argument("--queries", type=int, default=64, help="query cells sampled per clip and block (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query sample (default 0)")
    parser.add_argument("--out", required=True, help="output directory (created; an existing one is resumed)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: in this process (default); ray: a Ray Data pipeline")
    parser.add_argument("--ray-address", default=None,
                        help="join this Ray cluster ('auto': the one `ray start` runs here); "
                             "default: start a local Ray")
    parser.add_argument("--workers", type=int, default=None,
                        help="ray: model actors (default: 1 per GPU with --device cuda, else 1 per 2 CPUs)")
    parser.add_argument("--num-cpus", type=int, default=None, help="ray: CPUs of the local Ray it starts")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="where the forward pass runs (default: NLVIZ_DEVICE, else auto: cuda when present)")
    parser.add_argument("--frames", type=int, help="frames to sample (default: each model's clip length)")
    parser.add_argument("--stride", type=int, help="source frames between samples (default: each model's)")
    parser.add_argument("--limit", type=int, help="survey only the first N clips")
    parser.add_argument("--retry-errors", action="store_true", help="retry clips whose earlier rows hold an error")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from ..device import DeviceError
    from ..survey import SurveyConfig, SurveyError, run_survey

    for flag in ("queries", "frames", "stride", "limit", "workers", "num_cpus"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise CommandError(f"--{flag.replace('_', '-')} must be at least 1, got {v}")
    if args.queries < 2:
        raise CommandError("--queries must be at least 2 (query dependence compares pairs of queries)")
    config = SurveyConfig(models=tuple(args.models), queries=args.queries, seed=args.seed,
                          num_frames=args.frames, stride=args.stride)
    try:
        result = run_survey(args.inputs, config, args.out, engine=args.engine, device=args.device,
                            ray_address=args.ray_address, workers=args.workers, num_cpus=args.num_cpus,
                            limit=args.limit, retry_errors=args.retry_errors,
                            progress=None if args.quiet else "bar")
    except (SurveyError, DeviceError) as e:
        raise CommandError(str(e)) from None
    print(result.describe())
    if result.errors:
        print(f"{result.errors} clip(s) could not be surveyed: see the 'error' column", file=sys.stderr)
    return 0
