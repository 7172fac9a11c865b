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


def _meta_model(name: str, **overrides):
    """Architecture ``name`` built on PyTorch's meta device (no memory, no initialisation)."""
    import torch

    from ..models import build

    with torch.device("meta"):
        return build(name, **overrides)


def block_lines(name: str, **overrides) -> list[str]:
    """One line per attention block of architecture ``name``, built with ``overrides`` (as
    :func:`nlviz.models.build` takes them; none: the registered default), from its family's
    block metadata: non-local blocks and probes with their pairwise function and dims, attention
    of transformers with its kind, heads and stride."""
    from ..models import family_of

    model = _meta_model(name, **overrides)
    lines = []
    for info in family_of(name).blocks(model):
        block = model.get_submodule(info.name)
        if info.kind in ("nonlocal", "probe"):
            groups = f", time groups of {block.time_groups}" if block.time_groups != 1 else ""
            lines.append(f"{info.name}  {type(block).__name__}: {block.pairwise}, {block.dims}{groups}")
        else:
            stride = "x".join(map(str, info.stride))
            lines.append(f"{info.name}  {type(block).__name__}: {info.kind}, {info.heads} heads, stride {stride}")
    return lines or ["no attention blocks"]


def main(args: argparse.Namespace) -> int:
    from ..models import family_of, get_config, list_models, missing_families

    known = list_models()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise CommandError(f"unknown architecture(s) {', '.join(unknown)}; known: {', '.join(known)}")
    names = [n for n in known if n in args.names] if args.names else known
    width = max(len(n) for n in names)
    for name in names:
        family = family_of(name)
        _, spec = get_config(name)
        count = len(family.blocks(_meta_model(name)))
        print(f"{name:{width}s} {count:2d} attention blocks  clip {spec.num_frames}x{spec.stride}  "
              f"crop {spec.crop_size}  ({family.name})")
        if args.verbose:
            if args.names and family.describe is not None:  # named architectures: their facts first
                for key, value in family.describe(name).items():
                    print(f"    {key}: {value}")
            for line in block_lines(name):
                print(f"    {line}")
    if not args.names:
        for module, how in missing_families().items():
            print(f"(not listed: {module}, which needs an optional extra: {how})")
    return 0
