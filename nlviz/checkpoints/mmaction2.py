"""OpenMMLab mmaction2 checkpoints (I3D / C2D ResNet-3D with mmcv ``NonLocal3d`` blocks) -> nlviz.

An mmaction2 checkpoint is a ``torch.save`` of ``{"meta": {...}, "state_dict": {...}, ...}``
whose state dict belongs to a ``Recognizer3D``: ``backbone.*`` (mmaction2's ``ResNet3d``,
every conv+BN an mmcv ``ConvModule``) and ``cls_head.*`` (``I3DHead``). The architecture
spec this module follows, with every fact checked against mmaction2's own code, is
``tests/fixtures/mmaction2/README.md``. ``nlviz.checkpoints.load_model(path)`` detects the
format and does all of this; by hand::

    obj = torch.load(path, weights_only=True)
    if mmaction2.detect(obj):
        arch, overrides, state = mmaction2.convert(obj)           # may warn: see "Pairwise"
        model = nlviz.models.build(arch, **overrides)
        model.load_state_dict(state, strict=True)

Everything about the network is read from the state dict itself:

- depth: residual blocks per stage (``backbone.layer{1..4}.{i}``); ResNet-50 and -101 get their
  registry names, any other bottleneck count is expressed with the ``blocks`` override;
- width: ``base_channels`` from the stem conv's output channels (64 in real checkpoints);
- the stem kernel, and the inflation of every residual block: the temporal size of ``conv1``
  (``inflate_style="3x1x1"``, what every mmaction2 I3D config uses) or of ``conv2``
  (``"3x3x3"``);
- non-local placement: the blocks that own ``non_local_block.*`` keys;
- the pairwise function where the weights tell it: ``gaussian`` has no theta/phi convs,
  ``concatenation`` has ``concat_project``; the key subsampling (``phi.0``/``g.0``: pooled)
  and whether W has a BN (``conv_out.bn``) or a bias (``conv_out.conv.bias``);
- ``num_classes`` from ``cls_head.fc_cls``.

What the weights cannot tell is mmaction2's graph around them, which every published I3D
config shares: conv1 stride (2, 2, 2), pool1 1x3x3 with stride (2, 2, 2) and padding
(0, 1, 1), pool2 2x1x1, non-local pooling after the phi/g convs, no 1/sqrt(C') scale, BN eps
1e-5, and the clip: 32 frames every 2, short side 256, crop 224, ImageNet mean/std in RGB,
Kinetics-400 labels. These come as fixed overrides (:data:`GRAPH_OVERRIDES`,
:data:`SPEC_OVERRIDES`); a ``conv1_stride_t``/``pool1_stride_t``/``use_scale`` found in the
checkpoint's saved config (``meta["cfg"]``) replaces the default.

Pairwise: ``embedded_gaussian`` and ``dot_product`` have the same parameters, so the weights
cannot tell them apart. The mode comes from, in order: the ``pairwise`` (or mmcv's name,
``mode``) argument; the checkpoint's ``meta`` (a saved config's ``non_local_cfg`` ``mode``,
or a config/experiment name such as ``...-r50-nl-dot-product_...``); the ``filename``
argument (mmaction2's file names are config names); else ``embedded_gaussian``, with an
:class:`AmbiguousPairwiseWarning`. Pass ``pairwise=`` for a bare state dict of a dot-product
model.

Errors and warnings belong to the families of :mod:`nlviz.checkpoints.common`:
:class:`MMAction2CheckpointError` is a ``CheckpointError``, :class:`MMAction2MismatchError` also
a ``CheckpointMismatchError``, :class:`AmbiguousPairwiseWarning` an ``AssumptionWarning`` whose
``fields`` are ``{"pairwise"}``.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..nonlocal_block import PAIRWISE
from ..spec import IMAGENET_MEAN, IMAGENET_STD
from .common import (
    AssumptionWarning,
    CheckpointError,
    CheckpointMismatchError,
    KeyScheme,
    count_report,
    expected_state,
    registry_identity,
    strip_module_prefix,
)

NAME = "mmaction2"
DESCRIPTION = "OpenMMLab mmaction2 .pth ({'state_dict', 'meta'}): I3D/C2D ResNet3d with mmcv NonLocal3d blocks"

# mmaction2's I3D graph around the weights (configs/_base_/models/i3d_r50.py + mmcv NonLocal3d)
GRAPH_OVERRIDES: dict[str, Any] = {
    "conv1_stride": (2, 2, 2),
    "pool1_kernel": (1, 3, 3),
    "pool1_stride": (2, 2, 2),
    "pool1_padding": (0, 1, 1),
    "pool_first": False,
    "use_scale": False,
    "w_bias": False,
}
# the clip of every mmaction2 Kinetics-400 I3D NL config: SampleFrames(32, 2), Resize(-1, 256), crop 224
SPEC_OVERRIDES: dict[str, Any] = {
    "num_frames": 32,
    "stride": 2,
    "short_side": 256,
    "crop_size": 224,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "channel_order": "RGB",
    "labels": "kinetics400",
}
DEFAULT_PAIRWISE = "embedded_gaussian"



class MMAction2CheckpointError(CheckpointError):
    """An mmaction2 checkpoint that nlviz cannot turn into one of its models (and why)."""


class MMAction2MismatchError(MMAction2CheckpointError, CheckpointMismatchError):
    """An mmaction2 checkpoint whose weights do not fit the network its keys describe."""


class AmbiguousPairwiseWarning(AssumptionWarning):
    """The weights fit embedded_gaussian and dot_product alike and nothing said which: a default was used.

    ``fields`` is ``{"pairwise"}``: a caller that passes ``pairwise=`` never sees it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, fields=("pairwise",))


