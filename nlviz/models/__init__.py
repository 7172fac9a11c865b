"""The model families and the registry that names their architectures.

Each family is one module of this package ending with ``FAMILY = Family(...)`` (see
:mod:`nlviz.models.family`); :data:`FAMILY_MODULES` lists them, one line each, and is the only
place that does. Architecture names are one namespace over all families::

    >>> from nlviz.models import build, family_of, list_models
    >>> model = build("i3d_nl5_r50", num_classes=400, pairwise="dot_product")
    >>> family_of("i3d_inception").blocks(build("i3d_inception", stages=("Mixed_4f",)))

Families are imported on first use (``import nlviz.models`` stays cheap, and a checkpoint
format may import a network module of this package without a cycle). A family that needs an
optional extra (``requires``) whose package is missing is left out of :func:`families` and
:func:`list_models`; :func:`family_of` names the extra to install for one of its names.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

from torch import nn

from ..names import closest
from ..spec import ClipSpec
from .family import KINDS, BlockInfo, Family, Options

# --- registration point: one line per family --------------------------------------------------
FAMILY_MODULES: list[str] = [
    "nlviz.models.resnet_nl",  # C2D / I3D ResNet-50/101 with non-local blocks (Wang et al. 2018)
    "nlviz.models.tiny_i3d",  # tiny I3D ResNets: the bundled demo models
    "nlviz.models.inception_i3d",  # DeepMind's I3D with feature-similarity probes
    "nlviz.models.torchvision_video",  # torchvision's MViT v1/v2 and Swin3D (Kinetics-400)
    "nlviz.models.hf_video",  # Hugging Face VideoMAE, TimeSformer, ViViT, V-JEPA 2 (extra: transformers)
]

# families that need an optional extra: module -> (the pip extra, the package it needs)
OPTIONAL_FAMILIES: dict[str, tuple[str, str]] = {"nlviz.models.hf_video": ("transformers", "transformers")}

_lock = threading.RLock()
_families: dict[str, Family] | None = None
_arch_family: dict[str, Family] = {}
_missing: dict[str, str] = {}  # family module -> why it is not available (an extra not installed)


def _load_families() -> dict[str, Family]:
    global _families
    with _lock:
        if _families is not None:
            return _families
        found: dict[str, Family] = {}
        for module in FAMILY_MODULES:
            extra = OPTIONAL_FAMILIES.get(module)
            if extra is not None and importlib.util.find_spec(extra[1]) is None:
                _missing[module] = f"pip install 'nlviz[{extra[0]}]'"
                continue
            fam = importlib.import_module(module).FAMILY
            if fam.name in found:
                raise ValueError(f"model family {fam.name!r} is registered twice")
            for arch in fam.archs:
                if arch in _arch_family:
                    raise ValueError(f"model {arch!r} is already registered (family {_arch_family[arch].name})")
                _arch_family[arch] = fam
            found[fam.name] = fam
        _families = found
        return found


def families() -> list[Family]:
    """The available families, in :data:`FAMILY_MODULES` order."""
    return list(_load_families().values())


def missing_families() -> dict[str, str]:
    """Families left out because an optional extra is not installed: module -> how to install it."""
    _load_families()
    return dict(_missing)


def list_models() -> list[str]:
    """Registered architecture names of every available family, sorted."""
    _load_families()
    return sorted(_arch_family)


def family_of(arch: str) -> Family:
    """The family that names architecture ``arch``; KeyError with the closest names otherwise."""
    _load_families()
    try:
        return _arch_family[arch]
    except KeyError:
        pass
    known = sorted(_arch_family)
    close = closest(arch, known)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    extra = f" (some families need an extra: {', '.join(sorted(set(_missing.values())))})" if _missing else ""
    raise KeyError(f"unknown model {arch!r}{hint} known models: {', '.join(known)}{extra}") from None


def get_config(name: str) -> tuple[Any, ClipSpec]:
    """The (config, spec) an architecture name stands for (the config type is the family's own)."""
    return family_of(name).config(name)


def build(name: str, **overrides) -> nn.Module:
    """Build architecture ``name`` with random weights, in eval mode (overrides: the family's fields,
    e.g. for ResNet-NL any field of ResNet3dConfig, NonLocalConfig or ClipSpec)."""
    return family_of(name).build(name, **overrides).eval()


def register(name: str) -> Callable:
    """Decorator adding a ResNet3d architecture (a function returning (ResNet3dConfig, ClipSpec)) to
    the ResNet-NL family; a name any family already has fails loudly."""
    from . import resnet_nl

    _load_families()

    def deco(fn):
        with _lock:
            if name in _arch_family:
                raise ValueError(f"model {name!r} is already registered")
            resnet_nl.register(name)(fn)
            _arch_family[name] = resnet_nl.FAMILY
        return fn

    return deco


def __getattr__(name: str):  # the networks' names, imported when first asked for
    lazy = {
        "Bottleneck": "resnet3d", "NonLocalConfig": "resnet3d", "ResNet3d": "resnet3d", "ResNet3dConfig": "resnet3d",
        "count_parameters": "resnet3d", "FeatureSimilarityProbe": "inception_i3d", "InceptionI3d": "inception_i3d",
        "InceptionI3dConfig": "inception_i3d", "PROBE_LABEL": "inception_i3d", "PROBE_STAGES": "inception_i3d",
        "build_inception_i3d": "inception_i3d",
    }
    if name in lazy:
        return getattr(importlib.import_module(f"{__name__}.{lazy[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FAMILY_MODULES",
    "KINDS",
    "BlockInfo",
    "Bottleneck",
    "Family",
    "FeatureSimilarityProbe",
    "InceptionI3d",
    "InceptionI3dConfig",
    "NonLocalConfig",
    "Options",
    "PROBE_LABEL",
    "PROBE_STAGES",
    "ResNet3d",
    "ResNet3dConfig",
    "build",
    "count_parameters",
    "families",
    "family_of",
    "get_config",
    "list_models",
    "missing_families",
    "register",
]
