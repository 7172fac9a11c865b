"""ResNet-3D backbones with non-local blocks: C2D and I3D, as in Wang et al. (CVPR 2018), Table 1.

One configurable network covers the paper's C2D (2-D kernels; time is mixed only by the
temporal max pool and the non-local blocks) and I3D (3x1x1 temporal kernels inflated into
"every other" residual block), ResNet-50/101, and non-local blocks after chosen residual blocks.
The defaults follow the official Caffe2 graph (video-nonlocal-net ``resnet_video.py``):
conv1 1x7x7 (C2D) / 5x7x7 (I3D) with stride 1x2x2, max ``pool1`` 1x3x3 stride 1x2x2 with zero
padding, max ``pool2`` 2x1x1 after res2, the temporal kernel on the first 1x1 conv of a
bottleneck (``conv_a``, Caffe2's ``branch2a``), the spatial stride on the 3x3 conv (``conv_b``).
The other sources (mmaction2, PySlowFast) differ only in arguments of :class:`ResNet3dConfig`.

Module names (what capture reports): ``stem``, ``res2`` .. ``res5`` (each an ``nn.Sequential``
of :class:`Bottleneck`), ``pool2``, ``head``; the non-local block after residual block i of
stage s is ``res{s}.{i}.nl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from ..nonlocal_block import NonLocalBlock
from ..spec import ClipSpec

Triple = tuple[int, int, int]

DEPTH_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@dataclass(frozen=True)
class NonLocalConfig:
    """Options shared by every non-local block of a network (see :class:`NonLocalBlock`)."""

    pairwise: str = "embedded_gaussian"  # the paper's default instantiation
    dims: str = "spacetime"  # the paper's main results attend over space and time
    subsample: bool = True  # 1x2x2 max pool on phi/g: 4x fewer keys, as in the paper
    pool_first: bool = True  # Caffe2/PySlowFast pool the input before phi/g; mmcv after
    use_scale: bool = True  # Caffe2/PySlowFast scale logits by 1/sqrt(C'); mmaction2 configs do not
    norm: bool = True  # BN after W with zero-initialised gamma: a new block is the identity
    w_bias: bool = True  # Caffe2/PySlowFast: bias on W; mmcv: none (BN follows)
    bn_eps: float = 1e-5

    def block(self, channels: int, time_groups: int = 1) -> NonLocalBlock:
        return NonLocalBlock(
            channels,
            pairwise=self.pairwise,
            dims=self.dims,
            subsample=self.subsample,
            pool_first=self.pool_first,
            use_scale=self.use_scale,
            norm=self.norm,
            w_bias=self.w_bias,
            bn_eps=self.bn_eps,
            time_groups=time_groups,
        )


NL_PLACEMENT = {  # residual blocks followed by a non-local block, per stage
    5: ((), (1, 3), (1, 3, 5)),
    10: ((), (0, 1, 2, 3), (0, 1, 2, 3, 4, 5)),
    0: ((), (), ()),
}


@dataclass(frozen=True)
class ResNet3dConfig:
    """Everything that distinguishes one ResNet-3D non-local network from another.

    Per-stage tuples list res2, res3, res4, res5 in order.
    """

    blocks: tuple[int, int, int, int] = DEPTH_BLOCKS[50]  # residual blocks per stage (R50)
    base_channels: int = 64  # width of res2's bottleneck; stage s has base * 2**(s-2), x4 out
    conv1_kernel: Triple = (5, 7, 7)  # I3D; C2D uses (1, 7, 7)
    conv1_stride: Triple = (1, 2, 2)
    pool1_kernel: Triple | None = (1, 3, 3)  # None: no pool1 (tiny models on small frames)
    pool1_stride: Triple = (1, 2, 2)
    pool1_padding: Triple = (0, 0, 0)  # Caffe2 pads 0 (55x55 after a 224 crop); SlowFast/mmaction 1
    pool2: bool = True  # max pool 2x1x1 after res2: halves time, as in the paper's Table 1
    # temporal kernel size (1 or 3) of each residual block; I3D "every other" pattern by default
    temporal_kernels: tuple[tuple[int, ...], ...] = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
    inflate_conv: str = "a"  # which conv carries the temporal kernel: "a" (1x1 -> 3x1x1) or "b" (3x3 -> 3x3x3)
    stage_strides: Triple | tuple[int, int, int, int] = (1, 2, 2, 2)  # spatial stride of each stage
    # indices of the residual blocks followed by a non-local block, per stage; paper's 5-block set
    nonlocal_blocks: tuple[tuple[int, ...], ...] = ((), (1, 3), (1, 3, 5), ())
    nonlocal_time_groups: tuple[int, int, int, int] = (1, 1, 1, 1)  # Caffe2 "affine" models: res3 in 4s
    nonlocal_cfg: NonLocalConfig = field(default_factory=NonLocalConfig)
    bn_eps: float = 1e-5
    num_classes: int = 400
    dropout: float = 0.5
    # "clip": global average pool + linear (the paper's). "dense": per-cell logits on the res3 grid
    # from res3 and (upsampled) res4 features, without res5 (:class:`DenseHead`; the demo models' task)
    head: str = "clip"

    def __post_init__(self) -> None:
        if len(self.blocks) != 4 or len(self.temporal_kernels) != 4 or len(self.nonlocal_blocks) != 4:
            raise ValueError("blocks, temporal_kernels and nonlocal_blocks need one entry per stage (4)")
        for s, (n, tks, nls) in enumerate(zip(self.blocks, self.temporal_kernels, self.nonlocal_blocks), start=2):
            if len(tks) != n:
                raise ValueError(f"res{s}: {n} blocks but {len(tks)} temporal kernel sizes")
            if any(not 0 <= i < n for i in nls):
                raise ValueError(f"res{s}: non-local block index out of range 0..{n - 1}: {nls}")
        if self.head not in ("clip", "dense"):
            raise ValueError(f"head must be 'clip' or 'dense', got {self.head!r}")
        if self.inflate_conv not in ("a", "b"):
            raise ValueError(f"inflate_conv must be 'a' or 'b', got {self.inflate_conv!r}")

    @property
    def num_nonlocal(self) -> int:
        return sum(len(s) for s in self.nonlocal_blocks)

    def with_(self, **changes) -> "ResNet3dConfig":
        return replace(self, **changes)


def _conv(cin: int, cout: int, kernel: Triple, stride: Triple = (1, 1, 1)) -> nn.Conv3d:
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1 convs, x4 expansion) with an optional non-local block after it.

    x (N, C_in, T, H, W) -> (N, 4 * width, T, H / stride, W / stride).
    """

    def __init__(
        self,
        cin: int,
        width: int,
        *,
        stride: int,
        temporal_kernel: int,
        inflate_conv: str,
        bn_eps: float,
        nonlocal_block: NonLocalBlock | None = None,
    ) -> None:
        super().__init__()
        cout = 4 * width
        ka = (temporal_kernel, 1, 1) if inflate_conv == "a" else (1, 1, 1)
        kb = (temporal_kernel, 3, 3) if inflate_conv == "b" else (1, 3, 3)
        self.conv_a = _conv(cin, width, ka)
        self.bn_a = nn.BatchNorm3d(width, eps=bn_eps)
        self.conv_b = _conv(width, width, kb, (1, stride, stride))
        self.bn_b = nn.BatchNorm3d(width, eps=bn_eps)
        self.conv_c = _conv(width, cout, (1, 1, 1))
        self.bn_c = nn.BatchNorm3d(cout, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=(1, stride, stride), bias=False), nn.BatchNorm3d(cout, eps=bn_eps)
            )
        self.nl = nonlocal_block

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn_a(self.conv_a(x)))
        out = self.relu(self.bn_b(self.conv_b(out)))
        out = self.bn_c(self.conv_c(out))
        out = self.relu(out + identity)
        if self.nl is not None:
            out = self.nl(out)
        return out