# --- detection ------------------------------------------------------------------------------------


def _state_dict_of(obj: Any) -> Mapping[str, Any] | None:
    """The recognizer state dict inside ``obj`` (a full checkpoint or a bare state dict), or None."""
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("state_dict")
    if isinstance(inner, Mapping):
        return inner
    return obj


def detect(obj: Any) -> bool:
    """Whether ``obj`` is an mmaction2 recognizer checkpoint: ``{"state_dict": ...}`` or a bare state dict
    whose keys are ``backbone.*`` with mmcv ``ConvModule`` names (``backbone.conv1.conv.weight``) and
    ``cls_head.*``. Never raises."""
    try:
        sd = _state_dict_of(obj)
        if not sd:
            return False
        sd = strip_module_prefix(sd)
        keys = [k for k in sd if isinstance(k, str)]
        has_backbone = "backbone.conv1.conv.weight" in sd or any(
            re.match(r"backbone\.layer\d+\.\d+\.conv1\.conv\.weight$", k) for k in keys
        )
        return has_backbone and any(k.startswith("cls_head.") for k in keys)
    except Exception:  # detection of a foreign object must never fail
        return False


# --- key mapping ----------------------------------------------------------------------------------

# mmaction2's ResNet3d (layer1..layer4 are our res2..res5; conv1..conv3 our conv_a..conv_c, each an
# mmcv ConvModule: .conv and .bn) and mmcv's NonLocal3d (phi/g get a ".0" before their pool when it
# subsamples)
KEYS = KeyScheme(
    "mmaction2",
    {
        "stem_conv": "backbone.conv1.conv.weight",
        "stem_bn": "backbone.conv1.bn.{bn}",
        "conv": "backbone.layer{s}.{i}.conv{x}.conv.weight",
        "bn": "backbone.layer{s}.{i}.conv{x}.bn.{bn}",
        "down_conv": "backbone.layer{s}.{i}.downsample.conv.weight",
        "down_bn": "backbone.layer{s}.{i}.downsample.bn.{bn}",
        "nl_theta": "backbone.layer{s}.{i}.non_local_block.theta.conv.{wb}",
        "nl_kv": "backbone.layer{s}.{i}.non_local_block.{kv}{pool}.conv.{wb}",
        "nl_concat": "backbone.layer{s}.{i}.non_local_block.concat_project.conv.weight",
        "nl_out": "backbone.layer{s}.{i}.non_local_block.conv_out.conv.{wb}",
        "nl_bn": "backbone.layer{s}.{i}.non_local_block.conv_out.bn.{bn}",
        "fc": "cls_head.fc_cls.{wb}",
    },
    values={"s": {"2": "1", "3": "2", "4": "3", "5": "4"}, "x": {"a": "1", "b": "2", "c": "3"}},
    extra={"pool": (".0", "")},
)


