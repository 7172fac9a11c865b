"""The ResNet family with non-local blocks: C2D and I3D ResNet-50/101 of Wang et al. (CVPR 2018).

Names read ``<arch>_nl<blocks>_r<depth>``: ``i3d_nl5_r50`` is I3D ResNet-50 with the paper's
5 non-local blocks (2 in res3, 3 in res4, after every other residual block); ``nl10`` puts one
after every residual block of res3 and res4; ``nl0`` is the baseline without any. An
architecture is a function returning a (ResNet3dConfig, ClipSpec) pair; building applies
overrides to either and returns an untrained model in eval mode::

    >>> from nlviz.models import build
    >>> model = build("i3d_nl5_r50", num_classes=400, pairwise="dot_product")

Pretrained entries (:data:`ENTRIES`), each checked against its publisher's files (Wang, Girshick,
Gupta, He, "Non-local Neural Networks", CVPR 2018, arXiv:1711.07971):

- ``caffe2``: the official release, facebookresearch/video-nonlocal-net (README "Main
  Results"; graphs in ``lib/models/resnet_video.py`` for 8-frame and 32-frame affine models,
  ``resnet_video_org.py`` for the paper's 32x2 and 128x1 ones). Licence CC-BY-NC 4.0.
- ``pyslowfast``: facebookresearch/SlowFast ``MODEL_ZOO.md`` (a Caffe2-format pickle,
  config ``configs/Kinetics/c2/I3D_NLN_8x8_R50.yaml``). Apache-2.0.
- ``mmaction2``: open-mmlab/mmaction2 ``configs/recognition/i3d/README.md`` (v1.x) and the
  configs it links. Apache-2.0. Its file names end in the first 8 hex digits of the sha256.

Their files are converted by the format modules of :mod:`nlviz.checkpoints` (caffe2,
pyslowfast, mmaction2), which also take a user's own checkpoint of these networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace

from torch import nn

from ..checkpoints.mmaction2 import GRAPH_OVERRIDES as MMACTION2_GRAPH
from ..download import filename_hash_prefix
from ..entry import APACHE, CC_BY_NC, PAPER, ZooEntry
from ..spec import C2_MEAN, C2_STD, IMAGENET_MEAN, IMAGENET_STD, ClipSpec
from .family import BlockInfo, Family
from .resnet3d import DEPTH_BLOCKS, NL_PLACEMENT, NonLocalConfig, ResNet3d, ResNet3dConfig

ArchFn = Callable[[], tuple[ResNet3dConfig, ClipSpec]]
ARCHS: dict[str, ArchFn] = {}  # this family's architectures, in registration order


def register(name: str, into: dict[str, ArchFn] | None = None) -> Callable[[ArchFn], ArchFn]:
    """Decorator adding a ResNet3d architecture under ``name`` to this family (or to the table ``into``);
    a duplicate name fails loudly (:func:`nlviz.models.register` also checks the other families)."""

    def deco(fn: ArchFn) -> ArchFn:
        table = ARCHS if into is None else into
        if name in table:
            raise ValueError(f"model {name!r} is already registered")
        table[name] = fn
        return fn

    return deco


_CFG_FIELDS = {f.name for f in fields(ResNet3dConfig)}
_NL_FIELDS = {f.name for f in fields(NonLocalConfig)}
_SPEC_FIELDS = {f.name for f in fields(ClipSpec)}


def build_resnet(name: str, cfg: ResNet3dConfig, spec: ClipSpec, **overrides) -> ResNet3d:
    """``ResNet3d`` of architecture ``name`` (default ``cfg``, ``spec``) with keyword overrides of any
    field of :class:`ResNet3dConfig` (e.g. ``num_classes``), of :class:`NonLocalConfig` (e.g.
    ``pairwise``, ``dims``, ``use_scale``: applied to every non-local block) or of
    :class:`~nlviz.spec.ClipSpec` (e.g. ``num_frames``); random weights, eval mode."""
    unknown = set(overrides) - _CFG_FIELDS - _NL_FIELDS - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown override(s) for {name}: {sorted(unknown)}")
    nl = replace(cfg.nonlocal_cfg, **{k: v for k, v in overrides.items() if k in _NL_FIELDS})
    cfg = replace(cfg, nonlocal_cfg=nl, **{k: v for k, v in overrides.items() if k in _CFG_FIELDS})
    spec = replace(spec, **{k: v for k, v in overrides.items() if k in _SPEC_FIELDS and k not in _CFG_FIELDS})
    return ResNet3d(cfg, spec, arch=name, overrides=overrides).eval()


def build(name: str, **overrides) -> ResNet3d:
    """Architecture ``name`` of this family with random weights (see :func:`build_resnet`)."""
    cfg, spec = ARCHS[name]()
    return build_resnet(name, cfg, spec, **overrides)


_PAIRWISE_TEXT = {"gaussian": "Gaussian", "embedded_gaussian": "embedded Gaussian", "dot_product": "dot product",
                  "concatenation": "concatenation"}


def stage_strides(cfg: ResNet3dConfig) -> dict[str, tuple[int, int, int]]:
    """(t, h, w) model-input frames/pixels per cell of each stage's output, res2..res5."""
    t = cfg.conv1_stride[0] * (cfg.pool1_stride[0] if cfg.pool1_kernel else 1)
    h = cfg.conv1_stride[1] * (cfg.pool1_stride[1] if cfg.pool1_kernel else 1)
    w = cfg.conv1_stride[2] * (cfg.pool1_stride[2] if cfg.pool1_kernel else 1)
    out = {}
    for s, stride in enumerate(cfg.stage_strides):
        h, w = h * stride, w * stride
        out[f"res{s + 2}"] = (t, h, w)
        if s == 0 and cfg.pool2:
            t *= 2
    return out