class Stem(nn.Module):
    """conv1 + BN + ReLU + pool1: (N, 3, T, H, W) -> (N, base, T / st, H / 4, W / 4) (with pool1)."""

    def __init__(self, cfg: ResNet3dConfig) -> None:
        super().__init__()
        pad = tuple(k // 2 for k in cfg.conv1_kernel)
        self.conv = nn.Conv3d(3, cfg.base_channels, cfg.conv1_kernel, stride=cfg.conv1_stride, padding=pad, bias=False)
        self.bn = nn.BatchNorm3d(cfg.base_channels, eps=cfg.bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.pool = (
            None
            if cfg.pool1_kernel is None
            else nn.MaxPool3d(cfg.pool1_kernel, stride=cfg.pool1_stride, padding=cfg.pool1_padding)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn(self.conv(x)))
        return x if self.pool is None else self.pool(x)


class Head(nn.Module):
    """Global average pool over (T, H, W), dropout, a linear classifier: (N, C, T, H, W) -> (N, classes)."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))


class DenseHead(nn.Module):
    """Per-cell logits on the res3 grid: res3 features and res4 features (nearest-upsampled to the
    res3 grid), concatenated, a 1x1x1 conv + BN + ReLU, a 1x1x1 conv to the classes.

    (N, C3, T, H, W), (N, C4, T, H / s, W / s) -> (N, classes, T, H, W).
    """

    def __init__(self, c3: int, c4: int, num_classes: int, bn_eps: float) -> None:
        super().__init__()
        hidden = c3
        self.mix = nn.Conv3d(c3 + c4, hidden, 1, bias=False)
        self.bn = nn.BatchNorm3d(hidden, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Conv3d(hidden, num_classes, 1)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x3: Tensor, x4: Tensor) -> Tensor:
        up = nn.functional.interpolate(x4, size=x3.shape[2:], mode="nearest")  # (N, C4, T, H, W)
        return self.fc(self.relu(self.bn(self.mix(torch.cat([x3, up], dim=1)))))


class ResNet3d(nn.Module):
    """C2D / I3D ResNet with non-local blocks. forward: normalized clip (N, 3, T, H, W) -> logits (N, classes).

    ``spec`` (a frozen :class:`~nlviz.spec.ClipSpec`) says how to build that clip from a video;
    ``arch`` and ``overrides`` the registry name and build arguments it stands for. With ``cfg.head == "dense"`` there is no res5: :meth:`dense_logits` gives per-cell logits on the
    res3 grid (N, classes, T', H', W'), and ``forward`` their mean over every cell (N, classes), the
    share of the clip each class is given, so code that expects clip logits keeps working.
    """

    def __init__(
        self, cfg: ResNet3dConfig, spec: ClipSpec | None = None, *, arch: str | None = None,
        overrides: dict | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec or ClipSpec()
        # the registry name and keyword overrides it was built from (nlviz.models.build): enough to
        # rebuild it, which nlviz.weights.save_weights records; None for a network built by hand
        self.arch = arch
        self.build_overrides = dict(overrides or {})
        self.stem = Stem(cfg)
        cin = cfg.base_channels
        stage_out = []
        for s in range(3 if cfg.head == "dense" else 4):
            width = cfg.base_channels * 2**s
            stage = []
            for i in range(cfg.blocks[s]):
                nl = None
                if i in cfg.nonlocal_blocks[s]:
                    nl = cfg.nonlocal_cfg.block(4 * width, cfg.nonlocal_time_groups[s])
                stage.append(
                    Bottleneck(
                        cin,
                        width,
                        stride=cfg.stage_strides[s] if i == 0 else 1,
                        temporal_kernel=cfg.temporal_kernels[s][i],
                        inflate_conv=cfg.inflate_conv,
                        bn_eps=cfg.bn_eps,
                        nonlocal_block=nl,
                    )
                )
                cin = 4 * width
            self.add_module(f"res{s + 2}", nn.Sequential(*stage))
            stage_out.append(cin)
            if s == 0:
                self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1)) if cfg.pool2 else nn.Identity()
        if cfg.head == "dense":
            self.head = DenseHead(stage_out[1], stage_out[2], cfg.num_classes, cfg.bn_eps)
        else:
            self.head = Head(cin, cfg.num_classes, cfg.dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for name, m in self.named_modules():
            if ".nl" in name:
                continue  # non-local blocks initialise themselves (identity at start)
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # zero the last BN of each residual branch (a block starts as identity)
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn_c.weight)

    def features(self, x: Tensor) -> Tensor:
        """The res5 feature map (N, C, T', H', W') before pooling."""
        x = self.stem(x)
        x = self.pool2(self.res2(x))
        return self.res5(self.res4(self.res3(x)))

    def dense_logits(self, x: Tensor) -> Tensor:
        """Dense head only: per-cell logits (N, classes, T', H', W') on the res3 grid."""
        if self.cfg.head != "dense":
            raise ValueError("dense_logits needs a model built with head='dense'")
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a clip tensor (N, 3, T, H, W), got shape {tuple(x.shape)}")
        x3 = self.res3(self.pool2(self.res2(self.stem(x))))
        return self.head(x3, self.res4(x3))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a clip tensor (N, 3, T, H, W), got shape {tuple(x.shape)}")
        if self.cfg.head == "dense":
            return self.dense_logits(x).mean(dim=(2, 3, 4))
        return self.head(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["DEPTH_BLOCKS", "NL_PLACEMENT", "Bottleneck", "DenseHead", "NonLocalConfig", "ResNet3d", "ResNet3dConfig", "count_parameters"]
