"""Where a Hugging Face video transformer keeps its queries and keys, found by structure.

An attention site is a module with a head count whose direct children include either one fused
``Linear(C, 3 * C)`` (TimeSformer's ``qkv``) or a query and a key ``Linear`` of the same shapes
(``query``/``key`` in VideoMAE and V-JEPA 2, ``q_proj``/``k_proj`` in ViViT since transformers 5,
``query``/``key`` under ``attention.attention`` before). Nothing here names a module path of one
transformers version: the sites are searched for under the model's backbone
(``model.base_model``, HF's own handle on it) and, for V-JEPA 2, its attentive pooler; what is
searched for is a shape (a head count, projections of matching widths), and the projections' roles
are told apart by the short role names every version has used (``q``/``query``/``q_proj``, ...).

The token layout (which token of a sequence is which space-time cell) is the model type's, read
off its config: tubelets (t, p, p), T-major cells, a leading class token or none, and for
TimeSformer's divided attention the (H, W, T) order of its sequences (see :class:`Layout`).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from torch import nn

QUERY_NAMES = ("query", "q_proj", "q", "to_q", "wq", "q_lin")
KEY_NAMES = ("key", "k_proj", "k", "to_k", "wk", "k_lin")
FUSED_NAMES = ("qkv", "in_proj", "to_qkv", "wqkv")
HEAD_ATTRS = ("num_attention_heads", "num_heads", "n_heads")
HEAD_DIM_ATTRS = ("attention_head_size", "head_dim")
SCALE_ATTRS = ("scaling", "scale")


class StructureError(RuntimeError):
    """A model whose attention could not be resolved into query and key projections."""


@dataclass(frozen=True)
class Site:
    """One attention module and how to read its queries and keys."""

    path: str  # qualified name of the attention module inside the HF model
    query: str  # child name of the query projection (the fused one when ``fused``)
    key: str  # child name of the key projection (== query when fused)
    fused: bool  # one Linear(C, 3C) whose output is [q | k | v]
    heads: int
    head_dim: int
    scale: float  # the factor applied to q . k before the softmax
    rope: bool  # the module rotates q and k after projecting them (V-JEPA 2's 3-D RoPE)
    kind: str  # "self_attention" | "divided_time" | "divided_space"
    where: str  # "encoder" | "pooler": the backbone's layers or the classifier's attentive pooler


def _int_attr(module: nn.Module, names: tuple[str, ...]) -> int | None:
    for n in names:
        v = getattr(module, n, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _heads(module: nn.Module) -> int | None:
    heads = _int_attr(module, HEAD_ATTRS)
    if heads is None:
        cfg = getattr(module, "config", None)
        heads = _int_attr(cfg, HEAD_ATTRS) if cfg is not None else None
    return heads


def _linear_children(module: nn.Module) -> dict[str, nn.Linear]:
    return {n: c for n, c in module.named_children() if isinstance(c, nn.Linear)}


def _is_self_attention(module: nn.Module) -> bool:
    """A module attending a sequence to itself: its forward takes one required tensor (a
    cross-attention's takes queries and keys apart, like V-JEPA 2's pooler's learned query)."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return True
    required = [p for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) <= 1


def resolve_site(path: str, module: nn.Module, *, kind: str = "self_attention", where: str = "encoder") -> Site | None:
    """The :class:`Site` of ``module`` if it is a multi-head attention module, else None."""
    heads = _heads(module)
    if heads is None:
        return None
    linears = _linear_children(module)
    query = next((n for n in QUERY_NAMES if n in linears), None)
    key = next((n for n in KEY_NAMES if n in linears), None)
    fused = False
    if query is not None and key is not None:
        q, k = linears[query], linears[key]
        if q.in_features != k.in_features or q.out_features != k.out_features or q.out_features % heads:
            return None
        width = q.out_features
    else:
        fused_name = next((n for n in FUSED_NAMES if n in linears and linears[n].out_features % 3 == 0), None)
        if fused_name is None:
            return None
        query = key = fused_name
        fused = True
        width = linears[fused_name].out_features // 3
        if width % heads:
            return None
    if not _is_self_attention(module):
        return None
    head_dim = _int_attr(module, HEAD_DIM_ATTRS) or width // heads
    if head_dim * heads != width:
        raise StructureError(f"{path}: {heads} heads of {head_dim} channels do not make the projection's {width}")
    scale = next((float(getattr(module, n)) for n in SCALE_ATTRS if isinstance(getattr(module, n, None), float)),
                 head_dim ** -0.5)
    rope = callable(getattr(module, "apply_rotary_embeddings", None)) and callable(getattr(module, "get_position_ids", None))
    return Site(path, query, key, fused, heads, head_dim, scale, rope, kind, where)


def _scope(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(prefix, module, where) of the parts of an HF video classifier whose attention runs over
    the clip's tokens: the backbone without a predictor it does not run (V-JEPA 2 classifies with
    ``skip_predictor=True``), and an attentive pooler's own self-attention layers."""
    base_prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, base_prefix, None) if base_prefix else None
    if not isinstance(base, nn.Module):
        raise StructureError(f"{type(model).__name__} has no backbone at .{base_prefix or '<base_model_prefix>'}")
    parts = [(base_prefix, base, "encoder")]
    pooler = getattr(model, "pooler", None)
    if isinstance(pooler, nn.Module) and pooler is not base:
        parts.append(("pooler", pooler, "pooler"))
    return parts


