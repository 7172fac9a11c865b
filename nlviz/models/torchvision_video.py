"""torchvision's video transformers: MViT v1/v2 and Video Swin (Swin3D), through nlviz's views.

The networks are torchvision's own (``torchvision.models.video.mvit_v1_b``, ``mvit_v2_s``,
``swin3d_t``, ``swin3d_s``, ``swin3d_b``), built by its builders; nothing of their code is copied
or changed. Capture is a :class:`nlviz.capture.CaptureAdapter` registered when this module is
imported: hooks, registered and removed per capture, read what each attention module multiplies,
and :class:`nlviz.capture_tokens.TokenCapture` computes rows on demand.

- MViT (``MultiscaleAttention``): the queries and keys after pooling (``pool_q`` / ``pool_k``
  return the tensor and its (T, H, W) grid; where a block has no pool module, q or k is read off
  the ``qkv`` projection), the block's ``scaler``, the class token as token 0 (reported as the
  extra weight, never drawn on the grid) and, in v2, the decomposed relative position bias: it
  depends on the query, so :class:`MViTRelPosRule` computes it for the queries asked for, from
  tables made on first use by torchvision's own ``_add_rel_pos``.
- Swin3D (``ShiftedWindowAttention3d``): the module applies ``qkv`` functionally, so a hook on
  ``qkv`` never fires; a pre-hook takes the block's input and recomputes q and k from the
  module's own parameters (torchvision's window/shift adaptation and padding functions), and
  :class:`SwinWindowRule` gives each query the keys of its (shifted) window, the relative position
  bias (torchvision's ``_get_relative_position_bias``) and the shifted-window mask: keys outside
  the window are exactly 0. Zero-padded tokens (grids that are not window multiples) are keys
  the model attends to: they are the extra tokens, labelled "padding".

The weights (Kinetics-400) are torchvision's: URL, file name (with its sha256 prefix),
preprocessing and clip length are read from the weight enums at run time; nlviz's download path
fetches the file (never torchvision's hub cache) and :func:`load` reads the state dict.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..capture import CaptureAdapter, CaptureError, HookContext, register_adapter
from ..capture_tokens import AttentionRule, Terms, TokenCapture
from ..spec import ClipSpec
from ..video.errors import VideoError
from .family import BlockInfo, Family

KINETICS_FPS = 30.0  # Kinetics-400 videos are (mostly) 30 fps: torchvision's frame_rate -> a frame stride

ARCH_NAMES = ("mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b")
_WEIGHTS_ENUM = {
    "mvit_v1_b": "MViT_V1_B_Weights",
    "mvit_v2_s": "MViT_V2_S_Weights",
    "swin3d_t": "Swin3D_T_Weights",
    "swin3d_s": "Swin3D_S_Weights",
    "swin3d_b": "Swin3D_B_Weights",
}
_TITLES = {
    "mvit_v1_b": "MViT v1 B (Fan et al., ICCV 2021)",
    "mvit_v2_s": "MViT v2 S (Li et al., CVPR 2022)",
    "swin3d_t": "Video Swin T (Liu et al., CVPR 2022)",
    "swin3d_s": "Video Swin S (Liu et al., CVPR 2022)",
    "swin3d_b": "Video Swin B (Liu et al., CVPR 2022)",
}
CITATIONS = {
    "mvit": "Haoqi Fan, Bo Xiong, Karttikeya Mangalam, Yanghao Li, Zhicheng Yan, Jitendra Malik, Christoph "
            "Feichtenhofer. Multiscale Vision Transformers. ICCV 2021. arXiv:2104.11227",
    "mvit_v2": "Yanghao Li, Chao-Yuan Wu, Haoqi Fan, Karttikeya Mangalam, Bo Xiong, Jitendra Malik, Christoph "
               "Feichtenhofer. MViTv2: Improved Multiscale Vision Transformers for Classification and Detection. "
               "CVPR 2022. arXiv:2112.01526",
    "swin3d": "Ze Liu, Jia Ning, Yue Cao, Yixuan Wei, Zheng Zhang, Stephen Lin, Han Hu. Video Swin Transformer. "
              "CVPR 2022. arXiv:2106.13230",
}
_WEIGHT_ORIGIN = {  # whose release torchvision ported each model's weights from (its meta's recipe)
    "mvit": "facebookresearch/pytorchvideo",
    "mvit_v2": "facebookresearch/SlowFast",
    "swin3d": "SwinTransformer/Video-Swin-Transformer",
}


def license_of(family: str) -> str:
    """The terms of a torchvision video model's weights, as the app shows them."""
    return (f"Apache-2.0 (the weights of {_WEIGHT_ORIGIN[family]}, ported by torchvision; torchvision's code is "
            "BSD-3-Clause); trained on Kinetics-400, whose videos keep their own terms")


