"""What every checkpoint format shares: the error family, assumption warnings, and helpers.

Errors: every problem with a checkpoint raises a :class:`CheckpointError` (a ``ValueError``)
or one of its subclasses, with a message that says what is wrong and, where it can, what to do:

- :class:`UnsafeCheckpointError`: the file asks to run code (a pickle global outside the
  allowlist of :mod:`nlviz.checkpoints.safe_pickle`, or one torch's ``weights_only`` refuses);
- :class:`UnknownFormatError`: no format module recognises the file;
- :class:`CheckpointMismatchError`: the file does not fit the network it describes (or the one
  the caller asked for): missing and unexpected weights, shape mismatches, the first few of
  each and their counts. A checkpoint is never loaded partially.

Warnings: :class:`AssumptionWarning` when the file does not say something the model needs
(e.g. a Caffe2 pickle holds no clip length) and a documented default was used. Its ``fields``
name the build arguments that were assumed, so a caller that supplies them (the zoo does)
can drop the warning.

Names: :data:`OUR_KEYS` spells every state-dict key of our ResNet3d once; a format's
:class:`KeyScheme` spells the same parts in its own names, and maps keys both ways from that
one table (Caffe2 blobs, PySlowFast and mmaction2 state dicts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..models.resnet3d import DEPTH_BLOCKS, NL_PLACEMENT
from ..spec import ClipSpec


class CheckpointError(ValueError):
    """A checkpoint nlviz cannot load (and why)."""


class UnsafeCheckpointError(CheckpointError):
    """The file would run code when loaded; nothing was executed."""


class UnknownFormatError(CheckpointError):
    """No checkpoint format module recognises the file."""


class CheckpointMismatchError(CheckpointError):
    """The weights do not fit the network: missing/unexpected weights or shape mismatches."""


class AssumptionWarning(UserWarning):
    """The checkpoint does not say something the model needs; a documented default was used.

    ``fields``: the build arguments (``nlviz.models.build`` overrides) that were assumed.
    """

    def __init__(self, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.fields = frozenset(fields)


def listing(items: list[str], limit: int = 5) -> str:
    """'a, b, c' or 'a, b, c, d, e, ... (12 in all)'."""
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


def count_report(groups: Iterable[tuple[str, Sequence[str]]], limit: int = 5) -> str:
    """'3 missing: a, b, c; 1 unexpected: d' for the non-empty (label, items) groups, in order
    ('' when all are empty). ``{es}`` in a label is 'es' when it counts more than one."""
    parts = []
    for label, items in groups:
        if items:
            parts.append(f"{len(items)} {label.format(es='es' if len(items) > 1 else '')}: {listing(items, limit)}")
    return "; ".join(parts)


def mismatch_report(
    missing: list[str], unexpected: list[str], shapes: list[str], limit: int = 5
) -> str:
    """'3 missing: ...; 1 unexpected: ...; 2 shape mismatches: ...' ('' when all three are empty)."""
    return count_report([("missing", missing), ("unexpected", unexpected), ("shape mismatch{es}", shapes)], limit)


def shape_str(shape: Iterable[int]) -> str:
    return str(tuple(int(s) for s in shape))


def to_tensor(value: Any, name: str) -> Tensor:
    """A float32 CPU tensor (a copy) of a numeric numpy array or tensor; CheckpointError otherwise."""
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.dtype in (torch.int64, torch.int32):
            return value.detach().to("cpu").clone()
        raise CheckpointError(f"{name} has dtype {value.dtype}; expected numbers")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise CheckpointError(f"{name} is an array of {value.dtype}; expected numbers")
        return torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
    raise CheckpointError(f"{name} is a {type(value).__name__}; expected an array")


def shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of an array or tensor, None for anything else."""
    if isinstance(value, (np.ndarray, Tensor)):
        return tuple(int(s) for s in value.shape)
    return None


# --- names: our keys, and a format's spelling of them --------------------------------------------

BN_PARAMS: tuple[str, ...] = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# the fields of our keys and the values each takes (None: a block index, any whole number)
_OUR_FIELDS: dict[str, tuple[str, ...] | None] = {
    "s": ("2", "3", "4", "5"),  # stage res2..res5
    "i": None,  # residual block within the stage
    "x": ("a", "b", "c"),  # the bottleneck's conv: 1x1 (or 3x1x1), 3x3, 1x1
    "bn": BN_PARAMS,
    "wb": ("weight", "bias"),
    "kv": ("phi", "g"),  # the non-local block's key and value projections (pooled when it subsamples)
}

