"""The ``nlviz`` command line: one entry point, one module per command.

    nlviz COMMAND [ARGS...]          # `python -m nlviz COMMAND ...` is the same

Each module named in :data:`COMMANDS` defines ``configure(parser)`` (adds its arguments) and
``main(args) -> int`` (runs it, returns the exit code) and raises :class:`CommandError` for bad
input, which this module reports as ``nlviz COMMAND: error: ...`` with exit status 2. Only the
chosen command's module is imported, and those modules import torch, OpenCV and the zoo inside
``main``: ``nlviz --help`` and ``nlviz COMMAND --help`` stay fast (the names help shows come
from :mod:`nlviz.names`). A new command is one module here and one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence

# command -> (module of this package, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("models", "list the registered architectures"),
    "serve": ("serve", "start the app"),
    "train": ("train", "train a bundled demo model on synthetic clips (CPU)"),
    "zoo": ("zoo", "list the pretrained checkpoints of the model zoo"),
    "download": ("download", "download zoo checkpoints into the cache"),
    "info": ("info", "describe a checkpoint: format, architecture, non-local blocks"),
    "attend": ("attend", "write what a query pixel attends to: png, gif, mp4, npy, json"),
    "compare": ("compare", "compare several models' attention for one query: png + metrics json"),
    "survey": ("survey", "attention statistics over a dataset (Parquet + JSON), locally or on Ray"),
}


class CommandError(Exception):
    """A user error a command reports as 'nlviz COMMAND: error: ...' with exit code 2."""


def command_module(name: str):
    """The module that implements command ``name`` (imported now)."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")


def build_parser(commands: Iterable[str] = ()) -> argparse.ArgumentParser:
    """The parser of every command; only those named in ``commands`` get their arguments (the
    others stay empty, enough for ``nlviz --help``)."""
    configured = set(commands)
    parser = argparse.ArgumentParser(prog="nlviz", description="See what non-local blocks attend to.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in configured:
            command_module(name).configure(p)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command argv names: its first word that is not an option (``nlviz`` itself takes none
    but -h), if that is a command."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    parser = build_parser([command] if command else [])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(command_module(args.command).main(args) or 0)
    except CommandError as e:
        print(f"nlviz {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