def map_key(key: str) -> str | None:
    """Our state-dict name for an mmaction2 key, or None when the key means nothing to nlviz.

    ``backbone.layer2.1.non_local_block.phi.0.conv.weight`` -> ``res3.1.nl.phi.conv.weight``
    (mmaction2's layer1..layer4 are our res2..res5).
    """
    return KEYS.to_ours(key)


def source_key(target: str, *, subsample: bool = True) -> str:
    """The mmaction2 name of one of our state-dict keys (the inverse of :func:`map_key`).

    ``subsample``: mmcv names the pooled phi/g ``phi.0``/``g.0`` and the unpooled ones ``phi``/``g``.
    Unknown names come back unchanged.
    """
    try:
        return KEYS.to_source(target, pool=".0" if subsample else "") or target
    except KeyError:
        return target


# --- structure inference --------------------------------------------------------------------------


def _fail(msg: str) -> MMAction2CheckpointError:
    return MMAction2CheckpointError(f"mmaction2 checkpoint: {msg}")


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    t = sd.get(key)
    return tuple(t.shape) if isinstance(t, Tensor) else None


def _stage_blocks(sd: Mapping[str, Any]) -> list[list[int]]:
    """Residual block indices present in layer1..layer4."""
    found: dict[int, set[int]] = {}
    for k in sd:
        m = re.match(r"backbone\.layer(\d+)\.(\d+)\.", k)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    extra = sorted(layer for layer in found if not 1 <= layer <= 4)
    if extra:
        raise _fail(f"stages layer{extra[0]}.. found; nlviz's ResNet-3D has exactly layer1..layer4")
    stages = []
    for layer in range(1, 5):
        idx = sorted(found.get(layer, ()))
        if not idx:
            raise _fail(f"no residual blocks in backbone.layer{layer} (is this a ResNet3d backbone?)")
        if idx != list(range(len(idx))):
            gaps = sorted(set(range(idx[-1] + 1)) - set(idx))
            raise _fail(f"backbone.layer{layer} has blocks {idx} but none numbered {gaps}")
        stages.append(idx)
    return stages


def _temporal_kernels(sd: Mapping[str, Any], stages: list[list[int]]) -> tuple[str, tuple[tuple[int, ...], ...]]:
    """(inflate_conv, temporal kernel of every block) from the conv1/conv2 weight shapes."""
    k1, k2 = [], []
    for layer, idx in enumerate(stages, start=1):
        s1, s2 = [], []
        for i in idx:
            a = _shape(sd, f"backbone.layer{layer}.{i}.conv1.conv.weight")
            b = _shape(sd, f"backbone.layer{layer}.{i}.conv2.conv.weight")
            if a is None or b is None or len(a) != 5 or len(b) != 5:
                name = "conv1" if a is None or len(a) != 5 else "conv2"
                raise _fail(
                    f"backbone.layer{layer}.{i}.{name}.conv.weight is missing or not a 3-D conv weight "
                    "(nlviz loads 3-D bottleneck ResNets: I3D or C2D)"
                )
            if a[3:] != (1, 1) or b[3:] != (3, 3):
                raise _fail(
                    f"backbone.layer{layer}.{i}: conv1/conv2 kernels {a[2:]}/{b[2:]} are not a bottleneck's "
                    "(t x 1 x 1, t x 3 x 3)"
                )
            s1.append(a[2])
            s2.append(b[2])
        k1.append(tuple(s1))
        k2.append(tuple(s2))
    inflated1 = any(t > 1 for s in k1 for t in s)
    inflated2 = any(t > 1 for s in k2 for t in s)
    if inflated1 and inflated2:
        raise _fail("temporal kernels on both conv1 and conv2 of the bottlenecks; nlviz inflates one of them")
    kernels, conv = (k2, "b") if inflated2 else (k1, "a")
    even = [t for s in kernels for t in s if t % 2 == 0]
    if even:
        raise _fail(f"even temporal kernel size {even[0]}: nlviz pads (k - 1) / 2 and needs odd kernels")
    return conv, tuple(kernels)


def _nl_modules(sd: Mapping[str, Any]) -> dict[tuple[int, int], set[str]]:
    """{(layer, block): names of the non-local block's submodule keys (after 'non_local_block.')}."""
    out: dict[tuple[int, int], set[str]] = {}
    for k in sd:
        m = re.match(r"backbone\.layer(\d+)\.(\d+)\.non_local_block\.(.+)$", k)
        if m:
            out.setdefault((int(m.group(1)), int(m.group(2))), set()).add(m.group(3))
    return out