def _tv():
    import torchvision.models.video as tvv

    return tvv


def _mvit_mod():
    from torchvision.models.video import mvit

    return mvit


def _swin_mod():
    from torchvision.models.video import swin_transformer

    return swin_transformer


def weights_enum(arch: str):
    """torchvision's weights enum member of ``arch``'s Kinetics-400 weights (KINETICS400_V1)."""
    try:
        return getattr(getattr(_tv(), _WEIGHTS_ENUM[arch]), "KINETICS400_V1")
    except KeyError:
        raise KeyError(f"{arch!r} is not an architecture of the torchvision_video family") from None


def _doc_number(doc: str, key: str) -> float | None:
    m = re.search(rf"{key}=([0-9.]+)", doc)
    return float(m.group(1)) if m else None


def spec_of(weights) -> ClipSpec:
    """The clip a torchvision weights enum member expects, from its transforms and meta.

    Crop, resize and mean/std come from ``weights.transforms()`` (torchvision's
    VideoClassification preset, on 0-1 pixels: scaled to 0-255 here); the clip length and frame
    rate from the accuracy note in ``meta["_docs"]`` (``clip_len``, ``frame_rate``), the frame
    stride being the source rate (30 fps for Kinetics) over that rate.
    """
    t = weights.transforms()
    doc = str(weights.meta.get("_docs", ""))
    clip_len = _doc_number(doc, "clip_len")
    frame_rate = _doc_number(doc, "frame_rate")
    num_frames = int(clip_len) if clip_len else int(weights.meta.get("min_temporal_size", 16))
    stride = max(1, round(KINETICS_FPS / frame_rate)) if frame_rate else 1
    return ClipSpec(
        num_frames=num_frames,
        stride=stride,
        short_side=int(list(t.resize_size)[0]),
        crop_size=int(list(t.crop_size)[0]),
        mean=tuple(round(255 * float(m), 4) for m in t.mean),
        std=tuple(round(255 * float(s), 4) for s in t.std),
        channel_order="RGB",
        labels="kinetics400",
        extra={"frame_rate": frame_rate, "min_temporal_size": weights.meta.get("min_temporal_size"),
               "interpolation": str(getattr(t, "interpolation", ""))},
    )


@dataclass(frozen=True)
class TorchvisionVideoConfig:
    """What nlviz knows of one torchvision video architecture before building it."""

    arch: str  # torchvision's builder name (= the registry name)
    kind: str  # "mvit" or "swin3d"
    num_classes: int = 400
    weights: str = "KINETICS400_V1"  # the enum member the default spec is read from


def _arch_fn(arch: str):
    def fn() -> tuple[TorchvisionVideoConfig, ClipSpec]:
        return TorchvisionVideoConfig(arch=arch, kind="mvit" if arch.startswith("mvit") else "swin3d"), \
            spec_of(weights_enum(arch))

    return fn


ARCHS = {arch: _arch_fn(arch) for arch in ARCH_NAMES}
_SPEC_FIELDS = {"num_frames", "stride", "short_side", "crop_size", "mean", "std", "channel_order", "labels"}


def build(arch: str, **overrides) -> nn.Module:
    """torchvision's ``arch`` with random weights, eval mode, as torchvision builds it (nothing is
    attached to the module: its clip is the family's config or the entry's, carried by the
    :class:`~nlviz.loaded.LoadedModel` the resolver returns).

    Overrides: ``num_classes`` and any :class:`~nlviz.spec.ClipSpec` field. torchvision's MViT
    builders fix the input size (16 x 224 x 224: its position embeddings), so MViT's
    ``num_frames`` and ``crop_size`` stay; a clip of another size must be resampled to it
    (:func:`check_clip`).
    """
    if arch not in ARCHS:
        raise KeyError(f"{arch!r} is not an architecture of the torchvision_video family")
    # an entry's build_kwargs() name the attention as the paper's pairwise function and dims: these
    # networks' self-attention is the embedded Gaussian over space-time, and only that
    if overrides.pop("pairwise", "embedded_gaussian") != "embedded_gaussian" or \
            overrides.pop("dims", "spacetime") != "spacetime":
        raise TypeError(f"{arch}'s attention is softmax self-attention (embedded_gaussian over spacetime): "
                        "pairwise and dims cannot change")
    unknown = set(overrides) - _SPEC_FIELDS - {"num_classes"}
    if unknown:
        raise TypeError(f"unknown override(s) for {arch}: {sorted(unknown)}")
    cfg, spec = ARCHS[arch]()
    spec = spec.with_(**{k: v for k, v in overrides.items() if k in _SPEC_FIELDS})
    num_classes = int(overrides.get("num_classes", cfg.num_classes))
    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if cfg.kind == "mvit":
        default = ARCHS[arch]()[1]
        if (spec.num_frames, spec.crop_size) != (default.num_frames, default.crop_size):
            raise ValueError(
                f"torchvision's {arch} builder fixes the input at {default.num_frames} frames of "
                f"{default.crop_size}x{default.crop_size} (its position embeddings): num_frames and crop_size "
                f"cannot change; clips are resampled to {default.num_frames} frames instead")
    return getattr(_tv(), arch)(**kwargs).eval()  # torchvision's module as it is: nothing attached


