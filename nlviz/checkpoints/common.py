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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..models.registry import DEPTH_BLOCKS, NL_PLACEMENT, build, get_config
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


def mismatch_report(
    missing: list[str], unexpected: list[str], shapes: list[str], limit: int = 5
) -> str:
    """'3 missing: ...; 1 unexpected: ...; 2 shape mismatches: ...' ('' when all three are empty)."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {listing(missing, limit)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {listing(unexpected, limit)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch{'es' if len(shapes) > 1 else ''}: {listing(shapes, limit)}")
    return "; ".join(parts)


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


def expected_state(arch: str, overrides: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict ``build(arch, **overrides)`` has (built on the meta device)."""
    with torch.device("meta"):
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
    "AssumptionWarning",
    "CheckpointError",
    "CheckpointMismatchError",
    "UnknownFormatError",
    "UnsafeCheckpointError",
    "expected_state",
    "listing",
    "mismatch_report",
    "registry_identity",
    "shape_of",
    "spec_fields",
    "to_tensor",
]