def _structural_pairwise(parts: set[str]) -> str | None:
    """'gaussian', 'concatenation', or None (embedded_gaussian or dot_product: same parameters)."""
    if any(p.startswith("concat_project.") for p in parts):
        return "concatenation"
    if not any(p.startswith(("theta.", "phi.")) for p in parts):
        return "gaussian"
    return None


_MODE_NAMES = {
    "embedded_gaussian": "embedded_gaussian",
    "gaussian": "gaussian",
    "dot_product": "dot_product",
    "concatenation": "concatenation",
}


def _normalize_mode(name: str) -> str | None:
    return _MODE_NAMES.get(name.lower().replace("-", "_"))


def _meta_texts(meta: Any) -> list[str]:
    """The strings of a checkpoint's ``meta`` (one level of nesting is enough for mmengine/mmcv)."""
    if isinstance(meta, str):
        return [meta]
    texts: list[str] = []
    if isinstance(meta, Mapping):
        for v in meta.values():
            if isinstance(v, str):
                texts.append(v)
            elif isinstance(v, Mapping):
                texts.extend(x for x in v.values() if isinstance(x, str))
    return texts


def mode_from_meta(meta: Any) -> str | None:
    """The NL mode a checkpoint's ``meta`` names, or None.

    Looks for a saved config's ``non_local_cfg`` (``mode='dot_product'``, in ``meta["cfg"]``
    for mmengine, ``meta["config"]`` for mmaction2 0.x), then for a config or experiment name
    with ``nl-<mode>`` / ``nl_<mode>`` in it (hyphens or underscores).
    """
    texts = _meta_texts(meta)
    for text in texts:
        for m in re.finditer(r"non_local_cfg", text):
            window = text[m.end() : m.end() + 400]
            found = re.search(r"""['"]?mode['"]?\s*[=:]\s*['"]([A-Za-z_-]+)['"]""", window)
            if found and _normalize_mode(found.group(1)):
                return _normalize_mode(found.group(1))
    for text in texts:
        found = re.search(r"(?<![a-z])nl[-_](embedded[-_]gaussian|dot[-_]product|concatenation|gaussian)", text, re.I)
        if found:
            return _normalize_mode(found.group(1))
    return None


def _graph_from_meta(meta: Any) -> dict[str, Any]:
    """Graph settings a saved config states explicitly (``conv1_stride_t``, ``pool1_stride_t``, ``use_scale``)."""
    out: dict[str, Any] = {}
    for text in _meta_texts(meta):
        if "backbone" not in text:
            continue
        m = re.search(r"""['"]?conv1_stride_t['"]?\s*[=:]\s*(\d+)""", text)
        if m:
            out["conv1_stride"] = (int(m.group(1)), 2, 2)
        m = re.search(r"""['"]?pool1_stride_t['"]?\s*[=:]\s*(\d+)""", text)
        if m:
            out["pool1_stride"] = (int(m.group(1)), 2, 2)
        m = re.search(r"""['"]?use_scale['"]?\s*[=:]\s*(True|False)""", text)
        if m:
            out["use_scale"] = m.group(1) == "True"
        if out:
            break
    return out