# --- blocks -------------------------------------------------------------------------------------


def _attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    mvit, swin = _mvit_mod(), _swin_mod()
    kinds = (mvit.MultiscaleAttention, swin.ShiftedWindowAttention3d)
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


def _triple(v) -> tuple[int, int, int]:
    v = tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v, v, v)))
    return v if len(v) == 3 else (1, 1, 1)


def _mvit_blocks(model: nn.Module) -> list[BlockInfo]:
    stride = list(_triple(model.conv_proj.stride))
    out, scale, last = [], 0, None
    for i, blk in enumerate(model.blocks):
        attn = blk.attn
        if attn.pool_q is not None:
            stride = [s * q for s, q in zip(stride, _triple(attn.pool_q.pool.stride))]
        if last is not None and tuple(stride) != last:
            scale += 1
        last = tuple(stride)
        heads = int(attn.num_heads)
        rel = " + rel. pos." if attn.rel_pos_h is not None else ""
        name = f"blocks.{i}.attn"
        out.append(BlockInfo(name=name, stage=f"scale{scale + 1}", stride=tuple(stride), kind="self_attention",
                             label=f"{name} (self-attention, {heads} head{'s' * (heads > 1)}{rel}, "
                                   f"{stride[1]} px)",
                             heads=heads, depth=len(out)))
    return out


def _swin_blocks(model: nn.Module) -> list[BlockInfo]:
    swin = _swin_mod()
    stride = list(_triple(model.patch_embed.tuple_patch_size))
    out, stage = [], 0
    for i, layer in enumerate(model.features):
        if not isinstance(layer, nn.Sequential):  # PatchMerging: 2x2 in space
            stride = [stride[0], stride[1] * 2, stride[2] * 2]
            continue
        stage += 1
        for j, blk in enumerate(layer):
            attn = getattr(blk, "attn", None)
            if not isinstance(attn, swin.ShiftedWindowAttention3d):
                continue
            shifted = sum(attn.shift_size) > 0
            win = "x".join(map(str, attn.window_size))
            heads = int(attn.num_heads)
            name = f"features.{i}.{j}.attn"
            out.append(BlockInfo(name=name, stage=f"stage{stage}", stride=tuple(stride), kind="window_attention",
                                 label=f"{name} ({'shifted ' if shifted else ''}window {win}, {heads} heads, "
                                       f"{stride[1]} px)",
                                 heads=heads, depth=len(out)))
    return out


def blocks(model: nn.Module) -> list[BlockInfo]:
    """The attention blocks of a torchvision MViT or SwinTransformer3d, in forward order."""
    model = getattr(model, "model", model)
    tvv = _tv()
    if isinstance(model, tvv.MViT):
        return _mvit_blocks(model)
    if isinstance(model, tvv.SwinTransformer3d):
        return _swin_blocks(model)
    raise TypeError(f"{type(model).__name__} is not a torchvision MViT or SwinTransformer3d")


def default_block(model: nn.Module) -> str | None:
    """The block shown first: MViT's first block after the first query pooling (finer maps with
    pooled keys); Swin's first shifted-window block."""
    infos = blocks(model)
    if not infos:
        return None
    for b in infos:
        if b.kind == "window_attention" and "shifted" in b.label:
            return b.name
    first = infos[0].stride
    for b in infos:
        if b.stride != first:
            return b.name
    return infos[0].name


# --- capture: MViT ------------------------------------------------------------------------------


