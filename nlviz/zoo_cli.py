"""`nlviz download NAME...` and `nlviz zoo`: fetch pretrained checkpoints, list the model zoo.

One module serves both commands (``nlviz.cli`` passes each its own sub-parser, whose ``prog``
ends with the command name):

    nlviz zoo                       # every known checkpoint, its top-1, licence and cache status
    nlviz zoo --source caffe2 -v    # ... with URLs, citations and notes
    nlviz download i3d_nl5_r50.kinetics400_mmaction2_dot_product [--dir DIR]

``download`` draws progress on stderr and prints each file's path on stdout, so
``path=$(nlviz download NAME)`` works. Unknown names, no network, HTTP errors and checksum
mismatches exit with status 2 and a message that says what to do.
"""

from __future__ import annotations

import argparse
import sys

from .cli import CommandError


_DIR_HELP = "cache directory (default: $NLVIZ_CACHE/checkpoints, else ~/.cache/nlviz/checkpoints)"


def _command_of(parser: argparse.ArgumentParser) -> str:
    return parser.prog.split()[-1]


def configure(parser: argparse.ArgumentParser) -> None:
    if _command_of(parser) == "zoo":
        parser.add_argument(
            "--source", choices=("mmaction2", "caffe2", "pyslowfast", "demo", "deepmind"), help="only this source"
        )
        parser.add_argument("--dir", help=_DIR_HELP)
        parser.add_argument("--verbose", "-v", action="store_true", help="also print URL, licence, citation and notes")
        parser.set_defaults(_zoo_command="zoo")
    else:
        parser.add_argument("names", nargs="+", metavar="NAME", help="zoo model name(s); `nlviz zoo` lists them")
        parser.add_argument("--dir", help=_DIR_HELP)
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
        parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for the server (default 30)")
        parser.set_defaults(_zoo_command="download")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "_zoo_command", "download") == "zoo":
        return _list(args)
    return _download(args)


def _download(args: argparse.Namespace) -> int:
    from . import zoo
    from .download import DownloadError, text_progress

    entries = []
    for name in args.names:
        try:
            entries.append(zoo.get(name))
        except KeyError as e:
            raise CommandError(e.args[0]) from None
    for entry in entries:
        progress = None if args.quiet or entry.is_local else text_progress(entry.name, stream=sys.stderr)
        if not args.quiet and not entry.is_local and not zoo.is_cached(entry.name, args.dir):
            size = f" ({entry.size_mb:.0f} MB)" if entry.size_mb else ""
            print(f"downloading {entry.name}{size} from {entry.url}", file=sys.stderr)
            print(f"licence: {entry.license}", file=sys.stderr)
        try:
            log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
            path = zoo.fetch(entry.name, progress=progress, dest_dir=args.dir, timeout=args.timeout, log=log)
        except DownloadError as e:
            raise CommandError(str(e)) from None
        print(path)
        sys.stdout.flush()
    return 0


def _list(args: argparse.Namespace) -> int:
    from . import zoo

    entries = zoo.list_entries(args.source)
    if not entries:
        print("no models", file=sys.stderr)
        return 0
    width = max(len(e.name) for e in entries)
    print(f"{'NAME':{width}s}  {'SOURCE':10s}  {'CLIP':7s} {'TOP-1':>6s}  {'CACHED':6s}  LICENCE")
    for e, row in zip(entries, zoo.table(args.source, args.dir)):
        top1 = f"{row['top1']:.2f}" if row["top1"] is not None else "-"
        cached = "yes" if row["cached"] else "-"
        print(f"{e.name:{width}s}  {e.source:10s}  {row['clip']:7s} {top1:>6s}  {cached:6s}  {row['license']}")
        if args.verbose:
            print(f"    file:     {zoo.cached_path(e.name, args.dir)}")
            if not e.is_local:
                print(f"    url:      {e.url}")
            check = e.sha256 or (f"sha256 starts with {e.hash_prefix}" if e.hash_prefix else "no published hash")
            print(f"    checksum: {check}")
            print(f"    eval:     {e.eval_set}")
            print(f"    licence:  {e.license}")
            print(f"    cite:     {e.citation}")
            if e.notes:
                print(f"    notes:    {e.notes}")
    return 0