def _caller_level() -> int:
    """``stacklevel`` for a warning raised by this function's caller that points outside this module."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


def _choose_pairwise(structural: str | None, requested: str | None, meta: Any, filename: str | None) -> str:
    if requested is not None:
        req = _normalize_mode(requested)
        if req is None:
            raise _fail(f"unknown pairwise {requested!r}; one of {PAIRWISE}")
        if structural is not None and req != structural:
            raise _fail(f"pairwise={requested!r} was asked for, but the non-local weights are those of {structural!r}")
        if structural is None and req in ("gaussian", "concatenation"):
            raise _fail(
                f"pairwise={requested!r} was asked for, but the non-local blocks have theta/phi convs and no "
                "concat_project: embedded_gaussian or dot_product"
            )
        return req
    if structural is not None:
        return structural
    named = mode_from_meta(meta) or (mode_from_meta(str(filename)) if filename else None)
    if named in ("embedded_gaussian", "dot_product"):
        return named
    if named is not None:
        warnings.warn(
            AmbiguousPairwiseWarning(
                f"the checkpoint's meta names NL mode {named!r}, but its weights are those of embedded_gaussian "
                f"or dot_product; using {DEFAULT_PAIRWISE!r} (pass pairwise= to choose)"
            ),
            stacklevel=_caller_level(),
        )
    else:
        warnings.warn(
            AmbiguousPairwiseWarning(
                "embedded_gaussian and dot_product NL blocks have the same weights and the checkpoint does not "
                f"say which it is; assuming {DEFAULT_PAIRWISE!r} (pass pairwise='dot_product' for a dot-product "
                "model)"
            ),
            stacklevel=_caller_level(),
        )
    return DEFAULT_PAIRWISE


def infer(
    obj: Any, *, filename: str | None = None, pairwise: str | None = None, mode: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(registry architecture name, build overrides) of an mmaction2 checkpoint, from its keys and shapes.

    ``obj``: the loaded checkpoint (``{"state_dict": ..., "meta": ...}``) or a bare state dict.
    ``pairwise`` / ``mode`` (same thing, nlviz's and mmcv's name): the NL pairwise function,
    needed only to tell embedded_gaussian from dot_product (see the module docstring).
    ``filename``: the file's name; mmaction2's names the config (``...-r50-nl-dot-product_...``),
    which tells the pairwise function when neither the argument nor ``meta`` does.
    """
    if pairwise is not None and mode is not None and _normalize_mode(pairwise) != _normalize_mode(mode):
        raise _fail(f"pairwise={pairwise!r} and mode={mode!r} disagree")
    requested = pairwise if pairwise is not None else mode
    sd = _state_dict_of(obj)
    if not sd:
        raise _fail("no state dict found (expected a dict with 'state_dict', or a state dict itself)")
    sd = strip_module_prefix(sd)
    meta = obj.get("meta") if isinstance(obj, Mapping) and "state_dict" in obj else None

    stem = _shape(sd, "backbone.conv1.conv.weight")
    if stem is None or len(stem) != 5 or stem[1] != 3:
        raise _fail(f"backbone.conv1.conv.weight is {stem or 'missing'}; expected a 3-D conv on RGB (C, 3, t, h, w)")
    base = stem[0]
    if any(k % 2 == 0 for k in stem[2:]):
        raise _fail(f"stem kernel {stem[2:]} has an even size; nlviz pads (k - 1) / 2 and needs odd kernels")
    fc = _shape(sd, "cls_head.fc_cls.weight")
    if fc is None or len(fc) != 2:
        raise _fail(
            f"cls_head.fc_cls.weight is {fc or 'missing'}; expected an I3DHead linear classifier (classes, C) "
            "(a backbone-only checkpoint has no classifier to show)"
        )
    stages = _stage_blocks(sd)
    blocks = tuple(len(s) for s in stages)
    inflate_conv, kernels = _temporal_kernels(sd, stages)

    nl_parts = _nl_modules(sd)
    nonlocal_blocks = tuple(tuple(sorted(i for (lay, i) in nl_parts if lay == layer)) for layer in range(1, 5))
    nl_cfg: dict[str, Any] = {}
    chosen = None
    if nl_parts:
        kinds = {key: _structural_pairwise(parts) for key, parts in nl_parts.items()}
        distinct = set(kinds.values())
        if len(distinct) > 1:
            desc = ", ".join(
                f"layer{lay}.{i}: {k or 'embedded_gaussian/dot_product'}" for (lay, i), k in sorted(kinds.items())
            )
            raise _fail(f"non-local blocks of different kinds ({desc}); nlviz uses one pairwise function per network")
        chosen = _choose_pairwise(distinct.pop(), requested, meta, filename)
        all_parts = set().union(*nl_parts.values())
        pooled = any(re.match(r"(phi|g)\.0\.", p) for p in all_parts)
        unpooled = any(re.match(r"(phi|g)\.conv\.", p) for p in all_parts)
        if pooled and unpooled:
            raise _fail("some non-local blocks subsample phi/g (phi.0/g.0) and others do not (phi/g)")
        nl_cfg["subsample"] = not unpooled
        nl_cfg["norm"] = any(p.startswith("conv_out.bn.") for p in all_parts)
        nl_cfg["w_bias"] = "conv_out.conv.bias" in all_parts
    elif requested is not None and _normalize_mode(requested) is None:
        raise _fail(f"unknown pairwise {requested!r}; one of {PAIRWISE}")

    fields: dict[str, Any] = {
        "blocks": blocks,
        "base_channels": base,
        "conv1_kernel": tuple(stem[2:]),
        "temporal_kernels": kernels,
        "inflate_conv": inflate_conv,
        "nonlocal_blocks": nonlocal_blocks,
        "stage_strides": (1, 2, 2, 2),
        "pool2": True,
        "bn_eps": 1e-5,
        **GRAPH_OVERRIDES,
        **_graph_from_meta(meta),
        "num_classes": fc[0],
    }
    if nl_parts:
        fields.update(nl_cfg, pairwise=chosen, dims="spacetime")
    fields.update(SPEC_OVERRIDES)
    return registry_identity(fields)


