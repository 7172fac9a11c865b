"""The architectures: which transformers class, its default config, the clip it expects.

Each architecture is a transformers ``*ForVideoClassification`` class with a default config
(the published checkpoint's shape: ViT-B/16 for VideoMAE, TimeSformer and ViViT, ViT-L/16 for
V-JEPA 2) and a default :class:`~nlviz.spec.ClipSpec`; ``*_tiny`` are random-weight miniatures of
the same classes for tests and offline demos. nlviz wraps the HF model in
:class:`HFVideoClassifier`, which takes nlviz's (N, 3, T, H, W) clips and returns logits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
import transformers
from torch import Tensor, nn

from ...spec import ClipSpec
from ...video.errors import VideoError

# ImageNet statistics as the HF processors write them (0-1 scale): IMAGENET_DEFAULT_* and the
# "standard" 0.5/0.5 pair; ClipSpec holds them on the 0-255 scale
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def spec_values(mean: tuple[float, ...], std: tuple[float, ...], rescale: float = 1 / 255,
                offset: float = 0.0) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) on 0-255 for ClipSpec from an HF processor's ``((x * rescale - offset) - mean) / std``."""
    m = tuple(round((offset + float(v)) / rescale, 6) for v in mean)
    s = tuple(round(float(v) / rescale, 6) for v in std)
    return m, s  # type: ignore[return-value]


@dataclass(frozen=True)
class Arch:
    """One architecture: the HF class, its config and the fields that fix the input geometry."""

    model_class: str  # name in the transformers package
    config: Mapping[str, Any]  # config class keyword arguments (on top of the class defaults)
    spec: ClipSpec
    frames_field: str  # config field holding the clip length
    size_field: str  # config field holding the (square) input size
    title: str = ""
    tiny: bool = False
    attn_options: tuple[str, ...] = ("sdpa", "eager")  # attention implementations the class supports

    def cls(self) -> type:
        c = getattr(transformers, self.model_class, None)
        if c is None:
            raise ImportError(
                f"transformers {transformers.__version__} has no {self.model_class}; "
                "pip install -U 'nlviz[transformers]'"
            )
        return c


def _spec(frames: int, stride: int, short: int, crop: int, mean, std, **kw) -> ClipSpec:
    m, s = spec_values(mean, std, **kw)
    return ClipSpec(num_frames=frames, stride=stride, short_side=short, crop_size=crop, mean=m, std=s,
                    channel_order="RGB", labels=None)


_TINY = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=32, num_labels=5)