def blocks(model: nn.Module) -> list[BlockInfo]:
    """The non-local blocks of a :class:`ResNet3d`, in forward order (``res<s>.<i>.nl``)."""
    cfg = model.cfg
    strides = stage_strides(cfg)
    out = []
    for s, placed in enumerate(cfg.nonlocal_blocks):
        stage = f"res{s + 2}"
        if cfg.head == "dense" and s == 3:
            continue
        for i in placed:
            name = f"{stage}.{i}.nl"
            pairwise = _PAIRWISE_TEXT.get(cfg.nonlocal_cfg.pairwise, cfg.nonlocal_cfg.pairwise)
            out.append(BlockInfo(name=name, stage=stage, stride=strides[stage], kind="nonlocal",
                                 label=f"{name} ({pairwise})", depth=len(out)))
    return out


# --- the paper's networks ------------------------------------------------------------------

I3D_TEMPORAL = {  # 3x1x1 kernels in every other block (Caffe2 official I3D pattern for R50)
    50: ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1)),
    101: ((3, 3, 3), (3, 1, 3, 1), tuple(3 if i % 2 == 0 else 1 for i in range(23)), (1, 3, 1)),
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



# mmaction2 v1.x I3D ResNet-50 NL (configs/_base_/models/i3d_r50.py + the nl-* configs, and
# mmaction/models/backbones/resnet3d.py): conv1 temporal stride 2, pool1 1x3x3 with stride 2x2x2
# and padding (0, 1, 1); mmcv NonLocal3d with sub_sample=True (pool AFTER the phi/g convs),
# use_scale=False, conv_out without bias (BN follows). Clip 32x2x1, short side 256, centre crop
# 224, ImageNet RGB mean/std (ActionDataPreprocessor).
_MMACTION2_OVERRIDES = dict(MMACTION2_GRAPH)  # one definition, shared with the mmaction2 converter
_MMACTION2_SPEC = ClipSpec(
    num_frames=32, stride=2, short_side=256, crop_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    channel_order="RGB", labels="kinetics400",
)
_MMACTION2_PAGE = "https://github.com/open-mmlab/mmaction2/tree/main/configs/recognition/i3d"
_MMACTION2_EVAL = "Kinetics-400 val (mmaction2's 19796 videos), 10 clips x 3 crops of 256"
_MMACTION2_CITE = PAPER + "; MMAction2 Contributors, OpenMMLab's Next Generation Video Understanding Toolbox, 2020"
_MMACTION2_BASE = "https://download.openmmlab.com/mmaction/v1.0/recognition/i3d"


