"""`nlviz download NAME...`: fetch zoo checkpoints into the cache.

    nlviz download i3d_nl5_r50.kinetics400_mmaction2_dot_product [--dir DIR]

Draws progress on stderr and prints each file's path on stdout, so ``path=$(nlviz download
NAME)`` works. Unknown names, no network, HTTP errors and checksum mismatches exit with status 2
and a message that says what to do.
"""

from __future__ import annotations

import argparse
import sys

from . import CommandError

DIR_HELP = ("cache directory (default: $NLVIZ_CACHE/checkpoints, else $XDG_CACHE_HOME/nlviz/checkpoints, "
            "else ~/.cache/nlviz/checkpoints)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="zoo model name(s); `nlviz zoo` lists them")
    parser.add_argument("--dir", help=DIR_HELP)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for the server (default 30)")


def main(args: argparse.Namespace) -> int:
    from .. import zoo
    from ..download import DownloadError, text_progress

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