OUR_KEYS: dict[str, str] = {  # part -> every state-dict key of :class:`~nlviz.models.ResNet3d` it covers
    "stem_conv": "stem.conv.weight",
    "stem_bn": "stem.bn.{bn}",
    "conv": "res{s}.{i}.conv_{x}.weight",
    "bn": "res{s}.{i}.bn_{x}.{bn}",
    "down_conv": "res{s}.{i}.downsample.0.weight",
    "down_bn": "res{s}.{i}.downsample.1.{bn}",
    "nl_theta": "res{s}.{i}.nl.theta.conv.{wb}",
    "nl_kv": "res{s}.{i}.nl.{kv}.conv.{wb}",
    "nl_concat": "res{s}.{i}.nl.concat_project.weight",
    "nl_out": "res{s}.{i}.nl.out.{wb}",
    "nl_bn": "res{s}.{i}.nl.bn.{bn}",
    "fc": "head.fc.{wb}",
}


def _pattern(template: str, fields: Mapping[str, Iterable[str] | None]) -> re.Pattern:
    """A regex matching ``template`` with each ``{field}`` one of its values (None: digits)."""
    parts, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        values = fields[m[1]]
        body = r"\d+" if values is None else "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        parts += [re.escape(template[pos:m.start()]), f"(?P<{m[1]}>{body})"]
        pos = m.end()
    return re.compile("".join(parts) + re.escape(template[pos:]))