def _mmaction2(pairwise: str, mode: str, stamp: str, top1: float, top5: float) -> ZooEntry:
    config = f"i3d_imagenet-pretrained-r50-nl-{mode}_8xb8-32x2x1-100e_kinetics400-rgb"
    filename = f"{config}_{stamp}.pth"
    return ZooEntry(
        name=f"i3d_nl5_r50.kinetics400_mmaction2_{pairwise}",
        source="mmaction2",
        arch="i3d_nl5_r50",
        pairwise=pairwise,
        dims="spacetime",
        spec=_MMACTION2_SPEC,
        url=f"{_MMACTION2_BASE}/{config}/{filename}",
        filename=filename,
        file_format="torch",
        build_overrides=_MMACTION2_OVERRIDES,
        hash_prefix=filename_hash_prefix(filename),
        top1=top1,
        top5=top5,
        eval_set=_MMACTION2_EVAL,
        license=APACHE + " (mmaction2); trained on Kinetics-400, whose videos keep their own terms",
        citation=_MMACTION2_CITE,
        page=_MMACTION2_PAGE,
        notes=f"mmaction2 config {config}.py; ImageNet-pretrained ResNet-50 inflated to I3D, 100 epochs.",
    )


# Caffe2 video-nonlocal-net. Shared by all: BN eps 1.0000001e-5 (MODEL.BN_EPSILON and
# NONLOCAL.BN_EPSILON), NL blocks max-pool 1x2x2 BEFORE phi/g, scale 1/sqrt(C'), biases on
# every NL conv, mean 114.75 / std 57.375 on 0-255 for every channel (MODEL.MEAN/STD), RGB
# (the decoder's default AV_PIX_FMT_RGB24 with USE_BGR False), short side 256, crop 224.
# resnet_video_org.py (the paper's 32x2 and 128x1): conv1 temporal stride 2, pool1 2x3x3 stride 2.
# resnet_video.py (8x8 and the 32x4 affine model): conv1 temporal stride 1, pool1 1x3x3 stride 1x2x2.
# "affine" models (freeze BN, fine-tuned from an I3D baseline): NONLOCAL.USE_BN False (no BN after
# the NL output conv), res3's NL blocks attend within groups of 4 time steps (add_nonlocal_group).
_C2_BASE = "https://dl.fbaipublicfiles.com/video-nonlocal"
_C2_PAGE = "https://github.com/facebookresearch/video-nonlocal-net#main-results"
_C2_EPS = {"bn_eps": 1.0000001e-5}
_C2_ORG = {**_C2_EPS, "conv1_stride": (2, 2, 2), "pool1_kernel": (2, 3, 3), "pool1_stride": (2, 2, 2)}
_C2_AFFINE = {"nonlocal_time_groups": (1, 4, 1, 1), "norm": False}


def _c2_spec(frames: int, stride: int) -> ClipSpec:
    return ClipSpec(
        num_frames=frames, stride=stride, short_side=256, crop_size=224, mean=C2_MEAN, std=C2_STD,
        channel_order="RGB", labels="kinetics400",
    )


def _caffe2(
    arch: str, clip: str, file: str, overrides: dict, top1: float, top5: float, script: str, notes: str = ""
) -> ZooEntry:
    frames, stride = (int(v) for v in clip.split("_")[0].split("x"))
    return ZooEntry(
        name=f"{arch}.kinetics400_caffe2_{clip}",
        source="caffe2",
        arch=arch,
        pairwise="embedded_gaussian",
        dims="spacetime",
        spec=_c2_spec(frames, stride),
        url=f"{_C2_BASE}/{file}",
        filename=file,
        file_format="caffe2_pickle",
        build_overrides=overrides,
        top1=top1,
        top5=top5,
        eval_set="Kinetics-400 val, fully-convolutional testing on 10 clips x 3 crops of 256 (README)",
        license=CC_BY_NC,
        page=_C2_PAGE,
        notes=f"trained with scripts/{script}. " + notes,
    )


