"""Loading the surveyed models by name and what the survey records of each block.

The one place that turns a model name (a zoo name, ``name@options`` or a checkpoint path) into a
model: :func:`load` (:mod:`nlviz.resolve` when present, else the zoo / the checkpoint loaders).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


class ModelLoadError(ValueError):
    """A surveyed model that cannot be loaded (unknown name, unreadable checkpoint)."""


@dataclass
class SurveyModel:
    """A loaded model and the facts of its blocks the survey's rows carry."""

    name: str
    model: nn.Module
    spec: object  # nlviz.spec.ClipSpec
    family: str | None = None
    # block name -> {"stage", "kind", "label", "probe"}; blocks unknown here are described from the module
    blocks: dict[str, dict] = field(default_factory=dict)

    def block_facts(self, name: str) -> dict:
        if name in self.blocks:
            return self.blocks[name]
        from ..capture import is_attention_block

        module = self.model.get_submodule(name)
        probe = getattr(module, "probe_label", None) is not None
        kind = "probe" if probe else "nonlocal" if is_attention_block(module) else None  # None: not known here
        return {"stage": name.split(".")[0], "kind": kind, "probe": probe}


def load(name: str) -> SurveyModel:
    """The model ``name`` names, in eval mode, with its block facts."""
    try:
        from .. import resolve  # the single resolver, once it exists
    except ImportError:
        resolve = None
    try:
        if resolve is not None:
            lm = resolve.load(name)
            facts = {b.name: {"stage": b.stage, "kind": b.kind, "probe": bool(b.probe), "depth": b.depth}
                     for b in lm.blocks}
            family = getattr(lm, "family", None)
            return SurveyModel(name, lm.model, lm.spec, getattr(family, "name", family), facts)
        from ..export import load_model

        model = load_model(name)
    except Exception as e:  # every loader's own error: unknown name, bad file, wrong architecture
        raise ModelLoadError(f"cannot load model {name!r}: {e}") from e
    return SurveyModel(name, model.eval(), model.spec, None, _facts(model))


def _facts(model: nn.Module) -> dict[str, dict]:
    """Block facts from the model's family when it was built by :func:`nlviz.models.build` (``arch``)."""
    arch = getattr(model, "arch", None)
    if arch is None:
        return {}
    try:
        from ..models import block_infos

        return {b.name: {"stage": b.stage, "kind": b.kind, "probe": bool(b.probe), "depth": b.depth}
                for b in block_infos(arch, model)}
    except (ImportError, KeyError, ValueError, TypeError):
        return {}


__all__ = ["ModelLoadError", "SurveyModel", "load"]