def _layer_index(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\.(\d+)(?=\.|$)", path))


def find_sites(model: nn.Module) -> list[Site]:
    """Every attention site of an HF video classifier, in forward order.

    Forward order: the backbone's layers in index order (within a TimeSformer layer the temporal
    factor runs before the spatial one), then the pooler's self-attention layers.
    """
    divided = getattr(getattr(model, "config", None), "attention_type", None) == "divided_space_time"
    sites: list[Site] = []
    for prefix, part, where in _scope(model):
        skip = getattr(part, "predictor", None)
        skipped = {id(m) for m in skip.modules()} if isinstance(skip, nn.Module) else set()
        found = []
        for name, module in part.named_modules():
            if id(module) in skipped:
                continue
            kind = "self_attention"
            if divided and where == "encoder":
                # a divided layer's attention over T at one patch: named "temporal" in every version
                kind = "divided_time" if "temporal" in name else "divided_space"
            site = resolve_site(f"{prefix}.{name}" if name else prefix, module, kind=kind, where=where)
            if site is not None:
                found.append(site)
        order = {"divided_time": 0, "divided_space": 1, "self_attention": 1}
        found.sort(key=lambda s: (_layer_index(s.path), order[s.kind]))
        sites.extend(found)
    if not sites:
        raise StructureError(f"no multi-head attention with query/key projections found in {type(model).__name__}")
    return sites


def short_name(site: Site, sites: list[Site]) -> str:
    """The capture key of a site: ``layer.<i>`` (``.time`` / ``.space`` for divided attention),
    ``pooler.<j>`` for an attentive pooler's self-attention."""
    same = [s for s in sites if s.where == site.where]
    layers = sorted({_layer_index(s.path)[:1] for s in same})
    idx = layers.index(_layer_index(site.path)[:1])
    if site.where == "pooler":
        return f"pooler.{idx}"
    suffix = {"divided_time": ".time", "divided_space": ".space"}.get(site.kind, "")
    return f"layer.{idx}{suffix}"


@dataclass(frozen=True)
class Layout:
    """How one model type lays its clip out as tokens.

    ``tubelet`` (t, h, w): input frames and pixels per token; ``cls``: leading class tokens of
    the sequence (0 or 1); ``divided``: TimeSformer's divided attention, whose hidden states are
    ordered (H, W, T) after the class token, whose temporal factor attends sequences of the T
    tokens of one patch (batch index b*H*W + h*W + w) and whose spatial factor attends, per frame
    (batch index b*T + t), the class token then that frame's H*W patches. Every other model here
    orders its patch tokens T-major, (t, h, w).
    """

    tubelet: tuple[int, int, int]
    cls: int
    divided: bool = False

    def grid(self, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(T, H, W) token grid for a model input of (T, H, W) frames and pixels."""
        return tuple(int(i) // int(s) for i, s in zip(input_shape, self.tubelet))


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1] if len(v) > 1 else v[0])
    return int(v), int(v)


def layout(config: Any) -> Layout:
    """The token layout of a VideoMAE, TimeSformer, ViViT or V-JEPA 2 config."""
    mt = getattr(config, "model_type", "")
    if mt == "vivit":
        t, h, w = (int(v) for v in config.tubelet_size)
        return Layout((t, h, w), cls=1)
    if mt == "timesformer":
        h, w = _pair(config.patch_size)
        divided = getattr(config, "attention_type", "divided_space_time") == "divided_space_time"
        return Layout((1, h, w), cls=1, divided=divided)
    if mt in ("videomae", "vjepa2"):
        h, w = _pair(config.patch_size)
        return Layout((int(config.tubelet_size), h, w), cls=0)
    raise StructureError(f"unsupported model type {mt!r}: expected videomae, timesformer, vivit or vjepa2")


__all__ = ["Layout", "Site", "StructureError", "find_sites", "layout", "resolve_site", "short_name"]
