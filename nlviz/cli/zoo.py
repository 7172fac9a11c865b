"""`nlviz zoo`: list the model zoo's pretrained checkpoints.

    nlviz zoo                       # every known checkpoint, its top-1, licence and cache status
    nlviz zoo --source caffe2 -v    # ... with URLs, checksums, citations and notes
"""

from __future__ import annotations

import argparse
import sys

from ..names import SOURCES
from .download import DIR_HELP


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=SOURCES, help="only this source")
    parser.add_argument("--dir", help=DIR_HELP)
    parser.add_argument("--verbose", "-v", action="store_true", help="also print URL, licence, citation and notes")


def main(args: argparse.Namespace) -> int:
    from .. import zoo

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
