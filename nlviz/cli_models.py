"""`nlviz models`: list the registered architectures."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="also print each model's non-local blocks")


def main(args: argparse.Namespace) -> int:
    from .models import get_config, list_models

    for name in list_models():
        cfg, spec = get_config(name)
        line = f"{name:16s} {cfg.num_nonlocal:2d} NL blocks  clip {spec.num_frames}x{spec.stride}  crop {spec.crop_size}"
        print(line)
        if args.verbose:
            for s, idx in enumerate(cfg.nonlocal_blocks, start=2):
                for i in idx:
                    print(f"    res{s}.{i}.nl  {cfg.nonlocal_cfg.pairwise}, {cfg.nonlocal_cfg.dims}")
    return 0