class MViTRelPosRule(AttentionRule):
    """MViT v2's decomposed relative position bias, computed for the queries asked for.

    The model adds ``q . R_h[h, k_h] + q . R_w[w, k_w] + q . R_t[t, k_t]`` (q: the pooled,
    unscaled query of cell (t, h, w)) to the logits of every grid key (k_t, k_h, k_w); the class
    token's row and column get none. R_h, R_w, R_t (query size x key size x d per axis) are
    read off torchvision's ``_add_rel_pos`` the first time a row is asked for, by running it on
    one axis at a time with unit queries (so the distances, ratios and interpolation are its own).
    """

    describe = "global, decomposed relative position bias"

    def __init__(self, rel_pos: tuple[Tensor, Tensor, Tensor], q_thw, k_thw) -> None:
        # the module's (t, h, w) tables, detached (not copied); the per-axis tables are made on
        # first use, so the forward pass pays nothing for them
        self._rel_pos = tuple(p.detach() for p in rel_pos)
        self._sizes = tuple((int(q), int(k)) for q, k in zip(q_thw, k_thw))
        self._tables: tuple[Tensor, Tensor, Tensor] | None = None

    def tables(self) -> tuple[Tensor, Tensor, Tensor]:
        """(R_t, R_h, R_w), each (query size, key size, d) along its axis."""
        if self._tables is None:
            with torch.no_grad():
                self._tables = tuple(self.axis_table(p, a, q, k)
                                     for a, (p, (q, k)) in enumerate(zip(self._rel_pos, self._sizes)))
        return self._tables

    @property
    def r_t(self) -> Tensor:
        return self.tables()[0]

    @property
    def r_h(self) -> Tensor:
        return self.tables()[1]

    @property
    def r_w(self) -> Tensor:
        return self.tables()[2]

    @property
    def nbytes(self) -> int:
        """The per-axis tables (made on first use; the module's own tables are not counted: they
        are its parameters, shared)."""
        d = self._rel_pos[0].shape[1]
        return 4 * d * sum(q * k for q, k in self._sizes)

    @staticmethod
    def axis_table(rel_pos: Tensor, axis: int, q_size: int, k_size: int) -> Tensor:
        """(q_size, k_size, d): the table torchvision gathers for one axis (0: t, 1: h, 2: w)."""
        add_rel_pos = _mvit_mod()._add_rel_pos
        d = rel_pos.shape[1]
        q_thw, k_thw = [1, 1, 1], [1, 1, 1]
        q_thw[axis], k_thw[axis] = q_size, k_size
        eye = torch.eye(d, dtype=rel_pos.dtype, device=rel_pos.device)
        # heads = d unit vectors: "head" c of query i is e_c, so its bias on key j is R[i, j, c]
        q = torch.zeros((1, d, 1 + q_size, d), dtype=rel_pos.dtype, device=rel_pos.device)
        q[0, :, 1:, :] = eye[:, None, :]
        attn = torch.zeros((1, d, 1 + q_size, 1 + k_size), dtype=rel_pos.dtype, device=rel_pos.device)
        zero = torch.zeros_like(rel_pos[:1])
        tables = [zero, zero, zero]
        tables[axis] = rel_pos
        out = add_rel_pos(attn, q, tuple(q_thw), tuple(k_thw), tables[1], tables[2], tables[0])
        return out[0, :, 1:, 1:].permute(1, 2, 0).contiguous()  # (q_size, k_size, d)

    @classmethod
    def from_module(cls, attn: nn.Module, q_thw, k_thw) -> "MViTRelPosRule":
        return cls((attn.rel_pos_t, attn.rel_pos_h, attn.rel_pos_w), q_thw, k_thw)

    def terms(self, capture: TokenCapture, tokens: Tensor, batch: int) -> Terms:
        qt, qh, qw = capture.query_shape
        kt, kh, kw = capture.key_shape
        grid = tokens >= capture.query_extra
        cell = (tokens - capture.query_extra).clamp(min=0)
        t, h, w = cell // (qh * qw), (cell // qw) % qh, cell % qw
        q = capture.q[batch].index_select(1, tokens).float()  # (heads, Q, d), unscaled
        dev = q.device
        r_t, r_h, r_w = (r.to(dev).float() for r in self.tables())
        b_t = torch.einsum("hqd,qkd->hqk", q, r_t[t])
        b_h = torch.einsum("hqd,qkd->hqk", q, r_h[h])
        b_w = torch.einsum("hqd,qkd->hqk", q, r_w[w])
        rel = (b_h[:, :, None, :, None] + b_w[:, :, None, None, :] + b_t[:, :, :, None, None])
        rel = rel.reshape(q.shape[0], len(tokens), kt * kh * kw) * grid[None, :, None]
        bias = torch.cat([torch.zeros_like(rel[:, :, :capture.key_extra]), rel], dim=2)
        return Terms(bias=bias)


