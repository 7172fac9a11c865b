"""Loading the surveyed models by name and what the survey records of each block.

The one place that turns a model name (a zoo name, ``name@options`` or a checkpoint path) into a
model: :func:`load`, through :mod:`nlviz.resolve` (the one resolver), with the family's block metadata.
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
    """The model ``name`` names (:func:`nlviz.resolve.load`), in eval mode, with its block facts."""
    from ..resolve import load as resolve

    try:
        lm = resolve(name)
    except Exception as e:  # every loader's own error: unknown name, bad file, wrong architecture
        raise ModelLoadError(f"cannot load model {name!r}: {e}") from e
    facts = {b.name: {"stage": b.stage, "kind": b.kind, "probe": bool(b.probe), "depth": b.depth} for b in lm.blocks}
    return SurveyModel(name, lm.model, lm.spec, lm.family.name, facts)


__all__ = ["ModelLoadError", "SurveyModel", "load"]
