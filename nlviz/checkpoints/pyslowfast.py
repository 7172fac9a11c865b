"""PySlowFast checkpoints (facebookresearch/SlowFast, ``.pyth``) of C2D / I3D / Slow NLN ResNets -> nlviz.

PySlowFast saves ``torch.save({"epoch", "model_state", "optimizer_state", "cfg"})``
(``slowfast/utils/checkpoint.py``, ``save_checkpoint``): ``model_state`` is the state dict of
its ``ResNet`` model (``slowfast/models/video_model_builder.py``) and ``cfg`` the whole
training config as YAML text (``cfg.dump()``). Read with ``torch.load(weights_only=True)``::

    obj = torch.load("I3D_NLN_8x8_R50.pyth", weights_only=True)
    arch, overrides, state = pyslowfast.convert(obj)

Key names (``stem_helper.py``, ``resnet_helper.py``, ``nonlocal_helper.py``, ``head_helper.py``):

    s1.pathway0_stem.conv.weight / .bn.*                       stem.conv.weight / stem.bn.*
    s{s}.pathway0_res{i}.branch2.{a,b,c}.weight                res{s}.{i}.conv_{a,b,c}.weight
    s{s}.pathway0_res{i}.branch2.{a,b,c}_bn.*                  res{s}.{i}.bn_{a,b,c}.*
    s{s}.pathway0_res{i}.branch1.weight / branch1_bn.*         res{s}.{i}.downsample.0.weight / .1.*
    s{s}.pathway0_nonlocal{i}.conv_{theta,phi,g}.{weight,bias} res{s}.{i}.nl.{theta,phi,g}.conv.*
    s{s}.pathway0_nonlocal{i}.conv_out.{weight,bias}           res{s}.{i}.nl.out.*
    s{s}.pathway0_nonlocal{i}.bn.* (``norm.*`` in some versions) res{s}.{i}.nl.bn.*
    head.projection.{weight,bias}                              head.fc.*

Read from the weights: depth, width, the stem's and every ``branch2.a``'s temporal kernel,
non-local placement, a BN after W or not, classes. Read from ``cfg`` (defaults of
``slowfast/config/defaults.py`` for keys it lacks):

- ``MODEL.ARCH``: ``c2d``/``i3d`` have a 2x1x1 max pool after res2 (``_POOL1``), the
  ``*_nopool``, ``slow`` and ``2d`` variants none;
- ``NONLOCAL.INSTANTIATION``: ``softmax`` (logits scaled by dim_inner**-0.5, i.e. 1/sqrt(C'),
  then softmax: our ``embedded_gaussian`` with ``use_scale``) or ``dot_product`` (divided by the
  number of keys);
- ``NONLOCAL.POOL``: ``[1, 2, 2]`` max-pools the *input* of phi and g (``Nonlocal.forward``
  pools ``x`` before ``conv_phi``/``conv_g``: our ``pool_first``), ``[1, 1, 1]`` none;
- ``NONLOCAL.GROUP``: g > 1 folds time into g groups of T/g consecutive steps
  (``ResStage.forward``): our ``nonlocal_time_groups`` = T/g at that stage;
- ``DATA``: ``NUM_FRAMES``, ``SAMPLING_RATE``, ``TRAIN_CROP_SIZE`` (crop), ``TEST_CROP_SIZE``
  (test short side), ``MEAN``/``STD`` on 0-1 (times 255 here), ``REVERSE_INPUT_CHANNEL`` (BGR).

Fixed by PySlowFast's code: conv1 stride 1x2x2 padding (kt//2, 3, 3); pool1 max 1x3x3 stride
1x2x2 *padding 1* (``ResNetBasicStem``: 56x56 after a 224 crop, not Caffe2's 55x55); spatial
stride on the 3x3 conv (``STRIDE_1X1: False``); BN eps 1e-5 everywhere; biases on all four
non-local convs. A file without ``cfg`` gets the NLN configs' values (``i3d``/``c2d`` by the
kernels, ``softmax``, ``[1, 2, 2]``, 8x8 clips) with an :class:`AssumptionWarning`.

PySlowFast's Caffe2-format files (``TRAIN.CHECKPOINT_TYPE: caffe2``, e.g. the model zoo's
``I3D_NLN_8x8_R50.pkl``) are Caffe2 blob pickles: :mod:`nlviz.checkpoints.caffe2` reads them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .common import (AssumptionWarning, CheckpointError, CheckpointMismatchError, KeyScheme, expected_state, labels_for,
                     mismatch_report, registry_identity, resnet_blocks, shape_of, shape_str, strip_module_prefix,
                     temporal_kernels)

NAME = "pyslowfast"
DESCRIPTION = "PySlowFast .pyth checkpoint ({'model_state': ..., 'cfg': YAML}) of a single-pathway ResNet"

BN_EPS = 1e-5  # VideoModelStem / ResBlock / Nonlocal: eps=1e-5
# slowfast/models/video_model_builder.py: _POOL1 (the pool after res2) of the single-pathway archs
POOL2 = {"2d": False, "c2d": True, "c2d_nopool": False, "i3d": True, "i3d_nopool": False, "slow": False}
# slowfast/config/defaults.py, for keys a saved cfg lacks (and the NLN configs' values without one)
DEFAULTS: dict[str, Any] = {
    "MODEL.MODEL_NAME": "ResNet",
    "MODEL.NUM_CLASSES": 400,
    "NONLOCAL.INSTANTIATION": "dot_product",
    "NONLOCAL.POOL": [[[1, 2, 2], [1, 2, 2]]] * 4,
    "NONLOCAL.GROUP": [[1], [1], [1], [1]],
    "NONLOCAL.NORM_TYPE": "batchnorm",
    "DATA.NUM_FRAMES": 8,
    "DATA.SAMPLING_RATE": 8,
    "DATA.TRAIN_CROP_SIZE": 224,
    "DATA.TEST_CROP_SIZE": 256,
    "DATA.MEAN": [0.45, 0.45, 0.45],
    "DATA.STD": [0.225, 0.225, 0.225],
    "DATA.REVERSE_INPUT_CHANNEL": False,
    "DATA.INPUT_CHANNEL_NUM": [3],
    "RESNET.STRIDE_1X1": False,
    "RESNET.NUM_GROUPS": 1,
    "RESNET.TRANS_FUNC": "bottleneck_transform",
    "RESNET.SPATIAL_STRIDES": [[1], [2], [2], [2]],
    "RESNET.SPATIAL_DILATIONS": [[1], [1], [1], [1]],
    "TRAIN.DATASET": "kinetics",
}
NO_CFG = {"NONLOCAL.INSTANTIATION": "softmax"}  # every *_NLN_* config in configs/Kinetics says softmax



class ConfigParseError(ValueError):
    """The embedded YAML config uses something the small reader does not handle."""


# --- the embedded config (YAML written by yacs/fvcore CfgNode.dump) ------------------------------


def _scalar(text: str) -> Any:
    """A YAML 1.1 scalar as PyYAML's SafeLoader resolves it (quoted strings, null, bools, ints, floats)."""
    t = text.strip()
    if t in ("", "~", "null", "Null", "NULL"):
        return None
    if t in ("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"):
        return True
    if t in ("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"):
        return False
    if t.startswith("'"):
        if not t.endswith("'") or len(t) < 2:
            raise ConfigParseError(f"unterminated string {t!r}")
        return t[1:-1].replace("''", "'")
    if t.startswith('"'):
        if not t.endswith('"') or len(t) < 2:
            raise ConfigParseError(f"unterminated string {t!r}")
        return t[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    if t.startswith(("[", "{")):
        return _flow(t)
    if re.fullmatch(r"[-+]?(0|[1-9][0-9_]*)", t):
        return int(t.replace("_", ""))
    if re.fullmatch(r"[-+]?0x[0-9a-fA-F_]+", t):
        return int(t.replace("_", ""), 16)
    if re.fullmatch(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?", t) and t not in (".", "+.", "-."):
        return float(t.replace("_", ""))
    if re.fullmatch(r"[-+]?\.(inf|Inf|INF)", t):
        return float("-inf") if t.startswith("-") else float("inf")
    if re.fullmatch(r"\.(nan|NaN|NAN)", t):
        return float("nan")
    return t


def _flow(text: str) -> Any:
    """A one-line flow collection: [], [1, 2], [[1, 2], [3]], {}, {a: 1}."""
    pos = 0

    def value() -> Any:
        nonlocal pos
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if text[pos] == "[":
            pos += 1
            out = []
            while True:
                while text[pos] == " ":
                    pos += 1
                if text[pos] == "]":
                    pos += 1
                    return out
                out.append(value())
                while text[pos] == " ":
                    pos += 1
                if text[pos] == ",":
                    pos += 1
        if text[pos] == "{":
            pos += 1
            out = {}
            while True:
                while text[pos] == " ":
                    pos += 1
                if text[pos] == "}":
                    pos += 1
                    return out
                key = token(":")
                pos += 1
                out[key] = value()
                while text[pos] == " ":
                    pos += 1
                if text[pos] == ",":
                    pos += 1
        return _scalar(token(",]}"))

    def token(stops: str) -> str:
        nonlocal pos
        start = pos
        quote = text[pos] if text[pos] in "'\"" else None
        if quote:
            pos += 1
            while pos < len(text) and not (text[pos] == quote and text[pos + 1: pos + 2] != quote):
                pos += 2 if text[pos] == quote else 1
            pos += 1
        while pos < len(text) and text[pos] not in stops:
            pos += 1
        return text[start:pos]

    try:
        result = value()
    except IndexError:
        raise ConfigParseError(f"unterminated flow collection {text!r}") from None
    if text[pos:].strip():
        raise ConfigParseError(f"trailing text after {text!r}")
    return result


def parse_cfg_yaml(text: str) -> dict[str, Any]:
    """The training config ``CfgNode.dump()`` wrote, as nested dicts and lists.

    Uses PyYAML's ``safe_load`` when PyYAML is installed, else :func:`parse_block_yaml`.
    Raises :class:`ConfigParseError` when the text cannot be read.
    """
    try:
        import yaml  # optional
    except ImportError:
        return parse_block_yaml(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigParseError(str(e)) from e
    if not isinstance(data, dict):
        raise ConfigParseError("the config is not a mapping")
    return data


def parse_block_yaml(text: str) -> dict[str, Any]:
    """The block-style YAML subset PyYAML's ``safe_dump`` writes for a config: nested mappings,
    block sequences (also at their key's indentation, and ``- - x`` nested), one-line flow
    collections, plain/quoted scalars (folded over several lines too). Data only: no tags, no
    tags. Anchors and aliases (``&id001`` / ``*id001``, which PyYAML writes for a list shared by
    two keys) are resolved. Raises :class:`ConfigParseError` on anything else."""
    lines = []
    blanks: dict[int, int] = {}  # line number -> blank lines just before it (a folded scalar keeps each as a newline)
    for raw in text.splitlines():
        if not raw.strip():
            blanks[len(lines)] = blanks.get(len(lines), 0) + 1
            continue
        if raw.lstrip().startswith("#") or raw.strip() in ("---", "..."):
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigParseError("tab indentation")
        if re.match(r"^\s*(- )*!", raw) or re.search(r":\s+!", raw):
            raise ConfigParseError(f"tags are not read: {raw.strip()!r}")
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    pos = 0
    anchors: dict[str, Any] = {}

    def value_after(rest: str, indent: int, in_mapping: bool) -> Any:
        """The value written after 'key:' or '- ': an alias, an anchored value, a scalar or the block below."""
        nonlocal pos
        anchor = None
        if rest.startswith("*"):
            if rest[1:] not in anchors:
                raise ConfigParseError(f"unknown alias {rest!r}")
            return anchors[rest[1:]]
        if rest.startswith("&"):
            anchor, _, rest = rest[1:].partition(" ")
            rest = rest.strip()
        value = scalar_with_continuation(rest, indent) if rest else nested(indent, in_mapping)
        if anchor:
            anchors[anchor] = value
        return value

    def nested(indent: int, in_mapping: bool) -> Any:
        """The block under a 'key:' or '- ' that has nothing after it (None when there is none)."""
        if pos < len(lines) and lines[pos][0] > indent:
            return block()
        if in_mapping and pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("- "):
            return sequence(indent)  # PyYAML writes a mapping's sequence at the key's indentation
        return None

    def block() -> Any:
        ind, content = lines[pos]
        if content.startswith("- ") or content == "-":
            return sequence(ind)
        return mapping(ind)

    def scalar_with_continuation(rest: str, indent: int) -> Any:
        nonlocal pos
        while pos < len(lines) and lines[pos][0] > indent and not rest.startswith(("[", "{")):
            rest += "\n" * blanks[pos] if pos in blanks else " "  # a scalar folded over several lines
            rest += lines[pos][1]
            pos += 1
        return _scalar(rest)

    def mapping(indent: int) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(lines) and lines[pos][0] == indent:
            content = lines[pos][1]
            m = re.match(r"^('(?:[^']|'')*'|[^\s:'\"\[\]{}#-][^:]*?|-[^\s:][^:]*?):(?:\s+(.*))?$", content)
            if not m:
                raise ConfigParseError(f"expected 'key: value' at {content!r}")
            key = _scalar(m[1]) if m[1].startswith("'") else m[1]
            rest = (m[2] or "").strip()
            pos += 1
            out[key] = value_after(rest, indent, in_mapping=True)
        if pos < len(lines) and lines[pos][0] > indent:
            raise ConfigParseError(f"unexpected indentation at {lines[pos][1]!r}")
        return out

    def sequence(indent: int) -> list[Any]:
        nonlocal pos
        out: list[Any] = []
        while pos < len(lines) and lines[pos][0] == indent and (lines[pos][1].startswith("- ") or lines[pos][1] == "-"):
            content = lines[pos][1]
            rest = content[1:].lstrip(" ")
            inner = indent + len(content) - len(rest)  # the column where the item's own content starts
            if rest.startswith("- ") or re.match(r"^('(?:[^']|'')*'|[^\s'\"\[{][^:]*?):(\s|$)", rest):
                lines[pos] = (inner, rest)  # "- - 1" / "- key: v": the item is a block starting here
                out.append(block())
                continue
            pos += 1
            out.append(value_after(rest, indent, in_mapping=False))
        return out

    if not lines:
        raise ConfigParseError("the config is empty")
    result = block()
    if pos != len(lines):
        raise ConfigParseError(f"unexpected text at {lines[pos][1]!r}")
    if not isinstance(result, dict):
        raise ConfigParseError("the config is not a mapping")
    return result


def _cfg_get(cfg: Mapping[str, Any] | None, dotted: str, default: Any) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


# --- names ----------------------------------------------------------------------------------


def _nl_norm_name(sd: Mapping[str, Any]) -> str:
    """'bn' (``Nonlocal.bn``) or 'norm' (versions that renamed it)."""
    return "norm" if any(re.match(r"^s\d+\.pathway0_nonlocal\d+\.norm\.", k) for k in sd) else "bn"


# slowfast/models/{stem_helper,resnet_helper,nonlocal_helper,head_helper}.py name every key
KEYS = KeyScheme(
    "PySlowFast",
    {
        "stem_conv": "s1.pathway0_stem.conv.weight",
        "stem_bn": "s1.pathway0_stem.bn.{bn}",
        "conv": "s{s}.pathway0_res{i}.branch2.{x}.weight",
        "bn": "s{s}.pathway0_res{i}.branch2.{x}_bn.{bn}",
        "down_conv": "s{s}.pathway0_res{i}.branch1.weight",
        "down_bn": "s{s}.pathway0_res{i}.branch1_bn.{bn}",
        "nl_theta": "s{s}.pathway0_nonlocal{i}.conv_theta.{wb}",
        "nl_kv": "s{s}.pathway0_nonlocal{i}.conv_{kv}.{wb}",
        "nl_out": "s{s}.pathway0_nonlocal{i}.conv_out.{wb}",
        "nl_bn": "s{s}.pathway0_nonlocal{i}.{norm}.{bn}",
        "fc": "head.projection.{wb}",
    },
    extra={"norm": ("bn", "norm")},  # the non-local block's BN: Nonlocal.bn, renamed norm in later versions
)


def map_key(key: str) -> str | None:
    """PySlowFast state-dict key -> ours (None for keys nlviz has no place for)."""
    return KEYS.to_ours(key)


def source_key(key: str, *, nl_norm: str = "bn") -> str:
    """Our state-dict key -> PySlowFast's (``nl_norm``: the non-local BN's attribute, 'bn' or 'norm')."""
    return KEYS.to_source(key, norm=nl_norm)


# --- detection ------------------------------------------------------------------------------


def state_of(obj: Any) -> dict[str, Any] | None:
    """The model state inside a PySlowFast checkpoint (``{"model_state": ...}`` or bare), or None."""
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("model_state")
    sd = inner if isinstance(inner, Mapping) else obj
    return strip_module_prefix(sd)


def detect(obj: Any) -> bool:
    """Whether ``obj`` is a PySlowFast model state: keys ``s1.pathway0_stem.*`` (SlowFast, X3D and
    MViT checkpoints are detected too, and refused by :func:`convert` with a reason). Never raises."""
    try:
        sd = state_of(obj)
        return bool(sd) and any(isinstance(k, str) and k.startswith("s1.pathway0_stem.") for k in sd)
    except Exception:  # noqa: BLE001 - detection never raises, whatever the object
        return False


# --- inference ------------------------------------------------------------------------------


def _fail(msg: str) -> CheckpointError:
    return CheckpointError(f"PySlowFast checkpoint: {msg}")


def read_cfg(obj: Any) -> dict[str, Any] | None:
    """The training config saved in the checkpoint (``cfg``: YAML text or a mapping), or None.

    An unreadable config warns :class:`AssumptionWarning` and counts as absent.
    """
    raw = obj.get("cfg") if isinstance(obj, Mapping) and "model_state" in obj else None
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str):
        try:
            return parse_cfg_yaml(raw)
        except ConfigParseError as e:
            warnings.warn(AssumptionWarning(f"PySlowFast checkpoint: its saved cfg could not be read ({e}); "
                                            "using the NLN configs' values"), stacklevel=3)
    return None


def infer(obj: Any, *, pairwise: str | None = None) -> tuple[str, dict[str, Any]]:
    """(registry architecture name, build overrides) of a PySlowFast checkpoint (see the module docstring).

    ``pairwise``: "embedded_gaussian" (``softmax``) or "dot_product", when the file has no cfg.
    """
    sd = state_of(obj)
    if not sd:
        raise _fail("no model state (expected {'model_state': {...}} or a state dict)")
    cfg = read_cfg(obj)
    defaults = {**DEFAULTS, **(NO_CFG if cfg is None else {})}

    def get(key: str) -> Any:
        return _cfg_get(cfg, key, defaults.get(key))

    keys = [k for k in sd if isinstance(k, str)]
    if any(".pathway1_" in k for k in keys):
        raise _fail("it has a second pathway (pathway1): a SlowFast network, which nlviz does not build "
                    "(nlviz has single-pathway C2D / I3D / Slow ResNets)")
    model_name = get("MODEL.MODEL_NAME")
    if model_name != "ResNet":
        raise _fail(f"MODEL.MODEL_NAME is {model_name!r}; nlviz builds PySlowFast's single-pathway 'ResNet' only")
    arch_name = _cfg_get(cfg, "MODEL.ARCH", None)
    for key, want in (("RESNET.STRIDE_1X1", False), ("RESNET.NUM_GROUPS", 1),
                      ("RESNET.TRANS_FUNC", "bottleneck_transform"), ("NONLOCAL.NORM_TYPE", "batchnorm")):
        if get(key) != want:
            raise _fail(f"{key} is {get(key)!r}; nlviz's ResNet has {want!r}")
    if any(d != 1 for s in get("RESNET.SPATIAL_DILATIONS") for d in s):
        raise _fail(f"RESNET.SPATIAL_DILATIONS is {get('RESNET.SPATIAL_DILATIONS')}; nlviz has no dilation")
    if list(get("DATA.INPUT_CHANNEL_NUM"))[:1] != [3]:
        raise _fail(f"DATA.INPUT_CHANNEL_NUM is {get('DATA.INPUT_CHANNEL_NUM')}; nlviz takes RGB clips")

    stem = shape_of(sd.get("s1.pathway0_stem.conv.weight"))
    if stem is None or len(stem) != 5 or stem[1] != 3:
        raise _fail(f"s1.pathway0_stem.conv.weight is {shape_str(stem) if stem else 'missing'}; "
                    "expected a 3-D conv on RGB (C, 3, t, 7, 7)")
    if any(k % 2 == 0 for k in stem[2:]):
        raise _fail(f"the stem has an even kernel {stem[2:]}")
    head = shape_of(sd.get("head.projection.weight"))
    if head is None or len(head) != 2:
        raise _fail(f"head.projection.weight is {shape_str(head) if head else 'missing'}; expected a linear "
                    "classifier (classes, C) (detection heads and backbone-only files cannot be shown)")

    indices: dict[int, set[int]] = {s: set() for s in range(2, 6)}
    for k in keys:
        m = re.match(r"^s(\d+)\.pathway0_res(\d+)\.", k)
        if m and int(m[1]) in indices:
            indices[int(m[1])].add(int(m[2]))
    blocks = resnet_blocks(indices, "PySlowFast")
    kernels = temporal_kernels(blocks, lambda s, i: sd.get(f"s{s}.pathway0_res{i}.branch2.a.weight"))
    placement = tuple(
        tuple(sorted({int(m[2]) for k in keys if (m := re.match(rf"^s({s})\.pathway0_nonlocal(\d+)\.", k))
                      and int(m[2]) < blocks[s - 2]}))
        for s in range(2, 6)
    )
    has_nl = any(placement)
    nl_norm = any(re.match(r"^s\d+\.pathway0_nonlocal\d+\.(bn|norm)\.weight$", k) for k in keys)

    assumed: list[str] = []
    assumed_fields: list[str] = []
    if arch_name is None:
        arch_name = "i3d" if stem[2] > 1 or any(t > 1 for s in kernels for t in s) else "c2d"
        assumed.append(f"MODEL.ARCH {arch_name!r} (a 2x1x1 pool after res2)")
        assumed_fields.append("pool2")
    if arch_name not in POOL2:
        raise _fail(f"MODEL.ARCH is {arch_name!r}; nlviz builds {sorted(POOL2)}")
    pool2 = POOL2[arch_name]

    # non-local semantics
    instantiation = get("NONLOCAL.INSTANTIATION")
    if cfg is None and pairwise is not None:
        instantiation = {"embedded_gaussian": "softmax", "dot_product": "dot_product"}.get(pairwise, pairwise)
    elif cfg is None and has_nl:
        assumed.append("NONLOCAL.INSTANTIATION 'softmax'")
        assumed_fields.append("pairwise")
    if instantiation not in ("softmax", "dot_product"):
        raise _fail(f"NONLOCAL.INSTANTIATION is {instantiation!r}; PySlowFast has 'softmax' and 'dot_product'")
    chosen = "embedded_gaussian" if instantiation == "softmax" else "dot_product"
    if pairwise is not None and pairwise != chosen:
        raise _fail(f"pairwise={pairwise!r} but the saved cfg says NONLOCAL.INSTANTIATION {instantiation!r}")
    pools = {tuple(get("NONLOCAL.POOL")[s - 2][0]) for s in range(2, 6) if placement[s - 2]}
    if len(pools) > 1 or (pools and next(iter(pools)) not in ((1, 2, 2), (1, 1, 1))):
        raise _fail(f"NONLOCAL.POOL is {get('NONLOCAL.POOL')}; nlviz's non-local blocks pool 1x2x2 or not at all")
    subsample = not pools or next(iter(pools)) == (1, 2, 2)
    frames, rate = int(get("DATA.NUM_FRAMES")), int(get("DATA.SAMPLING_RATE"))
    if cfg is None:
        assumed.append(f"{frames}x{rate} clips")
        assumed_fields += ["num_frames", "stride"]
    groups = []
    for s in range(2, 6):
        g = int(get("NONLOCAL.GROUP")[s - 2][0])
        t = frames // (2 if pool2 and s > 2 else 1)  # conv1 and pool1 keep time; pool2 halves it
        if g > 1 and placement[s - 2]:
            if t % g:
                raise _fail(f"NONLOCAL.GROUP {g} for res{s} does not divide its {t} time steps")
            groups.append(t // g)
        else:
            groups.append(1)
    strides = tuple(int(s[0]) for s in get("RESNET.SPATIAL_STRIDES"))
    if assumed:
        warnings.warn(
            AssumptionWarning(
                "PySlowFast checkpoint without a saved cfg: assumed " + ", ".join(assumed)
                + ". Pass pairwise / pool2 / num_frames / stride to change it.",
                fields=assumed_fields,
            ),
            stacklevel=3,
        )

    mean = tuple(round(float(v) * 255, 6) for v in get("DATA.MEAN"))
    std = tuple(round(float(v) * 255, 6) for v in get("DATA.STD"))
    num_classes = head[0]
    fields: dict[str, Any] = {
        "blocks": blocks,
        "base_channels": stem[0],
        "conv1_kernel": tuple(stem[2:]),
        "conv1_stride": (1, 2, 2),
        "pool1_kernel": (1, 3, 3),
        "pool1_stride": (1, 2, 2),
        "pool1_padding": (0, 1, 1),
        "pool2": pool2,
        "temporal_kernels": tuple(kernels),
        "inflate_conv": "a",
        "stage_strides": strides,
        "nonlocal_blocks": placement,
        "nonlocal_time_groups": tuple(groups),
        "bn_eps": BN_EPS,
        "num_classes": num_classes,
        "pairwise": chosen,
        "dims": "spacetime",
        "subsample": subsample,
        "pool_first": True,
        "use_scale": True,
        "norm": nl_norm,
        "w_bias": True,
        "num_frames": frames,
        "stride": rate,
        "short_side": int(get("DATA.TEST_CROP_SIZE")),
        "crop_size": int(get("DATA.TRAIN_CROP_SIZE")),
        "mean": mean if len(mean) == 3 else (mean[0],) * 3,
        "std": std if len(std) == 3 else (std[0],) * 3,
        "channel_order": "BGR" if get("DATA.REVERSE_INPUT_CHANNEL") else "RGB",
        "labels": labels_for(num_classes, str(get("TRAIN.DATASET"))),
    }
    return registry_identity(fields)


# --- conversion -----------------------------------------------------------------------------


def convert(obj: Any, *, pairwise: str | None = None) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """A PySlowFast checkpoint -> (registry architecture name, build overrides, our state dict).

    Every key of ``model_state`` is used; keys nlviz has no place for, keys our model needs but
    the file lacks, and shapes that differ raise :class:`CheckpointMismatchError` naming the first
    few of each and their counts. ``num_batches_tracked`` counts absent from the file become 0.
    """
    arch, overrides = infer(obj, pairwise=pairwise)
    sd = state_of(obj)
    nl_norm = _nl_norm_name(sd)
    expected = expected_state(arch, overrides)
    state: dict[str, Tensor] = {}
    used: set[str] = set()
    missing, shapes = [], []
    for key, shape in expected.items():
        src = source_key(key, nl_norm=nl_norm)
        value = sd.get(src)
        if value is None:
            if key.endswith("num_batches_tracked"):
                state[key] = torch.zeros((), dtype=torch.int64)
            else:
                missing.append(src)
            continue
        used.add(src)
        if not isinstance(value, Tensor):
            raise _fail(f"{src} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            shapes.append(f"{src}: file {shape_str(value.shape)} vs model {shape_str(shape)} ({key})")
            continue
        state[key] = value.detach().clone() if key.endswith("num_batches_tracked") else value.detach().float().clone()
    unexpected = [str(k) for k in sd if k not in used]
    problem = mismatch_report(missing, unexpected, shapes)
    if problem:
        raise CheckpointMismatchError(f"PySlowFast checkpoint does not fit {arch}: {problem}")
    return arch, overrides, state


__all__ = [
    "BN_EPS",
    "DEFAULTS",
    "DESCRIPTION",
    "KEYS",
    "NAME",
    "POOL2",
    "ConfigParseError",
    "convert",
    "detect",
    "infer",
    "map_key",
    "parse_cfg_yaml",
    "read_cfg",
    "source_key",
    "state_of",
]
