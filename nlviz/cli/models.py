"""`nlviz models`: list the registered architectures (:mod:`nlviz.models`).

    nlviz models                    # one line each: attention blocks, clip, crop
    nlviz models -v                 # ... and every attention block: name, kind, pairwise, dims
    nlviz models tiny_i3d_nl2 -v    # only these

``-v`` reads the blocks off the network itself, built on PyTorch's meta device (no memory, no
initialisation), through the attention-block protocol of :mod:`nlviz.capture`: the same names
and settings the app and ``nlviz attend`` use, whatever the family (ResNet NL, DeepMind I3D with
probes, the tiny demo networks).
"""

from __future__ import annotations

import argparse

from . import CommandError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these architectures (default: all)")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print each model's attention blocks")


def block_lines(name: str, **overrides) -> list[str]:
    """One line per attention block of architecture ``name``, built with ``overrides`` (as
    :func:`nlviz.models.build` takes them; none: the registered default)."""
    import torch

    from ..capture import attention_blocks
    from ..models import build

    with torch.device("meta"):
        model = build(name, **overrides)
    lines = []
    for block_name, block in attention_blocks(model).items():
        groups = f", time groups of {block.time_groups}" if block.time_groups != 1 else ""
        lines.append(f"{block_name}  {type(block).__name__}: {block.pairwise}, {block.dims}{groups}")
    return lines or ["no attention blocks"]


def main(args: argparse.Namespace) -> int:
    from ..models import get_config, list_models

    known = list_models()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise CommandError(f"unknown architecture(s) {', '.join(unknown)}; known: {', '.join(known)}")
    names = [n for n in known if n in args.names] if args.names else known
    width = max(len(n) for n in names)
    for name in names:
        cfg, spec = get_config(name)
        print(f"{name:{width}s} {cfg.num_nonlocal:2d} NL blocks  clip {spec.num_frames}x{spec.stride}  "
              f"crop {spec.crop_size}")
        if args.verbose:
            for line in block_lines(name):
                print(f"    {line}")
    return 0