# --- conversion -----------------------------------------------------------------------------------


def convert(
    obj: Any, *, filename: str | None = None, pairwise: str | None = None, mode: str | None = None
) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """An mmaction2 checkpoint -> (registry architecture name, build overrides, our state dict).

    ``nlviz.models.build(arch, **overrides).load_state_dict(state, strict=True)`` then gives
    mmaction2's network. Every key of the source is used: keys nlviz has no place for, keys our
    model needs but the file lacks, and shapes that differ raise :class:`MMAction2MismatchError`
    (a :class:`~nlviz.checkpoints.common.CheckpointMismatchError`) naming the first few of each
    and their counts; a structure nlviz has no network for raises :class:`MMAction2CheckpointError`
    (a :class:`~nlviz.checkpoints.common.CheckpointError`, hence a ValueError). May warn
    :class:`AmbiguousPairwiseWarning` (see the module docstring); ``pairwise``/``mode`` as for
    :func:`infer`, and so is ``filename``. The tensors are the checkpoint's own (not copies).
    """
    arch, overrides = infer(obj, filename=filename, pairwise=pairwise, mode=mode)
    sd = strip_module_prefix(_state_dict_of(obj))

    state: dict[str, Tensor] = {}
    source_of: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        target = map_key(key) if isinstance(key, str) else None
        if target is None or not isinstance(value, Tensor):
            unknown.append(str(key))
            continue
        if target.endswith("concat_project.weight") and value.dim() == 4:
            value = value.reshape(value.shape[0], value.shape[1], 1)  # mmcv Conv2d (1, 2C', 1, 1) -> Conv1d
        if target in state:
            raise _fail(f"{key} and {source_of[target]} both map to {target}")
        state[target] = value
        source_of[target] = key

    try:
        expected = expected_state(arch, overrides)
    except (ValueError, TypeError) as e:
        raise _fail(f"the inferred network {arch} cannot be built: {e}") from e
    unexpected = [source_of[t] for t in state if t not in expected]
    subsample = overrides.get("subsample", True)
    missing = [source_key(t, subsample=subsample) for t in expected if t not in state]
    shapes = [
        f"{source_of[t]} {tuple(state[t].shape)} (expected {expected[t]})"
        for t in state
        if t in expected and tuple(state[t].shape) != expected[t]
    ]
    problem = count_report([
        ("key(s) nlviz has no place for", unknown),
        ("key(s) the inferred network does not have", unexpected),
        ("key(s) missing from the file", missing),
        ("shape mismatch(es)", shapes),
    ])
    if problem:
        width = overrides.get("base_channels", 64)
        raise MMAction2MismatchError(f"mmaction2 checkpoint: does not convert to {arch} (base_channels={width}): {problem}")
    return arch, overrides, state


def load(obj: Any, *, filename: str | None = None, pairwise: str | None = None, mode: str | None = None):
    """Convert and build: the nlviz model (eval mode) of an mmaction2 checkpoint object."""
    arch, overrides, state = convert(obj, filename=filename, pairwise=pairwise, mode=mode)
    from ..models import build

    model = build(arch, **overrides)
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = [
    "DEFAULT_PAIRWISE",
    "DESCRIPTION",
    "GRAPH_OVERRIDES",
    "KEYS",
    "NAME",
    "SPEC_OVERRIDES",
    "AmbiguousPairwiseWarning",
    "MMAction2CheckpointError",
    "MMAction2MismatchError",
    "convert",
    "detect",
    "infer",
    "load",
    "map_key",
    "mode_from_meta",
    "source_key",
]