ENTRIES: tuple[ZooEntry, ...] = (
    _mmaction2("embedded_gaussian", "embedded-gaussian", "20220812-afd8f562", 74.73, 91.80),
    _mmaction2("gaussian", "gaussian", "20220812-0c5cbf5a", 73.97, 91.33),
    _mmaction2("dot_product", "dot-product", "20220812-8e1f2148", 74.80, 92.07),
    _caffe2(
        "i3d_nl5_r50", "32x2", "i3d_nonlocal_32x2_IN_pretrain_400k.pkl", _C2_ORG, 74.9, 91.6,
        "run_i3d_nlnet_400k_32f.sh", "The paper's I3D NL R50 on 32 frames (paper: 74.9).",
    ),
    _caffe2(
        "i3d_nl5_r50", "8x8", "i3d_nonlocal_8x8_IN_pretrain_400k.pkl", _C2_EPS, 74.7, 91.6,
        "run_i3d_nlnet_400k.sh", "Sparser sampling than the paper, same feature map sizes from res2 on.",
    ),
    _caffe2(
        "c2d_nl5_r50", "32x2", "c2d_nonlocal_32x2_IN_pretrain_400k.pkl", _C2_ORG, 73.9, 91.0,
        "run_c2d_nlnet_400k_32f.sh", "The paper's C2D NL R50 on 32 frames (paper: 73.8).",
    ),
    _caffe2(
        "c2d_nl5_r50", "8x8", "c2d_nonlocal_8x8_IN_pretrain_400k.pkl", _C2_EPS, 74.4, 91.4,
        "run_c2d_nlnet_400k.sh", "Sparser sampling than the paper, same feature map sizes from res2 on.",
    ),
    _caffe2(
        "i3d_nl5_r50", "128x1_affine", "i3d_nonlocal_128x1_I3D_pretrain_400k.pkl",
        {**_C2_ORG, **_C2_AFFINE}, 76.5, 92.7, "run_i3d_nlnet_affine_400k_128f.sh",
        "The paper's long-clip model (paper: 76.5): fine-tuned from the 32-frame I3D baseline with BN frozen "
        "into affine layers (no running statistics in the file).",
    ),
    _caffe2(
        "i3d_nl5_r50", "32x4_affine", "i3d_nonlocal_32x4_I3D_pretrain_400k.pkl",
        {**_C2_EPS, **_C2_AFFINE}, 76.5, 92.6, "run_i3d_nlnet_affine_400k.sh",
        "Long clip with sparser sampling: fine-tuned from the 8x8 I3D baseline with BN frozen into affine layers.",
    ),
    ZooEntry(
        name="i3d_nl5_r50.kinetics400_pyslowfast_8x8",
        source="pyslowfast",
        arch="i3d_nl5_r50",
        pairwise="embedded_gaussian",
        dims="spacetime",
        # SlowFast DATA.MEAN 0.45 / DATA.STD 0.225 on 0-1, i.e. 114.75 / 57.375 on 0-255; RGB frames.
        spec=_c2_spec(8, 8),
        url="https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/I3D_NLN_8x8_R50.pkl",
        filename="I3D_NLN_8x8_R50.pkl",
        file_format="caffe2_pickle",
        # PySlowFast's stem pads pool1 by 1 (56x56 after a 224 crop); NL blocks as in Caffe2.
        build_overrides={"pool1_padding": (0, 1, 1)},
        top1=74.0,
        top5=91.1,
        eval_set="Kinetics-400 val, 10 clips x 3 crops (PySlowFast MODEL_ZOO.md)",
        license=APACHE + " (PySlowFast); trained on Kinetics-400, whose videos keep their own terms",
        citation=PAPER + "; Haoqi Fan et al., PySlowFast, 2020",
        page="https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md",
        notes="Caffe2-format checkpoint (TRAIN.CHECKPOINT_TYPE caffe2); "
        "config configs/Kinetics/c2/I3D_NLN_8x8_R50.yaml.",
    ),
)

def owns_keys(keys: list[str]) -> bool:
    """nlviz's ResNet names, mmaction2's, Caffe2's blobs, PySlowFast's."""
    marks = ("stem.conv.weight", "backbone.conv1.conv.weight", "conv1_w", "s1.pathway0_stem.conv.weight")
    return any(k in marks for k in keys) or any(k.startswith(("res2.", "backbone.layer1.")) for k in keys)


FAMILY = Family(
    name="resnet_nl",
    title="C2D / I3D ResNet-50/101 with non-local blocks (Wang et al., CVPR 2018)",
    archs=ARCHS,
    build=build,
    blocks=blocks,
    entries=lambda: ENTRIES,
    load=None,  # published files: nlviz.checkpoints detects and converts them
    owns_keys=owns_keys,
)
