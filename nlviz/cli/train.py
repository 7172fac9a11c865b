"""`nlviz train`: train the bundled demo models. :mod:`nlviz.train` owns the trainer and its
flags (``configure``/``main`` there); this module only hands the command to it. Its ``--help``
imports torch: the flags' defaults are the trainer's own."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from ..train import configure as configure_train

    configure_train(parser)


def main(args: argparse.Namespace) -> int:
    from ..train import main as train

    return train(args)
