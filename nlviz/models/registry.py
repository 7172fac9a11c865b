"""The model registry: architectures by string name, built with keyword overrides.

    >>> from nlviz.models import build, list_models
    >>> model = build("i3d_nl5_r50", num_classes=400, pairwise="dot_product")

Names read ``<arch>_nl<blocks>_r<depth>``: ``i3d_nl5_r50`` is I3D ResNet-50 with the paper's
5 non-local blocks (2 in res3, 3 in res4, after every other residual block); ``nl10`` puts one
after every residual block of res3 and res4; ``nl0`` is the baseline without any.
``tiny_*`` are narrow networks for the bundled demo models and fast tests.
An architecture is a function returning a (ResNet3dConfig, ClipSpec) pair; building applies
overrides to either and returns an untrained model in eval mode.

Networks of another family (e.g. ``i3d_inception``, :mod:`nlviz.models.inception_i3d`) come with
their own builder: :func:`register_builder` adds a name with a function returning its default
(config, spec) and a function building the model from keyword overrides; :func:`build`,
:func:`get_config` and :func:`list_models` treat both kinds alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from torch import nn

from ..spec import ClipSpec
from .resnet3d import DEPTH_BLOCKS, NonLocalConfig, ResNet3d, ResNet3dConfig

ArchFn = Callable[[], tuple[ResNet3dConfig, ClipSpec]]
_REGISTRY: dict[str, ArchFn] = {}
# name -> (default (config, spec) of the family's own config type, builder(**overrides) -> model)
_BUILDERS: dict[str, tuple[Callable[[], tuple[Any, ClipSpec]], Callable[..., nn.Module]]] = {}


def register(name: str) -> Callable[[ArchFn], ArchFn]:
    """Decorator adding an architecture under ``name``; a duplicate name fails loudly."""

    def deco(fn: ArchFn) -> ArchFn:
        if name in _REGISTRY or name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def register_builder(
    name: str, *, config: Callable[[], tuple[Any, ClipSpec]], builder: Callable[..., nn.Module]
) -> None:
    """Add an architecture of another family than ResNet3d; a duplicate name fails loudly.

    ``config()`` returns the default (config, spec) (the config has at least ``num_classes`` and
    ``num_nonlocal``); ``builder(**overrides)`` returns an untrained model carrying ``cfg`` and
    ``spec``, raising TypeError for an override it does not know.
    """
    if name in _REGISTRY or name in _BUILDERS:
        raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = (config, builder)


def list_models() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted([*_REGISTRY, *_BUILDERS])


def get_config(name: str) -> tuple[ResNet3dConfig, ClipSpec]:
    """The (config, spec) an architecture name stands for (for builder families: their own config type)."""
    if name in _BUILDERS:
        return _BUILDERS[name][0]()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


_CFG_FIELDS = {f.name for f in fields(ResNet3dConfig)}
_NL_FIELDS = {f.name for f in fields(NonLocalConfig)}
_SPEC_FIELDS = {f.name for f in fields(ClipSpec)}


def build(name: str, **overrides) -> nn.Module:
    """Build architecture ``name`` with random weights, in eval mode.

    Overrides may name any field of :class:`ResNet3dConfig` (e.g. ``num_classes``,
    ``base_channels``), of :class:`NonLocalConfig` (e.g. ``pairwise``, ``dims``, ``use_scale``:
    applied to every non-local block), or of :class:`~nlviz.spec.ClipSpec` (e.g. ``num_frames``).
    """
    if name in _BUILDERS:
        model = _BUILDERS[name][1](**overrides)
        model.arch = name
        model.build_overrides = dict(overrides)
        return model.eval()
    cfg, spec = get_config(name)
    unknown = set(overrides) - _CFG_FIELDS - _NL_FIELDS - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown override(s) for {name}: {sorted(unknown)}")
    nl = replace(cfg.nonlocal_cfg, **{k: v for k, v in overrides.items() if k in _NL_FIELDS})
    cfg = replace(cfg, nonlocal_cfg=nl, **{k: v for k, v in overrides.items() if k in _CFG_FIELDS})
    spec = replace(spec, **{k: v for k, v in overrides.items() if k in _SPEC_FIELDS and k not in _CFG_FIELDS})
    model = ResNet3d(cfg, spec)
    model.arch = name  # registry name and overrides: enough to rebuild it (nlviz.weights)
    model.build_overrides = dict(overrides)
    return model.eval()


# --- the paper's networks ------------------------------------------------------------------

I3D_TEMPORAL = {  # 3x1x1 kernels in every other block (Caffe2 official I3D pattern for R50)
    50: ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1)),
    101: ((3, 3, 3), (3, 1, 3, 1), tuple(3 if i % 2 == 0 else 1 for i in range(23)), (1, 3, 1)),
}
NL_PLACEMENT = {  # residual blocks followed by a non-local block, per stage
    5: ((), (1, 3), (1, 3, 5)),
    10: ((), (0, 1, 2, 3), (0, 1, 2, 3, 4, 5)),
    0: ((), (), ()),
}
PAPER_SPEC = ClipSpec(num_frames=32, stride=2, short_side=256, crop_size=224, labels="kinetics400")


def _paper(arch: str, depth: int, nl: int) -> ArchFn:
    def fn() -> tuple[ResNet3dConfig, ClipSpec]:
        blocks = DEPTH_BLOCKS[depth]
        temporal = I3D_TEMPORAL[depth] if arch == "i3d" else tuple((1,) * n for n in blocks)
        cfg = ResNet3dConfig(
            blocks=blocks,
            conv1_kernel=(5, 7, 7) if arch == "i3d" else (1, 7, 7),
            temporal_kernels=temporal,
            nonlocal_blocks=(*NL_PLACEMENT[nl], ()),
        )
        return cfg, PAPER_SPEC

    fn.__doc__ = f"{arch.upper()} ResNet-{depth} with {nl} non-local blocks (Wang et al. 2018, Table 1/2)."
    return fn


for _arch in ("c2d", "i3d"):
    for _depth in (50, 101):
        for _nl in (0, 5, 10):
            register(f"{_arch}_nl{_nl}_r{_depth}")(_paper(_arch, _depth, _nl))


# --- tiny networks for the bundled demo models and tests ------------------------------------

TINY_SPEC = ClipSpec(
    num_frames=16, stride=1, short_side=64, crop_size=64, mean=(127.5,) * 3, std=(63.75,) * 3, labels="synthetic"
)


def _tiny(nl_blocks: tuple[tuple[int, ...], ...]) -> ArchFn:
    def fn() -> tuple[ResNet3dConfig, ClipSpec]:
        cfg = ResNet3dConfig(
            blocks=(1, 1, 1, 1),
            base_channels=8,
            conv1_kernel=(3, 5, 5),
            pool1_kernel=None,  # 64 px frames: keep res3 at 16x16 so attention maps stay readable
            temporal_kernels=((3,), (3,), (3,), (1,)),
            nonlocal_blocks=nl_blocks,
            num_classes=4,
            dropout=0.0,
        )
        return cfg, TINY_SPEC

    return fn


register("tiny_i3d_nl2")(_tiny(((), (0,), (0,), ())))
register("tiny_i3d_nl0")(_tiny(((), (), (), ())))

# The demo models' network (nlviz.synthetic's identity-propagation task): the same tiny backbone
# up to res4, a dense head on the res3 grid (8 x 16 x 16 cells of 2 frames x 4 x 4 pixels),
# 5 classes (background and four shades: nlviz.synthetic.TRACK_CLASSES), no res5.
TINY_DENSE_SPEC = replace(TINY_SPEC, labels="synthetic_tracks")


def _tiny_dense(nl_blocks: tuple[tuple[int, ...], ...]) -> ArchFn:
    def fn() -> tuple[ResNet3dConfig, ClipSpec]:
        cfg, _ = _tiny(nl_blocks)()
        return replace(cfg, head="dense", num_classes=5), TINY_DENSE_SPEC

    return fn


register("tiny_i3d_nl2_dense")(_tiny_dense(((), (0,), (0,), ())))
register("tiny_i3d_nl0_dense")(_tiny_dense(((), (), (), ())))
