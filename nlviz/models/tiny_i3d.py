"""The demo family: tiny I3D ResNets with non-local blocks, for the bundled demo models and fast tests.

Narrow networks (8 base channels, one bottleneck per stage, 64-pixel frames) built with the
ResNet-NL family's code (:mod:`nlviz.models.resnet_nl`). ``tiny_i3d_nl2`` / ``_nl0`` classify
clips; the ``_dense`` twins label every cell of the res3 grid (the demo models' identity-
propagation task, :mod:`nlviz.synthetic`). Their pretrained entries are the bundled demo models:
``nlviz train`` writes each one's weights and model card into ``assets/models/``, and the zoo
lists every card it finds there (source ``demo``); loading reads nlviz's own safetensors file.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from ..spec import ClipSpec
from .family import Family
from .resnet3d import ResNet3dConfig
from .resnet_nl import ArchFn, blocks, build_resnet, register

ARCHS: dict[str, ArchFn] = {}
register_tiny = partial(register, into=ARCHS)

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


register_tiny("tiny_i3d_nl2")(_tiny(((), (0,), (0,), ())))
register_tiny("tiny_i3d_nl0")(_tiny(((), (), (), ())))

# The demo models' network (nlviz.synthetic's identity-propagation task): the same tiny backbone
# up to res4, a dense head on the res3 grid (8 x 16 x 16 cells of 2 frames x 4 x 4 pixels),
# 5 classes (background and four shades: nlviz.synthetic.TRACK_CLASSES), no res5.
TINY_DENSE_SPEC = replace(TINY_SPEC, labels="synthetic_tracks")


def _tiny_dense(nl_blocks: tuple[tuple[int, ...], ...]) -> ArchFn:
    def fn() -> tuple[ResNet3dConfig, ClipSpec]:
        cfg, _ = _tiny(nl_blocks)()
        return replace(cfg, head="dense", num_classes=5), TINY_DENSE_SPEC

    return fn


register_tiny("tiny_i3d_nl2_dense")(_tiny_dense(((), (0,), (0,), ())))
register_tiny("tiny_i3d_nl0_dense")(_tiny_dense(((), (), (), ())))


def build(name: str, **overrides):
    """Tiny architecture ``name`` with random weights (overrides as for the ResNet-NL family)."""
    cfg, spec = ARCHS[name]()
    return build_resnet(name, cfg, spec, **overrides)


def _load(entry, path: Path, options):
    from ..weights import load_weights

    return load_weights(path)


FAMILY = Family(
    name="tiny_i3d",
    title="Tiny I3D ResNets with non-local blocks: the bundled demo models (synthetic clips)",
    archs=ARCHS,
    build=build,
    blocks=blocks,
    load=_load,
)
