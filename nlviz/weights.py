"""nlviz's own weight files: safetensors (data only, never pickles) that say how to rebuild the model.

The file's metadata holds the registry architecture name and the overrides it was built with
(JSON), so ``load_weights(path)`` needs nothing but the file::

    save_weights(model, "assets/models/demo_embedded_gaussian.safetensors")
    model = load_weights("assets/models/demo_embedded_gaussian.safetensors")   # eval mode

Loading is strict: a missing or unexpected tensor, or a shape mismatch, raises
:class:`WeightsError` listing the first few of each.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

ARCH_KEY = "nlviz.arch"
OVERRIDES_KEY = "nlviz.overrides"


class WeightsError(ValueError):
    """A weight file that cannot be loaded into the model it describes (or into any)."""


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor], limit: int = 5) -> str:
    """A readable list of missing/unexpected keys and shape mismatches ('' when they match)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {title}: " + ", ".join(items[:limit]) + more)
    return "; ".join(parts)


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state`` into ``model`` only if every key and shape matches; else WeightsError."""
    problem = describe_mismatch(model, state)
    if problem:
        raise WeightsError(f"{source} does not fit {getattr(model, 'arch', type(model).__name__)}: {problem}")
    model.load_state_dict(state, strict=True)
    return model


def save_weights(model: nn.Module, path: str | Path, overrides: dict | None = None) -> Path:
    """Write ``model``'s state_dict to a safetensors file with its architecture in the metadata.

    ``overrides``: the keyword overrides the model was built with (``nlviz.models.build``);
    defaults to ``model.build_overrides`` when the model has it.
    """
    arch = getattr(model, "arch", None)
    if arch is None:
        raise WeightsError("the model has no registry architecture name (model.arch): build it with nlviz.models.build")
    overrides = overrides if overrides is not None else getattr(model, "build_overrides", {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={ARCH_KEY: arch, OVERRIDES_KEY: json.dumps(overrides, sort_keys=True)})
    return path


def read_metadata(path: str | Path) -> tuple[str, dict]:
    """(architecture name, overrides) stored in an nlviz safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file: {e}") from e
    if ARCH_KEY not in meta:
        raise WeightsError(f"{path} has no '{ARCH_KEY}' metadata: it was not written by nlviz.save_weights")
    return meta[ARCH_KEY], json.loads(meta.get(OVERRIDES_KEY, "{}"))


def load_weights(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """Rebuild the model an nlviz safetensors file describes and load its weights (eval mode)."""
    from .models import build

    arch, overrides = read_metadata(path)
    model = build(arch, **overrides)
    try:
        state = load_file(str(path), device=map_location)
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file: {e}") from e
    return load_strict(model, state, str(path)).eval()