class KeyScheme:
    """How one checkpoint format names our state-dict keys: both directions from one table.

    ``names``: part of :data:`OUR_KEYS` -> the format's name for it, a template over the same
    fields (a part left out has no name in the format). ``values``: field -> {our value: the
    format's}, where it spells values otherwise (Caffe2's BN suffixes ``s``/``b``/``rm``/``riv``,
    mmaction2's ``layer1`` for res2); a value missing from such a map has no name in the format.
    ``extra``: fields only the format's names have -> their spellings, the first the default
    (PySlowFast's non-local ``bn`` or ``norm``); :meth:`to_source` takes them as keywords and
    :meth:`to_ours` accepts every spelling.
    """

    def __init__(
        self,
        source: str,
        names: Mapping[str, str],
        *,
        values: Mapping[str, Mapping[str, str]] | None = None,
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.source = source
        self.names = dict(names)
        self.values = {f: dict(m) for f, m in (values or {}).items()}
        self.extra = {f: tuple(v) for f, v in (extra or {}).items()}
        self._inverse = {f: {v: k for k, v in m.items()} for f, m in self.values.items()}
        theirs = {f: (list(self.values[f].values()) if f in self.values else v) for f, v in _OUR_FIELDS.items()}
        theirs.update(self.extra)
        self._ours = {part: _pattern(OUR_KEYS[part], _OUR_FIELDS) for part in self.names}
        self._theirs = {part: _pattern(name, theirs) for part, name in self.names.items()}

    def to_ours(self, name: str) -> str | None:
        """Our state-dict key for the format's ``name``; None for a name nlviz has no place for."""
        for part, pattern in self._theirs.items():
            m = pattern.fullmatch(name)
            if m:
                fields = {f: self._inverse.get(f, {}).get(v, v) for f, v in m.groupdict().items() if f not in self.extra}
                if "i" in fields:
                    fields["i"] = str(int(fields["i"]))
                return OUR_KEYS[part].format(**fields)
        return None

    def to_source(self, key: str, **extra: str) -> str | None:
        """The format's name for our ``key`` (``extra``: its own fields, e.g. ``norm="norm"``);
        None when the format has no such value (Caffe2 keeps no BN batch count). KeyError for
        a key of no part the format names."""
        for part, pattern in self._ours.items():
            m = pattern.fullmatch(key)
            if m is None:
                continue
            fields = m.groupdict()
            for f, v in fields.items():
                if f in self.values:
                    if v not in self.values[f]:
                        return None
                    fields[f] = self.values[f][v]
            chosen = {f: extra.get(f, spellings[0]) for f, spellings in self.extra.items()}
            return self.names[part].format(**fields, **chosen)
        raise KeyError(f"no {self.source} name for {key!r}")


def strip_module_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel puts on every key."""
    keys = list(sd)
    if keys and all(isinstance(k, str) and k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


# --- structure shared by the ResNet formats -------------------------------------------------------


def resnet_blocks(indices: Mapping[int, Iterable[int]], source: str) -> tuple[int, int, int, int]:
    """Residual blocks per stage res2..res5: the highest block index seen in each stage, + 1.

    ``indices``: stage (2..5) -> the block indices its names hold. CheckpointMismatchError,
    naming ``source``, unless that is a ResNet depth nlviz builds (:data:`DEPTH_BLOCKS`).
    """
    seen = {s: set(indices.get(s, ())) for s in range(2, 6)}
    blocks = tuple(max(seen[s]) + 1 if seen[s] else 0 for s in range(2, 6))
    if blocks not in {tuple(b) for b in DEPTH_BLOCKS.values()}:
        known = ", ".join(f"ResNet-{d} {tuple(b)}" for d, b in DEPTH_BLOCKS.items())
        raise CheckpointMismatchError(
            f"{source} checkpoint: residual blocks per stage res2..res5 are {blocks} (the highest block index "
            f"in each, + 1); {source}'s ResNets are {known}"
        )
    return blocks


def temporal_kernels(
    blocks: Sequence[int], first_conv: Callable[[int, int], Any]
) -> tuple[tuple[int, ...], ...]:
    """The temporal kernel of every bottleneck, per stage: the time size of its first conv's
    weight, ``first_conv(stage, block)`` (a 5-D array or tensor; anything else counts as 1)."""
    kernels = []
    for s, n in zip(range(2, 6), blocks):
        shapes = [shape_of(first_conv(s, i)) for i in range(n)]
        kernels.append(tuple(shape[2] if shape is not None and len(shape) == 5 else 1 for shape in shapes))
    return tuple(kernels)


def expected_state(arch: str, overrides: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict ``build(arch, **overrides)`` has (built on the meta device)."""
    with torch.device("meta"):
        from ..models import build

        model = build(arch, **overrides)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def registry_identity(fields: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(registry architecture name, build overrides) that build the network ``fields`` describe.

    ``fields`` holds ResNet3dConfig / NonLocalConfig / ClipSpec values. The name is the closest
    registry entry (``{c2d|i3d}_nl{0|5|10}_r{50|101}``); every config field that differs from it,
    and every ClipSpec field, goes into the overrides, so ``save_weights`` can round-trip the model.
    """
    blocks = tuple(fields.get("blocks", DEPTH_BLOCKS[50]))
    depth = next((d for d, b in DEPTH_BLOCKS.items() if tuple(b) == blocks), 50)
    kernels = fields.get("temporal_kernels", ())
    conv1 = tuple(fields.get("conv1_kernel", (1, 7, 7)))
    kind = "i3d" if conv1[0] > 1 or any(t > 1 for s in kernels for t in s) else "c2d"
    placement = tuple(tuple(s) for s in fields.get("nonlocal_blocks", ((), (), (), ())))
    n_nl = 0
    if any(placement):
        n_nl = next((n for n, p in NL_PLACEMENT.items() if n and (*p, ()) == placement), 5)
    arch = f"{kind}_nl{n_nl}_r{depth}"
    from ..models import get_config

    cfg, spec = get_config(arch)
    overrides: dict[str, Any] = {}
    for key, value in fields.items():
        if hasattr(spec, key):
            overrides[key] = value  # the clip is always spelled out
        elif hasattr(cfg, key):  # (bn_eps is also NonLocalConfig's: build applies it to both)
            if getattr(cfg, key) != value or key == "num_classes":
                overrides[key] = value
        elif hasattr(cfg.nonlocal_cfg, key):
            if any(placement):  # the non-local semantics are spelled out; without blocks, moot
                overrides[key] = value
        else:
            raise KeyError(f"{key!r} is not a field of ResNet3dConfig, NonLocalConfig or ClipSpec")
    return arch, overrides


def spec_fields(spec: ClipSpec) -> dict[str, Any]:
    """A ClipSpec as build overrides (everything but ``extra``)."""
    return {k: getattr(spec, k) for k in ("num_frames", "stride", "short_side", "crop_size", "mean", "std",
                                          "channel_order", "labels")}


def labels_for(num_classes: int, dataset: str = "kinetics") -> str | None:
    """The label-set name of a classifier: 'kinetics400' for 400 Kinetics classes, else None."""
    return "kinetics400" if num_classes == 400 and dataset.lower().startswith("kinetics") else None


__all__ = [
    "BN_PARAMS",
    "OUR_KEYS",
    "AssumptionWarning",
    "CheckpointError",
    "CheckpointMismatchError",
    "KeyScheme",
    "UnknownFormatError",
    "UnsafeCheckpointError",
    "count_report",
    "expected_state",
    "listing",
    "mismatch_report",
    "registry_identity",
    "resnet_blocks",
    "shape_of",
    "spec_fields",
    "strip_module_prefix",
    "temporal_kernels",
    "to_tensor",
]
