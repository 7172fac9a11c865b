"""Official Caffe2 non-local checkpoints (facebookresearch/video-nonlocal-net) -> nlviz.

Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018. The release's ``.pkl``
files are Python-2 pickles of ``{"blobs": {name: ndarray}}`` written by
``lib/utils/checkpoints.py`` (``save_model_params``); files made by its
``process_data/convert_models`` scripts are the bare blob dict. They are read with the
restricted unpickler of :mod:`nlviz.checkpoints.safe_pickle` (latin-1)::

    obj = safe_pickle.load("i3d_nonlocal_8x8_IN_pretrain_400k.pkl")
    arch, overrides, state = caffe2.convert(obj, filename="i3d_nonlocal_8x8_IN_pretrain_400k.pkl")
    model = nlviz.models.build(arch, **overrides); model.load_state_dict(state, strict=True)

Blob names (``lib/models/resnet_video.py``, ``resnet_helper.py``, ``nonlocal_helper.py``,
``model_builder_video.py``; the same table as PySlowFast's ``slowfast/utils/c2_model_loading.py``):

    conv1_w                                  stem.conv.weight             (64, 3, kt, 7, 7)
    res_conv1_bn_{s,b,rm,riv}                stem.bn.{weight,bias,running_mean,running_var}
    res{s}_{i}_branch2{a,b,c}_w              res{s}.{i}.conv_{a,b,c}.weight
    res{s}_{i}_branch2{a,b,c}_bn_*           res{s}.{i}.bn_{a,b,c}.*
    res{s}_{i}_branch1_w / _bn_*             res{s}.{i}.downsample.0.weight / downsample.1.*
    nonlocal_conv{s}_{i}_{theta,phi,g}_{w,b} res{s}.{i}.nl.{theta,phi,g}.conv.{weight,bias}
    nonlocal_conv{s}_{i}_out_{w,b}           res{s}.{i}.nl.out.{weight,bias}
    nonlocal_conv{s}_{i}_bn_*                res{s}.{i}.nl.bn.*
    pred_w (400, 2048) or (400, 2048, 1, 1, 1), pred_b                head.fc.{weight,bias}

``_riv`` holds the running *variance* (``convert_to_finetune.py`` computes
``sqrt(bn_var + eps)`` from it). ``lr``, ``model_iter``, ``epoch`` and ``*_momentum``
(SGD state) are read and ignored; any other blob nlviz has no place for is an error.

Read from the blobs: depth (residual blocks per stage; ResNet-50 or -101), width (conv1's
output channels), C2D vs I3D (conv1's temporal kernel), the temporal kernel of every
``branch2a``, which blocks are followed by a non-local block (``nonlocal_conv{s}_{i}_*``),
whether those have a BN after W, biases, and the classes. "Affine" checkpoints (BN frozen
into a per-channel scale and bias, ``MODEL.USE_AFFINE``, e.g. the 128x1 and 32x4 long-clip
models) hold only ``_s``/``_b`` per BN: each becomes a BatchNorm with running mean 0 and
running variance 1 - eps (the same function up to float32 rounding). Such models build res3's
non-local blocks with ``res_stage_nonlocal_group`` (``group_size=4``): attention within
groups of 4 consecutive time steps (``nonlocal_time_groups=(1, 4, 1, 1)``), and their
non-local blocks have no BN after W (``NONLOCAL.USE_BN: False`` in the affine config).

Fixed by the Caffe2 code (``lib/core/config.py``, ``nonlocal_helper.py``): BN eps
1.0000001e-5 (``MODEL.BN_EPSILON``, ``NONLOCAL.BN_EPSILON``); a 1x2x2 max pool of the input
*before* the phi and g convs (``NONLOCAL.USE_MAXPOOL``); logits scaled by 1/sqrt(C')
(``NONLOCAL.USE_SCALE``) before the softmax (``NONLOCAL.USE_SOFTMAX``; without it, division
by the number of keys: pass ``pairwise="dot_product"``); pixels in 0-255, minus 114.75,
over 57.375 (``MODEL.MEAN``/``MODEL.STD``), in RGB order (``MODEL.USE_BGR: False`` and the
decoder's ``AV_PIX_FMT_RGB24``); test short side 256 (``TEST.SCALE``), crop 224.

Not in the blobs: the clip and the stem strides. ``resnet_video.py`` (8x8, and the 32x4
affine model): conv1 temporal stride 1, pool1 1x3x3 stride 1x2x2. ``resnet_video_org.py``
(the paper's 32x2 and 128x1): conv1 temporal stride 2, pool1 2x3x3 stride 2x2x2. Both pad
pool1 by 0 and end with a 2x1x1 pool2 after res2. They are read from the file name
(``..._8x8_...``, ``..._32x2_...``); PySlowFast's Caffe2-format files (``I3D_NLN_8x8_R50.pkl``)
run in PySlowFast's graph, which pads pool1 by 1 and uses BN eps 1e-5. Otherwise the
``resnet_video.py`` graph is assumed (with an :class:`AssumptionWarning`): pass the build
overrides (``num_frames``, ``stride``, ``conv1_stride``, ``pool1_kernel``, ...) to say so.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import torch
from torch import Tensor

from ..spec import C2_MEAN, C2_STD
from .common import (AssumptionWarning, CheckpointError, CheckpointMismatchError, KeyScheme, expected_state, labels_for,
                     mismatch_report, registry_identity, resnet_blocks, shape_of, shape_str, temporal_kernels,
                     to_tensor)

NAME = "caffe2"
DESCRIPTION = "Caffe2 pickle of numpy blobs (facebookresearch/video-nonlocal-net; PySlowFast's Caffe2 files)"

BN_EPS = 1.0000001e-5  # MODEL.BN_EPSILON and NONLOCAL.BN_EPSILON in lib/core/config.py
IGNORED = frozenset({"lr", "model_iter", "epoch"})  # training state saved beside the weights
IGNORED_SUFFIXES = ("_momentum",)  # SGD momentum of every parameter

# the stem around the weights; see the module docstring
GRAPHS: dict[str, dict[str, Any]] = {
    "resnet_video": {
        "conv1_stride": (1, 2, 2), "pool1_kernel": (1, 3, 3), "pool1_stride": (1, 2, 2),
        "pool1_padding": (0, 0, 0), "pool2": True, "bn_eps": BN_EPS,
    },
    "resnet_video_org": {
        "conv1_stride": (2, 2, 2), "pool1_kernel": (2, 3, 3), "pool1_stride": (2, 2, 2),
        "pool1_padding": (0, 0, 0), "pool2": True, "bn_eps": BN_EPS,
    },
    "pyslowfast": {  # slowfast/models/stem_helper.py pads pool1 by 1; BN eps 1e-5 throughout
        "conv1_stride": (1, 2, 2), "pool1_kernel": (1, 3, 3), "pool1_stride": (1, 2, 2),
        "pool1_padding": (0, 1, 1), "pool2": True, "bn_eps": 1e-5,
    },
}
# the released clips (README "Main Results") and the graph each was trained in
CLIP_GRAPHS = {(8, 8): "resnet_video", (32, 4): "resnet_video", (32, 2): "resnet_video_org",
               (128, 1): "resnet_video_org"}
AFFINE_TIME_GROUPS = (1, 4, 1, 1)  # res_stage_nonlocal_group(..., group_size=4) for res3 only

_PYSLOWFAST_NAME = re.compile(r"^(C2D|I3D|SLOW|SLOWONLY)(_NOPOOL)?(_NLN)?_\d+x\d+_R\d+", re.IGNORECASE)


# --- names ----------------------------------------------------------------------------------

# lib/models/resnet_helper.py and nonlocal_helper.py name every blob; Caffe2 keeps no BN batch count
KEYS = KeyScheme(
    "Caffe2",
    {
        "stem_conv": "conv1_w",
        "stem_bn": "res_conv1_bn_{bn}",
        "conv": "res{s}_{i}_branch2{x}_w",
        "bn": "res{s}_{i}_branch2{x}_bn_{bn}",
        "down_conv": "res{s}_{i}_branch1_w",
        "down_bn": "res{s}_{i}_branch1_bn_{bn}",
        "nl_theta": "nonlocal_conv{s}_{i}_theta_{wb}",
        "nl_kv": "nonlocal_conv{s}_{i}_{kv}_{wb}",
        "nl_out": "nonlocal_conv{s}_{i}_out_{wb}",
        "nl_bn": "nonlocal_conv{s}_{i}_bn_{bn}",
        "fc": "pred_{wb}",
    },
    values={"bn": {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"},
            "wb": {"weight": "w", "bias": "b"}},
)


def map_key(blob: str) -> str | None:
    """Caffe2 blob name -> our state-dict key (None for names nlviz has no place for)."""
    return KEYS.to_ours(blob)


def source_key(key: str) -> str | None:
    """Our state-dict key -> its Caffe2 blob name (None for ``num_batches_tracked``, which Caffe2 lacks)."""
    return KEYS.to_source(key)


def is_ignored(blob: str) -> bool:
    """Training state saved beside the weights: lr, model_iter, epoch, *_momentum."""
    return blob in IGNORED or blob.endswith(IGNORED_SUFFIXES)


# --- detection ------------------------------------------------------------------------------


def blobs_of(obj: Any) -> Mapping[str, Any] | None:
    """The blob dict of a loaded Caffe2 checkpoint (``{"blobs": {...}}`` or the bare dict), else None."""
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("blobs")
    if isinstance(inner, Mapping):
        return inner
    if "conv1_w" in obj:
        return obj
    return None


def detect(obj: Any) -> bool:
    """Whether ``obj`` is a Caffe2 ResNet video checkpoint: a blob dict with an array ``conv1_w``. Never raises."""
    try:
        blobs = blobs_of(obj)
        return blobs is not None and shape_of(blobs.get("conv1_w")) is not None
    except Exception:  # noqa: BLE001 - detection never raises, whatever the object
        return False


# --- inference ------------------------------------------------------------------------------


def _fail(msg: str) -> CheckpointError:
    return CheckpointError(f"Caffe2 checkpoint: {msg}")


def _graph_from_filename(filename: str | None, affine: bool) -> tuple[str, tuple[int, int], bool]:
    """(graph name, (frames, sampling rate), whether both came from the name)."""
    name = PurePath(filename).name if filename else ""
    tag = re.search(r"(?<![0-9])(\d+)x(\d+)(?![0-9])", name)
    clip = (int(tag[1]), int(tag[2])) if tag else None
    if clip and _PYSLOWFAST_NAME.match(name):
        return "pyslowfast", clip, True
    if clip and clip in CLIP_GRAPHS:
        return CLIP_GRAPHS[clip], clip, True
    default_clip = (32, 4) if affine else (8, 8)
    return "resnet_video", clip or default_clip, False


def infer(
    obj: Any, *, filename: str | None = None, pairwise: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(registry architecture name, build overrides) of a Caffe2 checkpoint, from its blob names and shapes.

    ``filename``: the file's name, which says the clip (``..._32x2_...``) and so the stem graph.
    ``pairwise``: "embedded_gaussian" (``NONLOCAL.USE_SOFTMAX``, every released model) or
    "dot_product"; the weights cannot tell them apart.
    May warn :class:`AssumptionWarning` (see the module docstring).
    """
    blobs = blobs_of(obj)
    if blobs is None:
        raise _fail("no blob dict (expected {'blobs': {name: array}} or a dict with 'conv1_w')")
    names = [k for k in blobs if isinstance(k, str)]
    if any(n.startswith("t_") for n in names if not is_ignored(n)):
        raise _fail("it has t_* blobs: a two-pathway SlowFast network, which nlviz does not build "
                    "(nlviz has single-pathway C2D / I3D ResNets)")
    stem = shape_of(blobs.get("conv1_w"))
    if stem is None or len(stem) != 5 or stem[1] != 3:
        raise _fail(f"conv1_w is {shape_str(stem) if stem else 'missing'}; expected a 3-D conv on RGB (C, 3, t, 7, 7)")
    if any(k % 2 == 0 for k in stem[2:]):
        raise _fail(f"conv1_w has an even kernel {stem[2:]}; Caffe2 pads (k - 1) / 2 and so does nlviz")
    pred = shape_of(blobs.get("pred_w"))
    if pred is None or len(pred) < 2:
        raise _fail(f"pred_w is {shape_str(pred) if pred else 'missing'}: no classifier (classes, C) in the file "
                    "(a backbone-only initialisation file cannot be shown)")

    # depth: blocks per stage, read from every res{s}_{i}_* name
    indices: dict[int, set[int]] = {s: set() for s in range(2, 6)}
    for n in names:
        m = re.match(r"^res(\d+)_(\d+)_", n)
        if m and int(m[1]) in indices and not is_ignored(n):
            indices[int(m[1])].add(int(m[2]))
    blocks = resnet_blocks(indices, "Caffe2")

    # temporal kernel of every bottleneck (branch2a, 3x1x1 or 1x1x1)
    kernels = temporal_kernels(blocks, lambda s, i: blobs.get(f"res{s}_{i}_branch2a_w"))
    if any(k % 2 == 0 for s in kernels for k in s):
        raise _fail(f"a branch2a conv has an even temporal kernel ({kernels}); Caffe2 pads (k - 1) / 2")

    # non-local blocks and what they have
    nl_parts: dict[tuple[int, int], set[str]] = {}
    for n in names:
        m = re.match(r"^nonlocal_conv(\d+)_(\d+)_(.+)$", n)
        if m and not is_ignored(n):
            nl_parts.setdefault((int(m[1]), int(m[2])), set()).add(m[3])
    placement = tuple(tuple(sorted(i for (st, i) in nl_parts if st == s and i < blocks[s - 2])) for s in range(2, 6))
    all_nl = set().union(*nl_parts.values()) if nl_parts else set()
    backbone_bn = [n for n in names if re.search(r"_bn_(rm|riv)$", n) and not n.startswith("nonlocal_")]
    affine = not backbone_bn  # MODEL.USE_AFFINE: every BN is a scale and a bias

    graph, (frames, rate), from_name = _graph_from_filename(filename, affine)
    if not from_name:
        warnings.warn(
            AssumptionWarning(
                f"Caffe2 checkpoint{' ' + PurePath(filename).name if filename else ''}: the file does not say its "
                f"clip or stem; assumed the resnet_video.py graph (conv1 temporal stride 1, pool1 1x3x3) and "
                f"{frames}x{rate} clips. Pass num_frames/stride/conv1_stride/pool1_kernel/pool1_stride to change it.",
                fields=("num_frames", "stride", "conv1_stride", "pool1_kernel", "pool1_stride"),
            ),
            stacklevel=3,
        )

    if pairwise is not None and pairwise not in ("embedded_gaussian", "dot_product"):
        raise _fail(f"pairwise={pairwise!r}: Caffe2's non-local blocks are embedded_gaussian "
                    "(NONLOCAL.USE_SOFTMAX) or dot_product; theta/phi convs rule out the others")
    num_classes = pred[0]
    fields: dict[str, Any] = {
        "blocks": blocks,
        "base_channels": stem[0],
        "conv1_kernel": tuple(stem[2:]),
        "temporal_kernels": tuple(kernels),
        "inflate_conv": "a",
        "stage_strides": (1, 2, 2, 2),
        "nonlocal_blocks": placement,
        "nonlocal_time_groups": AFFINE_TIME_GROUPS if affine else (1, 1, 1, 1),
        **GRAPHS[graph],
        "num_classes": num_classes,
        # non-local semantics (nonlocal_helper.py)
        "pairwise": pairwise or "embedded_gaussian",
        "dims": "spacetime",
        "subsample": True,
        "pool_first": True,
        "use_scale": True,
        "norm": "bn_s" in all_nl,
        "w_bias": "out_b" in all_nl,
        # the clip (lib/core/config.py, the decoder in caffe2_customized_ops/video)
        "num_frames": frames,
        "stride": rate,
        "short_side": 256,
        "crop_size": 224,
        "mean": C2_MEAN,
        "std": C2_STD,
        "channel_order": "RGB",
        "labels": labels_for(num_classes),
    }
    return registry_identity(fields)


