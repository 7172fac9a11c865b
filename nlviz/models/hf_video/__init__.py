"""Hugging Face video transformers as an nlviz model family: VideoMAE, TimeSformer, ViViT, V-JEPA 2.

Needs the optional extra: ``pip install 'nlviz[transformers]'`` (importing this package without
it raises ImportError saying so). The networks are transformers' own ``*ForVideoClassification``
classes, loaded with ``from_pretrained`` from a hub snapshot in nlviz's cache or any local
checkpoint directory, and wrapped (:class:`HFVideoClassifier`) to take nlviz's (N, 3, T, H, W)
clips. Their attention is captured from the models' own query/key projections, whatever attention
implementation they run (SDPA stays transformers' default; nlviz never needs ``eager`` or
``output_attentions``): one row costs O(keys x heads x d), never the N x N matrix.

    from nlviz.models.hf_video import FAMILY, build, load_dir
    model = build("videomae_tiny")                     # random weights, a miniature
    model = load_dir("~/ckpt/videomae-base-finetuned-kinetics")   # offline, any save_pretrained dir
    [b.label for b in FAMILY.blocks(model)]

Blocks: one per encoder layer, named by the attention module's qualified name in the wrapper (the
capture key, e.g. ``hf.videomae.encoder.layer.3.attention.attention``), staged and labelled
``layer.<i>``; TimeSformer's divided attention gives two per layer, ``layer <i> time`` (over T at
the same patch, run first) and ``layer <i> space`` (within the frame, class token per frame);
V-JEPA 2's attentive classifier adds ``pooler.<j>``, the self-attention layers of its pooler over
the encoder's tokens (its cross-attention from one learned query is not a per-pixel map and is not
captured).
"""

from __future__ import annotations

try:
    import transformers  # noqa: F401
except ImportError as e:  # the extra is missing: say how to get it
    raise ImportError(
        "the Hugging Face video transformers (VideoMAE, TimeSformer, ViViT, V-JEPA 2) need the "
        "optional extra: pip install 'nlviz[transformers]'"
    ) from e

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..family import BlockInfo, Family
from .archs import ARCHS, HFVideoClassifier, InputShapeError, arch_name, build, class_names, config
from .hooks import ADAPTER, TWO_HOP_LABEL, FrameClassRule, block_name, two_hop_row
from .hub import NotASnapshotError, fetch_snapshot, is_snapshot, load_dir, repo_id_of, snapshot_dirname
from .structure import Site, StructureError, find_sites, layout, short_name


def _label(site: Site, name: str) -> str:
    where = name.replace(".", " ", 1).replace(".time", " time").replace(".space", " space")
    what = {
        "divided_time": "over T at the same patch",
        "divided_space": "within the frame",
    }.get(site.kind, "attentive-probe self-attention" if site.where == "pooler" else "joint space-time")
    rope = ", 3-D RoPE" if site.rope else ""
    return f"{where} ({site.heads} heads, {what}{rope})"


def blocks(model: nn.Module) -> list[BlockInfo]:
    """The attention blocks of a wrapped HF video model, in forward order."""
    if not isinstance(model, HFVideoClassifier):
        raise TypeError(f"expected an HFVideoClassifier (nlviz.models.hf_video), got {type(model).__name__}")
    found = find_sites(model.hf)
    stride = layout(model.hf.config).tubelet
    out = []
    for depth, site in enumerate(found):
        short = short_name(site, found)
        out.append(BlockInfo(name=block_name(site), stage=short.rsplit(".", 1)[0] if site.kind.startswith("divided")
                             else short, stride=stride, kind=site.kind, label=_label(site, short), heads=site.heads,
                             depth=depth))
    return out


def default_block(model: nn.Module) -> str | None:
    """The last encoder layer (its spatial factor for TimeSformer): the most class-specific maps."""
    enc = [b for b in blocks(model) if not b.stage.startswith("pooler")]
    return enc[-1].name if enc else None


def describe(arch: str) -> dict[str, Any]:
    cfg, spec = config(arch)
    a = ARCHS[arch]
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "tubelet_size",
            "attention_type", a.frames_field, a.size_field, "num_labels", "num_pooler_layers")
    out = {"transformers class": a.model_class}
    out.update({k: getattr(cfg, k) for k in keys if hasattr(cfg, k)})
    out["clip"] = f"{spec.num_frames}x{spec.stride}, short side {spec.short_side}, crop {spec.crop_size}"
    out["attention implementations"] = ", ".join(a.attn_options)
    return out


def _load(entry: Any, path: Path, options: Mapping[str, Any]) -> nn.Module:
    return load_dir(path, spec=entry.spec, arch=entry.arch)


def load_path(path: str | Path, **kwargs: Any) -> HFVideoClassifier:
    """A model from a checkpoint directory named by a user (no zoo entry): :func:`load_dir`."""
    return load_dir(path, **kwargs)


def _fetch(entry: Any, dest_dir: Path, *, progress: Any = None, log: Any = None, timeout: float = 30) -> Path:
    """The zoo's fetch for an ``hf_hub`` entry: its snapshot in ``dest_dir/<owner>--<name>``."""
    return fetch_snapshot(repo_id_of(entry.url), Path(dest_dir) / entry.filename, log=log)


def open_dir(path: str | Path) -> HFVideoClassifier | None:
    """A checkpoint directory of this family's model types as a model; None for any other directory."""
    import json

    p = Path(path)
    try:
        model_type = json.loads((p / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    if model_type not in {hv_arch.cls().config_class.model_type for hv_arch in ARCHS.values()}:
        return None
    return load_dir(p)


_KEY_PREFIXES = ("videomae.", "timesformer.", "vivit.", "vjepa2.")


def owns_keys(keys: list[str]) -> bool:
    """Whether checkpoint tensor names look like a transformers VideoMAE/TimeSformer/ViViT/V-JEPA 2
    state dict (or this family's wrapper of one, under ``hf.``)."""
    keys = [k[3:] if k.startswith("hf.") else k for k in keys]
    return bool(keys) and sum(k.startswith(_KEY_PREFIXES) for k in keys) >= max(1, len(keys) // 2)


def _entries() -> Iterable[Any]:
    from .zoo import entries

    return entries()


FAMILY = Family(
    name="hf_video",
    title="Hugging Face video transformers: VideoMAE, TimeSformer, ViViT, V-JEPA 2 (multi-head self-attention)",
    archs={name: (lambda name=name: config(name)) for name in ARCHS},
    build=build,
    blocks=blocks,
    entries=_entries,
    load=_load,
    fetch=_fetch,
    open_dir=open_dir,
    owns_keys=owns_keys,
    describe=describe,
    requires="transformers",
    default_block=default_block,
)

__all__ = [
    "ADAPTER", "ARCHS", "FAMILY", "FrameClassRule", "HFVideoClassifier", "InputShapeError", "NotASnapshotError",
    "StructureError", "TWO_HOP_LABEL", "arch_name", "block_name", "blocks", "build", "class_names", "config", "default_block",
    "fetch_snapshot", "find_sites", "is_snapshot", "load_dir", "load_path", "open_dir", "owns_keys", "repo_id_of", "snapshot_dirname",
    "two_hop_row",
]