def _hook_mvit(name: str, attn: nn.Module, ctx: HookContext) -> list:
    state: dict[str, Any] = {}
    heads, hd = int(attn.num_heads), int(attn.head_dim)

    def on_input(_m, args):
        if ctx.mine():
            state.clear()
            state["thw"] = tuple(int(s) for s in args[1])

    def on_qkv(_m, args, out):
        if not ctx.mine():
            return
        b, n, _ = out.shape
        q, k, _v = out.detach().reshape(b, n, 3, heads, hd).transpose(1, 3).unbind(dim=2)
        if attn.pool_q is None:  # copies: keep q/k, not the v that shares their storage
            state["q"], state["q_thw"] = ctx.keep(q.contiguous().clone()), state.get("thw")
        if attn.pool_k is None:
            state["k"], state["k_thw"] = ctx.keep(k.contiguous().clone()), state.get("thw")

    def on_pool(which: str):
        def hook(_m, args, out):
            if ctx.mine():
                x, thw = out
                state[which], state[f"{which}_thw"] = ctx.keep(x), tuple(int(s) for s in thw)

        return hook

    def on_output(_m, args, out):
        if not ctx.mine():
            return
        if not all(key in state for key in ("q", "k", "q_thw", "k_thw")):
            raise CaptureError(f"block {name}: the MViT attention ran without its q/k being seen")
        q, k = state.pop("q"), state.pop("k")
        q_thw, k_thw = state["q_thw"], state["k_thw"]
        rule = None
        if attn.rel_pos_h is not None and attn.rel_pos_w is not None and attn.rel_pos_t is not None:
            rule = MViTRelPosRule.from_module(attn, q_thw, k_thw)
        ctx.store(TokenCapture(name=name, q=q, k=k, query_grid=q_thw, key_grid=k_thw, input_shape=ctx.input_shape,
                               scale=float(attn.scaler), query_extra=1, key_extra=1, extra_label="class token",
                               rule=rule, kind="self_attention"))
        state.clear()

    handles = [attn.register_forward_pre_hook(on_input)]
    if attn.pool_q is None or attn.pool_k is None:
        handles.append(attn.qkv.register_forward_hook(on_qkv))
    if attn.pool_q is not None:
        handles.append(attn.pool_q.register_forward_hook(on_pool("q")))
    if attn.pool_k is not None:
        handles.append(attn.pool_k.register_forward_hook(on_pool("k")))
    handles.append(attn.register_forward_hook(on_output))
    return handles


# --- capture: Swin3D ----------------------------------------------------------------------------


