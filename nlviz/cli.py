"""The ``nlviz`` command line: one entry point, one subcommand per task.

Each subcommand lives next to the code it drives: the module named in ``COMMANDS`` defines
``configure(parser)`` (adds its arguments) and ``main(args) -> int`` (runs it, returns the exit
code). This file only dispatches; a new subcommand is one line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("nlviz.cli_models", "list the registered architectures"),
    "serve": ("nlviz.cli_serve", "start the app"),
    "train": ("nlviz.train", "train a bundled demo model on synthetic clips (CPU)"),
    "zoo": ("nlviz.zoo_cli", "list the pretrained checkpoints of the model zoo"),
    "download": ("nlviz.zoo_cli", "download zoo checkpoints into the cache"),
    "info": ("nlviz.checkpoints.cli", "describe a checkpoint: format, architecture, non-local blocks"),
    "attend": ("nlviz.cli_attend", "write what a query pixel attends to: png, gif, mp4, npy, json"),
    "compare": ("nlviz.cli_attend", "compare several models' attention for one query: png + metrics json"),
}


class CommandError(Exception):
    """A user error a subcommand reports as 'nlviz: error: ...' with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlviz", description="See what non-local blocks attend to.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except CommandError as e:
        print(f"nlviz {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # `python -m nlviz.cli`: dispatch through the package module, so that the
    from nlviz.cli import main as _main  # CommandError the subcommands raise is the one caught above

    sys.exit(_main())
