"""Load the published non-local checkpoints into nlviz's networks, whatever framework wrote them.

    from nlviz.checkpoints import load_model
    lm = load_file("i3d_nonlocal_8x8_IN_pretrain_400k.pkl")     # a LoadedModel: lm.model, lm.spec, ...

Reading a file (:func:`read_checkpoint`) never runs code from it: torch files go through
``torch.load(weights_only=True)``, pickles (the Caffe2 release) through the allowlist
unpickler of :mod:`nlviz.checkpoints.safe_pickle`, nlviz's own ``.safetensors`` through
:func:`nlviz.weights.load_weights`. The loaded object is handed to the first format module
whose ``detect`` accepts it; its ``convert`` names the network and maps the weights;
:func:`convert_checkpoint` checks them against what the caller expects (a zoo entry's
architecture, clip and graph) and :func:`load_state` builds that network and loads them strictly.

Formats (one module each; the registration point is :data:`FORMAT_MODULES`):

- :mod:`~nlviz.checkpoints.caffe2`: the official Caffe2 release (video-nonlocal-net),
  and PySlowFast's Caffe2-format files;
- :mod:`~nlviz.checkpoints.pyslowfast`: PySlowFast's own ``.pyth`` files;
- :mod:`~nlviz.checkpoints.mmaction2`: OpenMMLab mmaction2 ``.pth`` files.

Adding a format: write ``nlviz/checkpoints/<name>.py`` with

``NAME: str``
    the format's name, shown to users (``nlviz info``) and in errors.
``detect(obj) -> bool``
    whether the loaded object (a dict of arrays/tensors, as :func:`read_checkpoint` returns
    it) is of this format. Cheap, and never raises.
``convert(obj, **options) -> (arch, overrides, state)``
    ``arch`` a registry architecture name (:func:`nlviz.models.list_models`), ``overrides``
    the keyword arguments that make ``nlviz.models.build(arch, **overrides)`` the publisher's
    network *and clip* (ResNet3dConfig, NonLocalConfig and ClipSpec fields: strides, pool
    order, scale, BN eps, frames, sampling rate, crop, mean/std, channel order, label set),
    ``state`` our state dict for it (every parameter and buffer, ``num_batches_tracked``
    included). Use every source tensor or say why not: raise a :class:`CheckpointError`
    (:class:`CheckpointMismatchError` for missing/unexpected/misshapen weights, naming the
    first few and the counts) rather than load part of a file. ``options`` are keyword
    arguments the module documents; :func:`load_state` passes those of ``filename`` (the
    file's name) and ``pairwise`` (the caller's choice of pairwise function) that the
    signature names. Warn :class:`AssumptionWarning` (with ``fields``) for every build
    argument guessed rather than read. Errors should subclass :class:`CheckpointError`; any
    other ``ValueError``/``KeyError``/``TypeError`` from ``convert`` reaches callers wrapped
    in one, so the app catches a single family.

then add its module path to :data:`FORMAT_MODULES`. Detection goes in list order, so a
format whose ``detect`` is loose goes last.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import fields as dc_fields
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from . import safe_pickle
from .common import (
    AssumptionWarning,
    CheckpointError,
    CheckpointMismatchError,
    UnknownFormatError,
    UnsafeCheckpointError,
    mismatch_report,
    shape_str,
)

# --- registration point: checkpoint formats, tried in this order ------------------------------
FORMAT_MODULES: list[str] = [
    "nlviz.checkpoints.caffe2",  # official Caffe2 release (+ PySlowFast's Caffe2-format .pkl)
    "nlviz.checkpoints.pyslowfast",  # PySlowFast native .pyth ({"model_state": ..., "cfg": ...})
    "nlviz.checkpoints.mmaction2",  # OpenMMLab mmaction2 .pth ({"state_dict": ..., "meta": ...})
]

# what the weights themselves fix: a caller's value for one of these must agree with the file
STRUCTURAL = ("blocks", "base_channels", "conv1_kernel", "temporal_kernels", "inflate_conv",
              "nonlocal_blocks", "num_classes", "norm", "w_bias")

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a pre-zip torch.save file


def formats() -> list[ModuleType]:
    """The format modules of :data:`FORMAT_MODULES`, imported (in detection order)."""
    return [importlib.import_module(name) for name in FORMAT_MODULES]


# --- reading files ----------------------------------------------------------------------------


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < (1 << 32) and head[8:9] == b"{"


def _numpy_safe_globals() -> list[Any]:
    """numpy's array/scalar reconstruction, under numpy 2's and numpy 1's module names, for torch.load.

    Training frameworks leave numpy values in a checkpoint's metadata (a best score, a seed);
    these are the same globals :mod:`nlviz.checkpoints.safe_pickle` allows, and build only data.
    """
    import numpy as np

    multiarray = safe_pickle.numpy_core("multiarray")
    allowed: list[Any] = [np.ndarray, np.dtype]
    for name in ("_reconstruct", "scalar"):
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed.append((getattr(multiarray, name), f"{module}.{name}"))
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtype classes such as numpy.dtypes.Float64DType
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise UnsafeCheckpointError(
            f"refused to load {path}: torch.load(weights_only=True) found something other than tensors and "
            f"plain data ({detail}); nothing was executed. nlviz never unpickles code."
        ) from e
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable torch file: {e}") from e


def read_checkpoint(path: str | Path) -> Any:
    """The object stored in a checkpoint file, read as data only (see the module docstring).

    Raises :class:`UnsafeCheckpointError` for a file that would run code, :class:`CheckpointError`
    for a file that is neither a torch file nor a pickle, OSError when it cannot be opened.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _torch_load(path)
    with open(path, "rb") as f:
        try:
            obj = safe_pickle.load(f, source=str(path))
        except UnsafeCheckpointError as e:
            if "persistent id" in str(e):  # a legacy (pre-zip) torch file
                return _torch_load(path)
            raise
        except CheckpointError as e:
            raise UnknownFormatError(f"{path} is neither a torch checkpoint nor a pickle ({e})") from e
    if isinstance(obj, int) and obj == _TORCH_LEGACY_MAGIC:
        return _torch_load(path)
    return obj