# --- conversion -----------------------------------------------------------------------------


def convert(
    obj: Any, *, filename: str | None = None, pairwise: str | None = None
) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """A Caffe2 checkpoint -> (registry architecture name, build overrides, our state dict).

    ``nlviz.models.build(arch, **overrides).load_state_dict(state, strict=True)`` then gives the
    Caffe2 network. Every blob is used except the training state (:func:`is_ignored`); blobs
    nlviz has no place for, blobs the network needs but the file lacks, and shapes that differ
    raise :class:`CheckpointMismatchError` naming the first few of each and their counts.
    """
    arch, overrides = infer(obj, filename=filename, pairwise=pairwise)
    blobs = blobs_of(obj)
    expected = expected_state(arch, overrides)
    eps = float(overrides.get("bn_eps", BN_EPS))
    names = {k for k in blobs if isinstance(k, str)}
    nl_proj_bias = any(re.match(r"^nonlocal_conv\d+_\d+_theta_b$", n) for n in names)  # NONLOCAL.NO_BIAS = 0

    state: dict[str, Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    shapes: list[str] = []
    for key, shape in expected.items():
        src = source_key(key)
        if src is None:  # num_batches_tracked: Caffe2 keeps no count
            state[key] = torch.zeros((), dtype=torch.int64)
            continue
        if src in blobs:
            value = to_tensor(blobs[src], src)
            if key == "head.fc.weight" and value.dim() == 5 and all(d == 1 for d in value.shape[2:]):
                value = value.reshape(value.shape[:2])  # the test net's 1x1x1 conv classifier
            used.add(src)
            if tuple(value.shape) != shape:
                shapes.append(f"{src}: file {shape_str(value.shape)} vs model {shape_str(shape)} ({key})")
                continue
            state[key] = value
            continue
        bn_layer = re.match(r"^(.*_bn)_(rm|riv)$", src)
        if bn_layer and f"{bn_layer[1]}_rm" not in names and f"{bn_layer[1]}_riv" not in names and (
            f"{bn_layer[1]}_s" in names
        ) and _affine_allowed(src, names):
            # an AffineNd layer: y = s * x + b == BN with mean 0 and variance 1 - eps
            fill = 0.0 if bn_layer[2] == "rm" else 1.0 - eps
            state[key] = torch.full(shape, fill, dtype=torch.float32)
            continue
        if re.match(r"^nonlocal_conv\d+_\d+_(theta|phi|g)_b$", src) and not nl_proj_bias:
            state[key] = torch.zeros(shape, dtype=torch.float32)  # NONLOCAL.NO_BIAS: no bias == zero bias
            continue
        missing.append(src)

    unexpected = sorted(n for n in names - used if not is_ignored(n))
    unexpected += [repr(k) for k in blobs if not isinstance(k, str)]
    problem = mismatch_report(missing, unexpected, shapes)
    if problem:
        raise CheckpointMismatchError(f"Caffe2 checkpoint does not fit {_describe(arch, overrides)}: {problem}")
    return arch, overrides, state


def _affine_allowed(src: str, names: set[str]) -> bool:
    """Running statistics may be absent only where the whole part (backbone or NL blocks) is affine."""
    nl = src.startswith("nonlocal_")
    return not any(re.search(r"_bn_(rm|riv)$", n) and n.startswith("nonlocal_") == nl for n in names)


def _describe(arch: str, overrides: dict[str, Any]) -> str:
    extra = {k: overrides[k] for k in ("base_channels", "blocks", "conv1_kernel", "nonlocal_blocks") if k in overrides}
    return arch + (f" ({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else "")


__all__ = [
    "BN_EPS",
    "CLIP_GRAPHS",
    "DESCRIPTION",
    "GRAPHS",
    "KEYS",
    "NAME",
    "blobs_of",
    "convert",
    "detect",
    "infer",
    "is_ignored",
    "map_key",
    "source_key",
]
