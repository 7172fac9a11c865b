"""A loaded model: the network and everything nlviz knows about it, in one typed object.

:func:`nlviz.resolve.load` returns one for a zoo name, a name with options or a checkpoint path;
the app, the command line, exports and the survey take it. Nothing is attached to the
``nn.Module`` itself (a model may be shared by every browser session)::

    lm = nlviz.resolve.load("demo.embedded_gaussian")
    lm.model          # the nn.Module, eval mode
    lm.spec           # the clip it expects (the publisher's preprocessing)
    lm.labels         # class names, or None
    lm.blocks         # BlockInfo per attention block: stage, stride, kind, label, heads
    lm.provenance     # where it came from: source, file, format, licence
    lm(clip)          # the module's forward

For code written against a bare module, attributes the object does not have are looked up on
the module (``lm.cfg``, ``lm.parameters()``, ``lm.training``), so a LoadedModel goes wherever a
model did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from .spec import ClipSpec

if TYPE_CHECKING:
    from .entry import ZooEntry
    from .models.family import BlockInfo, Family


@dataclass(frozen=True)
class Provenance:
    """Where a loaded model's weights came from."""

    source: str  # a zoo source ("mmaction2", "demo", ...) or "file" for a checkpoint named by its path
    path: Path | None = None  # the file read (None for a model built in memory)
    checkpoint_format: str | None = None  # the format module that converted it ("caffe2", ...), None for ours
    license: str = ""
    citation: str = ""
    notes: str = ""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One loaded network (see the module docstring). Frozen: derive others with :meth:`with_`."""

    name: str  # canonical: a zoo name, "<entry>@<options>", or "file:<path>"
    model: nn.Module
    spec: ClipSpec
    family: "Family"
    arch: str
    build_overrides: Mapping[str, Any] = field(default_factory=dict)
    entry: "ZooEntry | None" = None
    provenance: Provenance = field(default_factory=lambda: Provenance("memory"))
    options: Mapping[str, Any] = field(default_factory=dict)  # the name's options (after "@")

    @classmethod
    def of(cls, model: nn.Module, *, name: str | None = None, arch: str | None = None, **fields: Any) -> "LoadedModel":
        """Wrap a network built in memory (``nlviz.models.build``): its own ``arch`` and ``spec``
        unless given."""
        from .models import family_of

        if isinstance(model, LoadedModel):
            return model.with_(**({"name": name} if name else {}), **fields)
        arch = arch or getattr(model, "arch", None)
        if arch is None:
            raise TypeError(f"cannot tell the architecture of a {type(model).__name__}: pass arch=")
        fields.setdefault("spec", getattr(model, "spec", None) or ClipSpec())
        fields.setdefault("build_overrides", dict(getattr(model, "build_overrides", {}) or {}))
        return cls(name=name or arch, model=model, arch=arch, family=family_of(arch), **fields)

    def with_(self, **changes: Any) -> "LoadedModel":
        return replace(self, **changes)

    # --- what the views ask -----------------------------------------------------------------

    @property
    def zoo_name(self) -> str:
        """The name (kept under the name the zoo's loaders used for it)."""
        return self.name

    @property
    def checkpoint_format(self) -> str | None:
        return self.provenance.checkpoint_format

    @property
    def labels(self) -> list[str] | None:
        """The label set the spec names, else the network's own class names (a Hugging Face
        checkpoint's ``config.id2label``, as ``class_names``), else None."""
        from .labels import label_names

        names = label_names(self.spec.labels)
        if names is None:
            own = getattr(self.model, "class_names", None)
            names = list(own) if own else None
        return names

    @property
    def blocks(self) -> tuple["BlockInfo", ...]:
        return tuple(self.family.blocks(self.model))

    def block(self, name: str) -> "BlockInfo":
        return self.family.block(self.model, name)

    @property
    def default_block(self) -> str | None:
        """The block to show first: the family's choice, else the first."""
        chosen = self.family.default_block(self.model)
        names = [b.name for b in self.blocks]
        return chosen if chosen in names else (names[0] if names else None)

    @property
    def has_probe(self) -> bool:
        return any(b.probe for b in self.blocks)

    @property
    def probe_label(self) -> str | None:
        """What every picture of a probe model must say (the family's probe label), else None."""
        return self.family.probe_label if self.has_probe else None

    # --- a LoadedModel goes where a module did ------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # only for names not found on the object itself
        if name.startswith("__") or name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def as_module(model: Any) -> nn.Module:
    """The ``nn.Module`` of a LoadedModel (a module is returned as it is)."""
    return model.model if isinstance(model, LoadedModel) else model


__all__ = ["LoadedModel", "Provenance", "as_module"]