# --- detection and conversion ------------------------------------------------------------------


def _describe_object(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:6]]
        return f"a dict with keys {', '.join(keys)}{', ...' if len(obj) > 6 else ''}" if keys else "an empty dict"
    return f"a {type(obj).__name__}"


def detect_format(obj: Any) -> ModuleType:
    """The first format module (of :data:`FORMAT_MODULES`) whose ``detect`` accepts ``obj``."""
    mods = formats()
    for mod in mods:
        if mod.detect(obj):
            return mod
    known = ", ".join(getattr(m, "NAME", m.__name__) for m in mods)
    raise UnknownFormatError(
        f"not a checkpoint of a known format ({known}): the file holds {_describe_object(obj)}"
    )


def _options_for(fn: Any, options: dict[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    accepted = {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in options.items() if k in accepted and v is not None}


def _known_fields() -> tuple[set[str], set[str], set[str]]:
    from ..models.resnet3d import NonLocalConfig, ResNet3dConfig
    from ..spec import ClipSpec

    return ({f.name for f in dc_fields(ResNet3dConfig)}, {f.name for f in dc_fields(NonLocalConfig)},
            {f.name for f in dc_fields(ClipSpec)} - {"extra"})


def _requested(arch: str | None, overrides: Mapping[str, Any] | None, spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the caller's explicit build arguments, the hinted architecture's values of the structural fields)."""
    cfg_f, nl_f, spec_f = _known_fields()
    explicit: dict[str, Any] = {}
    if spec is not None:
        explicit.update({k: getattr(spec, k) for k in spec_f})
    explicit.update(overrides or {})
    unknown = sorted(set(explicit) - cfg_f - nl_f - spec_f)
    if unknown:
        raise CheckpointError(f"unknown build argument(s) {unknown}; see nlviz.models.build")
    implied: dict[str, Any] = {}
    if arch is not None:
        from ..models import get_config

        try:
            cfg, _ = get_config(arch)
        except KeyError as e:
            raise CheckpointError(e.args[0]) from None
        for k in STRUCTURAL:
            implied[k] = getattr(cfg.nonlocal_cfg if k in nl_f and k not in cfg_f else cfg, k)
    return explicit, implied


def _same(a: Any, b: Any) -> bool:
    def norm(x: Any) -> Any:
        return tuple(norm(v) for v in x) if isinstance(x, (list, tuple)) else x

    return norm(a) == norm(b)


def convert_checkpoint(
    obj: Any,
    *,
    arch: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    spec: Any = None,
    filename: str | None = None,
    pairwise: str | None = None,
) -> tuple[str, str, dict[str, Any], dict[str, torch.Tensor]]:
    """(format name, registry arch, build overrides, our state dict) of a loaded checkpoint object.

    ``arch``, ``overrides``, ``spec`` (a ClipSpec) describe what the caller expects (the zoo's
    entry). Fields the weights fix (:data:`STRUCTURAL`: depth, width, kernels, non-local
    placement, classes, ...) must agree with the file, else :class:`CheckpointMismatchError`;
    everything else the caller gives (strides, pooling, scale, the clip) replaces what the
    format module read or assumed.
    """
    mod = detect_format(obj)
    name = getattr(mod, "NAME", mod.__name__.rsplit(".", 1)[-1])
    explicit, implied = _requested(arch, overrides, spec)
    pairwise = pairwise or explicit.get("pairwise")
    options = _options_for(mod.convert, {"filename": filename, "pairwise": pairwise})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got_arch, got_overrides, state = mod.convert(obj, **options)
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError) as e:  # a format module's own error class
            raise CheckpointError(f"{name} checkpoint: {e}") from e
    settled = set(explicit) | ({"pairwise"} if pairwise else set())
    for w in caught:  # re-issue what the caller did not settle
        covered = getattr(w.message, "fields", None)
        if covered and covered <= settled:
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    from ..models import get_config

    cfg, _ = get_config(got_arch)

    def actual(k: str) -> Any:
        if k in got_overrides:
            return got_overrides[k]
        return getattr(cfg.nonlocal_cfg if k in ("norm", "w_bias") else cfg, k)

    conflicts = []
    has_nl = any(actual("nonlocal_blocks"))
    for k in STRUCTURAL:
        if k in ("norm", "w_bias") and not has_nl:
            continue
        want = explicit.get(k, implied.get(k))
        if (k in explicit or k in implied) and not _same(want, actual(k)):
            conflicts.append(f"{k}: file {actual(k)} vs expected {want}")
    if conflicts:
        expected = f"{arch}" + (" with the given overrides" if overrides else "") if arch else "the given overrides"
        raise CheckpointMismatchError(
            f"the {name} checkpoint is not {expected}: " + "; ".join(conflicts)
        )
    final = dict(got_overrides)
    final.update({k: v for k, v in explicit.items() if k not in STRUCTURAL})
    return name, got_arch, final, state


def load_state(
    obj: Any,
    *,
    arch: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    spec: Any = None,
    filename: str | None = None,
    pairwise: str | None = None,
    with_format: bool = False,
) -> nn.Module:
    """The nlviz model (eval mode) of a loaded checkpoint object; arguments as for :func:`convert_checkpoint`
    (``with_format``: return (model, the format's name)).

    Loading is strict: a missing or unexpected weight, or a shape mismatch, raises
    :class:`CheckpointMismatchError` listing the first few and the counts. The model carries
    ``arch`` and ``build_overrides`` (so :func:`nlviz.weights.save_weights` can write it) and
    ``spec`` (the publisher's clip).
    """
    from ..models import build

    fmt, got_arch, final, state = convert_checkpoint(obj, arch=arch, overrides=overrides, spec=spec, filename=filename,
                                          pairwise=pairwise)
    try:
        model = build(got_arch, **final)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot build {got_arch} with {final}: {e}") from e
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {shape_str(state[k].shape)} vs model {shape_str(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problem = mismatch_report(missing, unexpected, shapes)
    if problem:
        raise CheckpointMismatchError(f"the {fmt} checkpoint does not fit {got_arch}: {problem}")
    model.load_state_dict(state, strict=True)
    return (model.eval(), fmt) if with_format else model.eval()


def load_file(
    path: str | Path,
    *,
    arch: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    spec: Any = None,
    entry: Any = None,
    pairwise: str | None = None,
):
    """The loaded model (:class:`nlviz.loaded.LoadedModel`, eval mode) of a checkpoint file.

    The format is detected from the file's content (see :data:`FORMAT_MODULES`); nlviz's own
    ``.safetensors`` files go to :func:`nlviz.weights.load_weights`. ``arch``, ``overrides``,
    ``spec`` and ``pairwise`` are as for :func:`convert_checkpoint`; ``entry`` (a zoo entry)
    supplies the first three when they are not given. Names are not resolved here: that is
    :func:`nlviz.resolve.load`'s, which calls this for files.
    """
    from ..loaded import LoadedModel, Provenance

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if entry is not None:
        arch = arch or entry.arch
        overrides = entry.build_kwargs() if overrides is None else overrides
        spec = entry.spec if spec is None else spec
    fmt = None
    if _is_safetensors(path):
        from ..weights import load_weights

        model = load_weights(path)
    else:
        model, fmt = load_state(read_checkpoint(path), arch=arch, overrides=overrides, spec=spec, filename=path.name,
                                pairwise=pairwise, with_format=True)
    return LoadedModel.of(model, name=f"file:{path}", provenance=Provenance("file", path, fmt))


__all__ = [
    "FORMAT_MODULES",
    "STRUCTURAL",
    "AssumptionWarning",
    "CheckpointError",
    "CheckpointMismatchError",
    "UnknownFormatError",
    "UnsafeCheckpointError",
    "convert_checkpoint",
    "detect_format",
    "formats",
    "load_file",
    "load_state",
    "read_checkpoint",
]
