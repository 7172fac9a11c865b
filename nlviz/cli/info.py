"""`nlviz info CHECKPOINT`: what a checkpoint file is, and what its non-local blocks see.

    nlviz info i3d_nonlocal_8x8_IN_pretrain_400k.pkl
    nlviz info model.pyth --frames 16 --size 256
    nlviz info i3d_nl5_r50.kinetics400_caffe2_8x8      # a zoo name, once downloaded

Prints the detected format, the architecture (registry name and the build arguments that make
it the publisher's network), the clip the model expects, the parameter count, and every
non-local block with its pairwise function, the positions it attends over, and its query and
key grids (T, H, W) for a clip of ``--frames`` frames of ``--size`` x ``--size`` pixels
(default: the model's own clip), found by one forward pass on zeros.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import fields
from pathlib import Path

from ..names import PAIRWISE
from . import CommandError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file, or a downloaded zoo name")
    parser.add_argument("--frames", type=int, help="clip length T for the grids (default: the model's)")
    parser.add_argument("--size", type=int, help="square frame side S for the grids (default: the model's crop)")
    parser.add_argument("--pairwise", choices=PAIRWISE,
                        help="the pairwise function, for files that do not say it")


def _resolve(name: str) -> tuple[Path, dict]:
    """A file path, or a zoo name's cached file and its loading hints (never downloads)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path, {}
    from .. import zoo

    try:
        entry = zoo.get(name)
    except KeyError as e:
        raise CommandError(f"{name}: no such file, and not a zoo name ({e.args[0]})") from None
    if not zoo.is_cached(name):
        raise CommandError(f"{name} is not downloaded yet: run `nlviz download {name}` first")
    return zoo.cached_path(name), {"entry": entry}


def _fmt_shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _backbone(model, cfg) -> str:
    """One line on the network: a ResNet's stages and kernels, else its config's fields."""
    if not hasattr(cfg, "temporal_kernels"):  # another family (e.g. InceptionI3d): its own config's fields
        return f"{type(model).__name__}, " + ", ".join(f"{f.name} {getattr(cfg, f.name)}" for f in fields(cfg))
    kernels = "".join(str(k) for s in cfg.temporal_kernels for k in s)
    return (f"{sum(cfg.blocks)} bottlenecks {cfg.blocks}, width {cfg.base_channels}, "
            f"conv1 {_fmt_shape(cfg.conv1_kernel)} stride {_fmt_shape(cfg.conv1_stride)}, "
            f"pool1 {_fmt_shape(cfg.pool1_kernel) if cfg.pool1_kernel else 'none'} "
            f"pad {_fmt_shape(cfg.pool1_padding)}, pool2 {'2x1x1' if cfg.pool2 else 'none'}, "
            f"temporal kernels {kernels}")


def main(args: argparse.Namespace) -> int:
    import torch

    from ..capture import capture_attention
    from ..checkpoints import CheckpointError, load_file
    from ..models.resnet3d import count_parameters

    path, hints = _resolve(args.checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = load_file(path, pairwise=args.pairwise, **hints)
        except (CheckpointError, OSError, ValueError) as e:
            raise CommandError(str(e)) from None
    cfg, spec = model.cfg, model.spec
    frames = args.frames or spec.num_frames
    size = args.size or spec.crop_size
    if frames < 1 or size < 1:
        raise CommandError("--frames and --size must be positive")

    overrides = model.build_overrides
    arch_args = {k: v for k, v in overrides.items()
                 if k not in ("num_frames", "stride", "short_side", "crop_size", "mean", "std", "channel_order",
                              "labels")}
    print(f"file:         {path}")
    print(f"format:       {model.checkpoint_format or 'nlviz safetensors'}")
    print(f"architecture: {model.arch}")
    for k, v in arch_args.items():
        print(f"    {k} = {v}")
    print(f"backbone:     {_backbone(model.model, cfg)}")
    print(f"clip:         {spec.num_frames} frames, one every {spec.stride}; short side {spec.short_side}, "
          f"crop {spec.crop_size}; {spec.channel_order} 0-255, mean {spec.mean}, std {spec.std}")
    print(f"classes:      {cfg.num_classes} ({spec.labels or 'unnamed'})")
    print(f"parameters:   {count_parameters(model):,}")
    for w in caught:
        print(f"note:         {w.message}")

    if not cfg.num_nonlocal:
        print("non-local blocks: none")
        return 0
    x = torch.zeros(1, 3, frames, size, size)
    try:
        with torch.no_grad(), capture_attention(model.model) as cap:
            model(x)
    except (RuntimeError, ValueError) as e:  # a clip too small for the network, time groups that do not divide T
        raise CommandError(f"a {frames}x{size}x{size} clip does not run through this model: {e}") from None
    names = cap.blocks
    print(f"non-local blocks: {len(names)} (grids for a {frames}x{size}x{size} clip, as T x H x W)")
    width = max(len(n) for n in names)
    print(f"  {'block':<{width}}  {'pairwise':<18} {'dims':<22} {'queries':>10} {'keys':>10}")
    for name in names:
        b = cap[name]
        dims = b.dims if b.time_groups == 1 else f"{b.dims} (groups of {b.time_groups}t)"
        print(f"  {name:<{width}}  {b.pairwise:<18} {dims:<22} {_fmt_shape(b.query_shape):>10} "
              f"{_fmt_shape(b.key_shape):>10}")
    return 0