ARCHS: dict[str, Arch] = {
    # VideoMAE ViT-B/16, 16 frames in 2x16x16 tubelets, mean-pooled head (MCG-NJU's Kinetics models)
    "videomae_base": Arch(
        "VideoMAEForVideoClassification", dict(num_labels=400, use_mean_pooling=True),
        _spec(16, 4, 224, 224, HALF, HALF), "num_frames", "image_size",
        title="VideoMAE ViT-B/16 (16 frames, 2x16x16 tubelets)"),
    # TimeSformer-B, divided space-time attention, 8 frames of 16x16 patches
    "timesformer_base": Arch(
        "TimesformerForVideoClassification", dict(num_labels=400),
        _spec(8, 32, 224, 224, HALF, HALF), "num_frames", "image_size",
        title="TimeSformer-B (8 frames, divided space-time attention)", attn_options=("eager",)),
    # ViViT-B 16x2 (joint space-time attention, model 1 of the paper), 32 frames, class token
    "vivit_base": Arch(
        "VivitForVideoClassification", dict(num_labels=400),
        _spec(32, 2, 256, 224, HALF, HALF, rescale=1 / 127.5, offset=1.0), "num_frames", "image_size",
        title="ViViT-B 16x2 (32 frames, 2x16x16 tubelets, class token)"),
    # V-JEPA 2 ViT-L/16 with the attentive-probe classifier, 16-frame clips of 256x256
    "vjepa2_large": Arch(
        "VJEPA2ForVideoClassification", dict(num_labels=174, frames_per_clip=16, crop_size=256),
        _spec(16, 4, 292, 256, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD), "frames_per_clip", "crop_size",
        title="V-JEPA 2 ViT-L/16 (16 frames, 3-D RoPE, attentive-probe classifier)"),
    # random-weight miniatures of the same classes (tests, offline demos): 3-4 frames of 32x32, 8x8 patches
    "videomae_tiny": Arch(
        "VideoMAEForVideoClassification", dict(_TINY, image_size=32, patch_size=8, num_frames=4, tubelet_size=2),
        _spec(4, 2, 32, 32, HALF, HALF), "num_frames", "image_size", title="VideoMAE miniature", tiny=True),
    "timesformer_tiny": Arch(
        "TimesformerForVideoClassification", dict(_TINY, image_size=32, patch_size=8, num_frames=3),
        _spec(3, 2, 32, 32, HALF, HALF), "num_frames", "image_size",
        title="TimeSformer miniature", tiny=True, attn_options=("eager",)),
    "vivit_tiny": Arch(
        "VivitForVideoClassification", dict(_TINY, image_size=32, tubelet_size=[2, 8, 8], num_frames=4),
        _spec(4, 2, 32, 32, HALF, HALF, rescale=1 / 127.5, offset=1.0), "num_frames", "image_size",
        title="ViViT miniature", tiny=True),
    "vjepa2_tiny": Arch(
        "VJEPA2ForVideoClassification",
        dict(crop_size=32, patch_size=8, frames_per_clip=4, tubelet_size=2, hidden_size=36, num_hidden_layers=2,
             num_attention_heads=3, mlp_ratio=1.0, num_pooler_layers=1, pred_hidden_size=12,
             pred_num_attention_heads=2, pred_num_hidden_layers=1, num_labels=5),
        _spec(4, 2, 32, 32, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD), "frames_per_clip", "crop_size",
        title="V-JEPA 2 miniature", tiny=True),
}

_SPEC_FIELDS = {f.name for f in fields(ClipSpec)} - {"extra"}


class InputShapeError(VideoError, ValueError):
    """A clip whose frames or size the model cannot take: a video problem for the user (the
    message says which sampling fits)."""