class SwinWindowRule(AttentionRule):
    """Video Swin's (shifted) window attention for any set of queries.

    The model pads the grid to window multiples (padding tokens: the capture's extra keys),
    rolls it by ``-shift``, cuts it into windows, and adds the relative position bias and, when
    shifted, -100 between tokens that came from different regions of the roll. A query here sees
    the keys of its window from its own region (the -100 keys are left out: exactly 0, where the
    model gives them e^-100 of a row); the bias is torchvision's ``_get_relative_position_bias``
    of the module's table, recomputed on demand (it is not kept: heads x window^2 floats).
    """

    def __init__(self, grid, padded, window, shift, table: Tensor, index: Tensor) -> None:
        self.grid, self.padded = tuple(grid), tuple(padded)
        self.window, self.shift = tuple(window), tuple(shift)
        self.table, self.index = table, index  # the module's parameter and buffer (not copied)
        self.shifted = sum(self.shift) > 0
        w = "x".join(map(str, self.window))
        self.describe = f"{'shifted ' if self.shifted else ''}window {w}"
        # key token of every padded position: padding tokens first (the extras), then the grid
        tp, hp, wp = self.padded
        t, h, w_ = self.grid
        pt, ph, pw = torch.meshgrid(torch.arange(tp), torch.arange(hp), torch.arange(wp), indexing="ij")
        real = ((pt < t) & (ph < h) & (pw < w_)).reshape(-1)
        token = torch.empty(tp * hp * wp, dtype=torch.long)
        token[~real] = torch.arange(int((~real).sum()))
        n_pad = int((~real).sum())
        token[real] = n_pad + torch.arange(t * h * w_)
        self.n_pad = n_pad
        self.key_token = token

    @property
    def nbytes(self) -> int:
        return int(self.key_token.nbytes)

    def _region(self, r: Tensor, axis: int) -> Tensor:
        """Which of the roll's three regions a rolled coordinate lies in (0 everywhere when unshifted)."""
        p, w, s = self.padded[axis], self.window[axis], self.shift[axis]
        if not self.shifted or s == 0:
            return torch.zeros_like(r)
        return (r >= p - w).long() + (r >= p - s).long()

    def window_order(self) -> Tensor:
        """(padded T*H*W,) long: for each padded grid position (T-major), its row in torchvision's
        window partition (window n * window volume + in-window index i), after the roll."""
        win, pad, shift = (torch.tensor(v) for v in (self.window, self.padded, self.shift))
        pos = torch.stack(torch.meshgrid(*(torch.arange(int(p)) for p in self.padded), indexing="ij"), -1)
        pos = pos.reshape(-1, 3)
        r = (pos - shift) % pad
        nwin, a = r // win, r % win
        counts = pad // win
        n = (nwin[:, 0] * counts[1] + nwin[:, 1]) * counts[2] + nwin[:, 2]
        i = (a[:, 0] * win[1] + a[:, 1]) * win[2] + a[:, 2]
        return n * int(win.prod()) + i

    def window_box(self, cell) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """The grid cells the query at ``cell`` sees: half-open ranges ((t0, t1), (h0, h1), (w0, w1)).

        A query's keys are its window's, from its own region of the roll: along each axis one
        contiguous range of the unrolled grid (the last rolled window splits into the part that
        came from the far end and the part that wrapped round, the query keeps its own), cut to
        the grid (padding tokens are the extra keys).
        """
        out = []
        for a in range(3):
            p, w, s = self.padded[a], self.window[a], self.shift[a]
            r = (int(cell[a]) - s) % p
            lo, hi = (r // w) * w, (r // w) * w + w
            if self.shifted and s and lo == p - w:
                lo, hi = (lo, p - s) if r < p - s else (p - s, hi)
            start = (lo + s) % p
            out.append((start, min(start + hi - lo, self.grid[a])))
        return tuple(out)

    def terms(self, capture: TokenCapture, tokens: Tensor, batch: int) -> Terms:
        dev = tokens.device
        t, h, w = self.grid
        cell = tokens.cpu() - capture.query_extra
        pos = torch.stack([cell // (h * w), (cell // w) % h, cell % w], dim=1)  # (Q, 3) padded coords
        pad = torch.tensor(self.padded)
        win = torch.tensor(self.window)
        shift = torch.tensor(self.shift)
        rolled = (pos - shift) % pad
        start = (rolled // win) * win  # window origin, rolled coords
        a_q = rolled % win  # in-window coords of the query
        # every position of the window, in-window order (T-major), as torchvision partitions it
        off = torch.stack(torch.meshgrid(*(torch.arange(int(s)) for s in self.window), indexing="ij"), -1)
        off = off.reshape(-1, 3)
        r_k = start[:, None, :] + off[None]  # (Q, M, 3) rolled coords of the window's keys
        p_k = (r_k + shift) % pad  # their padded-grid coords
        tp, hp, wp = self.padded
        keys = self.key_token[(p_k[..., 0] * hp + p_k[..., 1]) * wp + p_k[..., 2]]  # (Q, M)
        valid = torch.ones(keys.shape, dtype=torch.bool)
        if self.shifted:
            for a in range(3):
                valid &= self._region(r_k[..., a], a) == self._region(rolled[:, a], a)[:, None]
        i_q = (a_q[:, 0] * win[1] + a_q[:, 1]) * win[2] + a_q[:, 2]  # (Q,) in-window index
        return Terms(keys=keys.to(dev), bias=self.bias_rows(i_q).to(dev), valid=valid.to(dev))

    def bias_rows(self, i_q: Tensor) -> Tensor:
        """(heads, Q, M): rows ``i_q`` (in-window query indices) of the window's relative position
        bias, as torchvision's ``_get_relative_position_bias`` lays it out (its index sliced to the
        window's volume, the table gathered), for those rows only."""
        vol = int(math.prod(self.window))
        idx = self.index[:vol, :vol][i_q.to(self.index.device)]  # (Q, M)
        with torch.no_grad():
            return self.table.detach()[idx.reshape(-1)].reshape(len(i_q), vol, -1).permute(2, 0, 1)

    def full_bias(self) -> Tensor:
        """(heads, M, M): the whole window bias, by torchvision's ``_get_relative_position_bias``."""
        with torch.no_grad():
            return _swin_mod()._get_relative_position_bias(self.table.detach(), self.index, list(self.window))[0]


class _ProjectionCatcher(TorchFunctionMode):
    """Keeps the output of the one ``F.linear`` call that uses ``weight`` (Swin applies its qkv
    projection functionally, so no module hook sees it). Torch-function modes are per thread:
    only the capturing thread's forward passes through it."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight, self.out = weight, None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is F.linear and self.out is None and len(args) > 1 and args[1] is self.weight:
            self.out = out
        return out


RECOMPUTE_SWIN_QK = False  # True: always recompute q/k from the block's input (the fallback path)


def _hook_swin(name: str, attn: nn.Module, ctx: HookContext) -> list:
    """q and k of a Swin block: the model's own qkv output, caught while its forward runs and put
    back from window order into grid order (one gather); recomputed from the block's input with
    the module's weights if the call was not seen (another torchvision's code)."""
    swin = _swin_mod()
    heads = int(attn.num_heads)
    state: dict[str, Any] = {}

    def finish() -> None:  # leave the catcher's mode, whatever happened to the forward
        mode = state.pop("mode", None)
        if mode is not None:
            mode.__exit__(None, None, None)

    def on_input(_m, args):
        if not ctx.mine():
            return
        finish()
        x = args[0].detach()
        b, t, h, w, c = x.shape
        window, shift = swin._get_window_and_shift_size(list(attn.shift_size), [t, h, w], list(attn.window_size))
        pad = swin._compute_pad_size_3d((t, h, w), tuple(window))
        padded = (t + pad[0], h + pad[1], w + pad[2])
        state.update(x=x, grid=(t, h, w), padded=padded, window=window, shift=shift)
        if not RECOMPUTE_SWIN_QK:
            mode = _ProjectionCatcher(attn.qkv.weight)
            mode.__enter__()
            state["mode"] = mode

    def on_output(_m, args, out):
        if not ctx.mine() or "x" not in state:
            return
        mode = state.get("mode")
        finish()
        x, (t, h, w), padded = state.pop("x"), state.pop("grid"), state.pop("padded")
        b, c = x.shape[0], x.shape[-1]
        rule = SwinWindowRule((t, h, w), padded, state.pop("window"), state.pop("shift"),
                              attn.relative_position_bias_table, attn.relative_position_index)
        n_pad = int(math.prod(padded))
        caught = None if mode is None else mode.out
        if caught is not None and tuple(caught.shape) == (b * n_pad // int(math.prod(rule.window)),
                                                         int(math.prod(rule.window)), 3 * c):
            # window order -> padded grid order, q and k only (v is never needed for rows)
            qk = caught.detach().reshape(b, n_pad, 3 * c)[:, rule.window_order().to(caught.device), :2 * c]
        else:
            xp = F.pad(x, (0, 0, 0, padded[2] - w, 0, padded[1] - h, 0, padded[0] - t))
            bias = None if attn.qkv.bias is None else attn.qkv.bias[:2 * c]
            qk = F.linear(xp, attn.qkv.weight[:2 * c], bias).reshape(b, n_pad, 2 * c)
        qk = qk.reshape(b, n_pad, 2, heads, c // heads).permute(2, 0, 3, 1, 4)  # (2, B, heads, N_padded, d)
        real = (rule.key_token >= rule.n_pad).to(qk.device)  # padded positions on the grid, in padded order
        if rule.n_pad:
            q = qk[0][:, :, real]
            k = torch.cat([qk[1][:, :, ~real], qk[1][:, :, real]], dim=2)
        else:
            q, k = qk[0].contiguous(), qk[1].contiguous()
        del qk, caught
        ctx.store(TokenCapture(name=name, q=ctx.keep(q), k=ctx.keep(k), query_grid=(t, h, w), key_grid=(t, h, w),
                               input_shape=ctx.input_shape, scale=(c // heads) ** -0.5, query_extra=0,
                               key_extra=rule.n_pad, extra_label="padding" if rule.n_pad else None, rule=rule,
                               kind="window_attention"))

    ctx.add_cleanup(finish)
    return [attn.register_forward_pre_hook(on_input), attn.register_forward_hook(on_output)]


def _hook(name: str, module: nn.Module, ctx: HookContext) -> list:
    if isinstance(module, _mvit_mod().MultiscaleAttention):
        return _hook_mvit(name, module, ctx)
    return _hook_swin(name, module, ctx)




# --- clips, checkpoints, zoo --------------------------------------------------------------------


class ClipLengthError(VideoError, ValueError):
    """A clip that does not fit a model that fixes its input size (MViT): a video problem for the
    user (the message says which sampling fits)."""


def check_clip(model: nn.Module, clip_shape) -> None:
    """Raise :class:`ClipLengthError` with what to do when an (N, 3, T, H, W) clip does not fit
    ``model`` (MViT is built for one T x H x W; Swin takes any size)."""
    model = getattr(model, "model", model)
    if not isinstance(model, _tv().MViT):
        return
    t, h, w = (int(s) for s in tuple(clip_shape)[2:])
    want_t = int(model.pos_encoding.temporal_size) * int(model.conv_proj.stride[0])
    want_h, want_w = (int(s) * int(st) for s, st in zip(model.pos_encoding.spatial_size, model.conv_proj.stride[1:]))
    if (t, h, w) != (want_t, want_h, want_w):
        raise ClipLengthError(
            f"this MViT takes clips of exactly {want_t} frames of {want_h}x{want_w} pixels (its position "
            f"embeddings fix the size), got {t} frames of {h}x{w}: sample {want_t} frames (num_frames={want_t}, "
            f"the model's own clip length; a shorter video is resampled, frames repeating) with the centre "
            f"crop of {want_h} pixels, not the full frame"
        )


def _check_input(model: nn.Module, args: tuple, kwargs: dict) -> None:
    if args and isinstance(args[0], Tensor) and args[0].dim() == 5:
        check_clip(model, tuple(args[0].shape))


def _entry(arch: str):
    from ..entry import ZooEntry
    from ..download import filename_from_url, filename_hash_prefix

    w = weights_enum(arch)
    metrics = w.meta.get("_metrics", {}).get("Kinetics-400", {})
    doc = str(w.meta.get("_docs", ""))
    family = "mvit_v2" if arch == "mvit_v2_s" else ("mvit" if arch.startswith("mvit") else "swin3d")
    filename = filename_from_url(w.url)
    return ZooEntry(
        name=f"{arch}.kinetics400_torchvision",
        source="torchvision",
        arch=arch,
        pairwise="embedded_gaussian",  # softmax of scaled q.k: the paper's embedded Gaussian, per head
        dims="spacetime",
        spec=spec_of(w),
        url=w.url,
        filename=filename,
        file_format="torch",
        num_classes=len(w.meta["categories"]),
        hash_prefix=filename_hash_prefix(filename),
        size_mb=float(w.meta["_file_size"]) * 1.048576 if w.meta.get("_file_size") else None,
        top1=metrics.get("acc@1"),
        top5=metrics.get("acc@5"),
        eval_set=f"Kinetics-400 val, video level (torchvision): {doc.split('parameters', 1)[-1].strip(' .')}"
        if "parameters" in doc else "Kinetics-400 val (torchvision)",
        license=license_of(family),
        citation=CITATIONS[family],
        page=str(w.meta.get("recipe", "https://pytorch.org/vision/stable/models.html#video-classification")),
        notes=f"{_TITLES[arch]}, torchvision's {_WEIGHTS_ENUM[arch]}.KINETICS400_V1 "
              f"({w.meta.get('num_params', '?')} parameters). Multi-head self-attention: rows are per head "
              "or their mean; the class token's weight is reported beside the map.",
    )


def entries() -> list:
    """The Kinetics-400 entries, one per architecture (torchvision's KINETICS400_V1 weights)."""
    return [_entry(arch) for arch in ARCH_NAMES]


def load_state_dict(model: nn.Module, state: dict, arch: str) -> nn.Module:
    """Load a torchvision state dict; another model's file gets the usual mismatch report
    (:class:`nlviz.checkpoints.common.CheckpointMismatchError`)."""
    from ..checkpoints.common import CheckpointMismatchError, mismatch_report

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problem = mismatch_report(missing, unexpected, shapes)
    if problem:
        raise CheckpointMismatchError(f"this checkpoint does not fit torchvision's {arch}: {problem}")
    model.load_state_dict(state)
    return model


def load(entry, path: Path, options) -> nn.Module:
    """The model of a torchvision zoo entry from its downloaded state dict (eval mode)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = build(entry.arch, num_classes=entry.num_classes,
                  **{k: getattr(entry.spec, k) for k in _SPEC_FIELDS})
    return load_state_dict(model, state, entry.arch).eval()


def owns_keys(keys: list[str]) -> bool:
    """Whether a checkpoint's tensor names are torchvision's MViT or Swin3D (its own state dict)."""
    keys = set(keys)
    mvit = "pos_encoding.class_token" in keys and "conv_proj.weight" in keys
    swin = "patch_embed.proj.weight" in keys and any(k.endswith("attn.relative_position_bias_table") for k in keys)
    return mvit or swin


def describe(arch: str) -> dict:
    cfg, spec = ARCHS[arch]()
    return {"model": _TITLES[arch], "builder": f"torchvision.models.video.{arch}",
            "clip": f"{spec.num_frames}x{spec.stride}", "crop": spec.crop_size,
            "weights": f"{_WEIGHTS_ENUM[arch]}.KINETICS400_V1"}


# capture finds and hooks these models' attention once this module is imported
ADAPTER = register_adapter(CaptureAdapter(name="torchvision_video", find=_attention_modules, hook=_hook,
                                          check_input=_check_input))


FAMILY = Family(
    name="torchvision_video",
    title="torchvision's video transformers: MViT v1/v2 and Video Swin (Kinetics-400)",
    archs=ARCHS,
    build=build,
    blocks=blocks,
    entries=entries,
    load=load,
    owns_keys=owns_keys,
    describe=describe,
    default_block=default_block,
)

__all__ = [
    "ADAPTER", "ARCHS", "ARCH_NAMES", "ClipLengthError", "FAMILY", "MViTRelPosRule", "SwinWindowRule",
    "TorchvisionVideoConfig", "blocks", "build", "check_clip", "default_block", "entries", "load", "owns_keys",
    "spec_of", "weights_enum",
]
