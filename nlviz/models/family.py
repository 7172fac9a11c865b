"""A model family: the unit of extension of nlviz's model layer.

A family is one module (``nlviz/models/<family>.py``) that ends with ``FAMILY = Family(...)``:
its architectures (registry names and their default config and clip), how to build one, what its
attention blocks are (:class:`BlockInfo`: name, stage, stride, kind, label, heads, probe or not),
its pretrained entries (the zoo's data rows) and how a fetched file of one of them becomes a
model. :data:`nlviz.models.FAMILY_MODULES` lists the families (one line each); nothing else in
nlviz names a family.

    from nlviz.models import family_of, families
    fam = family_of("i3d_nl5_r50")          # the ResNet-NL family
    model = fam.build("i3d_nl5_r50", pairwise="dot_product")
    [b.name for b in fam.blocks(model)]      # ['res3.1.nl', 'res3.3.nl', ...]

A family whose code needs an optional extra (``transformers``) names it in ``requires``; it is
listed only when that package imports, and :func:`nlviz.models.family_of` says how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ..spec import ClipSpec

if TYPE_CHECKING:  # the zoo's row type; the zoo imports the families, never the other way round
    from ..zoo import ZooEntry

KINDS = ("nonlocal", "probe", "self_attention", "window_attention", "divided_time", "divided_space")
"""What computes a block's attention: a trained non-local block, a parameter-free probe, global
multi-head self-attention, windowed (Swin) self-attention, or one factor of divided attention."""

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class BlockInfo:
    """What a family knows about one attention block before any clip runs through it."""

    name: str  # qualified module name: the key of the block in a Capture
    stage: str  # where it sits, in the family's words: "res3", "Mixed_4f", "blocks.5" (for tables)
    stride: Triple  # (t, h, w): model-input frames/pixels per query cell; Compare pairs blocks by it
    kind: str  # one of KINDS
    label: str  # for pickers and captions, e.g. "res3.1.nl (embedded Gaussian)"
    heads: int = 1  # attention heads (1 for non-local blocks and probes)
    depth: int = 0  # position among the model's attention blocks, in forward order

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"block {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if len(self.stride) != 3 or any(int(s) < 1 for s in self.stride):
            raise ValueError(f"block {self.name}: stride must be three positive integers, got {self.stride}")

    @property
    def probe(self) -> bool:
        """A parameter-free probe rather than attention the network was trained with."""
        return self.kind == "probe"

    @property
    def spatial_stride(self) -> int:
        return int(self.stride[1])


@dataclass(frozen=True)
class Options:
    """Settings a zoo name may carry after ``@`` (``entry@key=value,...``), for families that have them.

    ``parse(text) -> dict`` (ValueError naming the problem), ``format(dict) -> text`` (canonical:
    sorted keys), ``names``: the keys. Loading a name with options calls the family's ``load``
    with them (e.g. the I3D probe's stages and temperature).
    """

    names: tuple[str, ...]
    parse: Callable[[str], dict[str, Any]]
    format: Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring)."""

    name: str  # e.g. "resnet_nl"
    title: str  # one line for docs and the Models page
    # registry name -> () -> (default config, default ClipSpec); the config type is the family's own
    archs: Mapping[str, Callable[[], tuple[Any, ClipSpec]]]
    # build(arch, **overrides) -> untrained model in eval mode; TypeError for an unknown override
    build: Callable[..., nn.Module]
    # blocks(model) -> the model's attention blocks, in forward order
    blocks: Callable[[nn.Module], list[BlockInfo]]
    # the family's pretrained entries (the zoo's rows); called once, when the zoo is first listed
    entries: Callable[[], Iterable["ZooEntry"]] = lambda: ()
    # load(entry, path, options) -> model (eval mode) from the entry's fetched file (or directory);
    # None: the file is a checkpoint that nlviz.checkpoints converts (ResNet-NL's published formats)
    load: Callable[["ZooEntry", Path, Mapping[str, Any]], nn.Module] | None = None
    # fetch(entry, dest_dir, progress=, log=, timeout=) -> the local file or directory of an entry whose
    # file format the zoo does not download itself (a hub snapshot); None: the zoo fetches
    fetch: Callable[..., Path] | None = None
    # open_dir(path) -> model, for a checkpoint that is a directory of this family (a saved hub
    # snapshot), or None when the directory is not one; None: the family has no directory checkpoints
    open_dir: Callable[[Path], nn.Module | None] | None = None
    # owns_keys(keys) -> whether a checkpoint's tensor names look like this family's (its own or its
    # publishers'), so a file loaded as the wrong kind of network can say which family it belongs to
    owns_keys: Callable[[list[str]], bool] | None = None
    options: Options | None = None  # what a name may set after "@"; None: nothing
    # describe(arch) -> {field: value}: what `nlviz models NAME -v` prints about an architecture
    describe: Callable[[str], Mapping[str, Any]] | None = None
    requires: str | None = None  # the optional extra whose package the family needs ("transformers")
    default_block: Callable[[nn.Module], str | None] = field(default=lambda model: None)  # shown first
    probe_label: str | None = None  # what every view of this family's probe blocks must say
    # with_options(model, options) -> a new model with other options around the same weight tensors
    # (a name's "@" settings, without reading the file again); None: reload with the options
    with_options: Callable[[nn.Module, Mapping[str, Any]], nn.Module] | None = None

    def config(self, arch: str) -> tuple[Any, ClipSpec]:
        try:
            return self.archs[arch]()
        except KeyError:
            raise KeyError(f"{arch!r} is not an architecture of the {self.name} family") from None

    def block(self, model: nn.Module, name: str) -> BlockInfo:
        for b in self.blocks(model):
            if b.name == name:
                return b
        raise KeyError(f"{name!r} is not an attention block of this {self.name} model")


__all__ = ["KINDS", "BlockInfo", "Family", "Options"]