class HFVideoClassifier(nn.Module):
    """A transformers video classifier taking nlviz clips: ``forward((N, 3, T, H, W)) -> logits``.

    ``hf``: the transformers model (its own attention implementation, SDPA by default);
    ``spec``: the clip it expects; ``class_names``: its labels (``config.id2label``) or None;
    ``arch``: the registry name it was built or loaded as. Nothing on it changes after loading.
    """

    def __init__(self, hf: nn.Module, *, arch: str, spec: ClipSpec, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.hf = hf
        self.arch = arch
        self.spec = spec
        self.class_names = class_names

    @property
    def config(self):
        return self.hf.config

    @property
    def input_size(self) -> tuple[int, int]:
        """(frames, side) of the clips this model takes."""
        a = arch_of(self.hf.config)
        return int(getattr(self.hf.config, a.frames_field)), _side(getattr(self.hf.config, a.size_field))

    def check_clip(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`InputShapeError`, saying which sampling fits, for a clip shape the model cannot take."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != 5 or shape[1] != 3:
            raise InputShapeError(f"expected a clip of shape (N, 3, T, H, W), got {shape}")
        frames, side = self.input_size
        t, h, w = shape[2:]
        cfg = self.hf.config
        tubelet = int(getattr(cfg, "tubelet_size", 1) if cfg.model_type != "vivit" else cfg.tubelet_size[0])
        fixed_t = cfg.model_type != "vjepa2"  # V-JEPA 2 takes any clip length its tubelets divide
        if (fixed_t and t != frames) or (not fixed_t and t % tubelet) or h != side or w != side:
            want = f"exactly {frames} frames" if fixed_t else f"a multiple of {tubelet} frames"
            raise InputShapeError(
                f"{self.arch} takes clips of {want} of {side}x{side} pixels (its position embeddings fix the "
                f"size), got {t} frames of {h}x{w}: sample {frames} frames (num_frames={frames}) with the "
                f"centre crop of {side} pixels, not the full frame"
            )

    def forward(self, clip: Tensor) -> Tensor:
        self.check_clip(tuple(clip.shape))
        return self.hf(clip.transpose(1, 2)).logits


def _side(v: Any) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


def arch_of(config: Any) -> Arch:
    """The (full-size) architecture of a config's model type."""
    by_class = {a.cls().config_class.model_type: a for n, a in ARCHS.items() if not a.tiny}
    try:
        return by_class[config.model_type]
    except KeyError:
        raise KeyError(f"unsupported model type {config.model_type!r}; known: {', '.join(by_class)}") from None


def arch_name(config: Any) -> str:
    a = arch_of(config)
    return next(n for n, v in ARCHS.items() if v is a)


def config(arch: str) -> tuple[Any, ClipSpec]:
    """(transformers config, ClipSpec) of an architecture."""
    a = ARCHS[arch]
    return a.cls().config_class(**dict(a.config)), a.spec


def class_names(cfg: Any) -> list[str] | None:
    """The labels of a config (``id2label``), None when they are only transformers' LABEL_i placeholders."""
    id2label = getattr(cfg, "id2label", None) or {}
    n = int(getattr(cfg, "num_labels", len(id2label)) or 0)
    names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]
    if not names or all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def build(arch: str, **overrides: Any) -> HFVideoClassifier:
    """An untrained (random-weight) model of ``arch`` in eval mode.

    ``overrides``: fields of the transformers config (``hidden_size=...``), ClipSpec fields,
    ``num_classes`` (= ``num_labels``) and ``attn_implementation`` ("sdpa" by default where the
    class has it, "eager"). The clip length and size stay those of the config; TypeError for an
    override that is neither.
    """
    if arch not in ARCHS:
        raise KeyError(f"{arch!r} is not an architecture of the hf_video family; known: {', '.join(ARCHS)}")
    a = ARCHS[arch]
    cls = a.cls()
    overrides = dict(overrides)
    # an entry's build_kwargs() name the attention as the paper's pairwise function and dims: softmax
    # of scaled q.k is the embedded Gaussian (per head), and they cannot change here
    if overrides.pop("pairwise", "embedded_gaussian") != "embedded_gaussian" or \
            overrides.pop("dims", "spacetime") != "spacetime":
        raise TypeError(f"{arch} attends with softmax(q.k / sqrt(d)) per head (embedded_gaussian, spacetime): "
                        "pairwise and dims cannot change")
    attn = overrides.pop("attn_implementation", None)
    if "num_classes" in overrides:
        overrides["num_labels"] = int(overrides.pop("num_classes"))
    spec_changes = {k: overrides.pop(k) for k in list(overrides) if k in _SPEC_FIELDS and k not in ("num_frames", "crop_size")}
    if "num_frames" in overrides and a.frames_field != "num_frames":
        overrides[a.frames_field] = overrides.pop("num_frames")
    if "crop_size" in overrides and a.size_field != "crop_size":  # the clip's side is the model's input size
        overrides[a.size_field] = overrides.pop("crop_size")
    kwargs = {**dict(a.config), **overrides}
    cfg = cls.config_class(**kwargs)
    defaults = cls.config_class()
    unknown = [k for k in overrides if not hasattr(defaults, k)]
    if unknown:
        raise TypeError(f"unknown override(s) {unknown} for {arch}: not a field of {cls.config_class.__name__} or ClipSpec")
    if spec_changes.get("channel_order", "RGB") != "RGB":
        raise TypeError(f"{arch} takes RGB frames")
    frames, side = int(getattr(cfg, a.frames_field)), _side(getattr(cfg, a.size_field))
    spec = a.spec
    short = spec_changes.pop("short_side", round(spec.short_side * side / spec.crop_size))
    spec = replace(spec, num_frames=frames, crop_size=side, short_side=short, **spec_changes)
    hf = cls._from_config(cfg, **({"attn_implementation": attn} if attn else {}))
    return HFVideoClassifier(hf.eval(), arch=arch, spec=spec, class_names=class_names(cfg)).eval()


__all__ = ["ARCHS", "Arch", "HFVideoClassifier", "InputShapeError", "arch_name", "arch_of", "build",
           "class_names", "config", "spec_values"]
