"""The non-local block of Wang, Girshick, Gupta and He, "Non-local Neural Networks" (CVPR 2018).

    y_i = 1 / C(x) * sum_j f(x_i, x_j) g(x_j)          z_i = W_z y_i + x_i

i and j range over the cells of a (T, H, W) feature map: all of them ("spacetime"), those of
the query's own frame ("space"), or those at the query's own pixel ("time"). g, theta and phi
are 1x1x1 convolutions to C' channels (C' = C/2 by default); phi and g may be max-pooled 1x2x2
("subsampling"), which makes the key grid coarser than the query grid.

The four pairwise functions (section 3.2 of the paper):

    gaussian            f = exp(x_i . x_j) on the raw input     C(x) = sum_j f   (a softmax)
    embedded_gaussian   f = exp(theta_i . phi_j)                C(x) = sum_j f   (a softmax)
    dot_product         f = theta_i . phi_j                     C(x) = N_keys
    concatenation       f = ReLU(w_f . [theta_i, phi_j])        C(x) = N_keys

The keyword options cover exactly what differs between the implementations whose checkpoints
nlviz loads: the official Caffe2 release (video-nonlocal-net) and PySlowFast pool the input
*before* the phi/g convolutions, scale the logits by 1/sqrt(C') and give every conv a bias;
mmcv's ``NonLocal3d`` (used by mmaction2) pools *after* the convolutions, has no scale in its
Kinetics configs and no bias on W (a BatchNorm follows it).

Attention is reachable from outside without touching the block: ``theta``, ``phi`` and ``g``
are named submodules whose outputs are the factors of the affinity (already pooled where
pooling applies), and ``concat_project`` holds w_f for the concatenation variant.
:mod:`nlviz.capture` hooks those submodules and recomputes any row of the affinity with
:func:`affinity`, the same function the block's forward uses.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .names import DIMS, PAIRWISE

Pairwise = Literal["gaussian", "embedded_gaussian", "dot_product", "concatenation"]
Dims = Literal["spacetime", "space", "time"]

SOFTMAX_PAIRWISE = frozenset({"gaussian", "embedded_gaussian"})


class Projection(nn.Module):
    """A 1x1x1 convolution (or none) and an optional 1x2x2 max pool, in either order.

    Its output is one factor of the affinity (theta, phi) or the value path (g), so a forward
    hook on it sees exactly what the attention is computed from.
    ``conv`` is None for the gaussian variant, whose theta/phi are the raw input.
    """

    def __init__(
        self, in_channels: int, out_channels: int | None, *, pool: bool, pool_first: bool, bias: bool
    ) -> None:
        super().__init__()
        self.conv = None if out_channels is None else nn.Conv3d(in_channels, out_channels, 1, bias=bias)
        self.pool = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2)) if pool else None
        self.pool_first = pool_first

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None and self.pool_first:
            x = self.pool(x)
        if self.conv is not None:
            x = self.conv(x)
        if self.pool is not None and not self.pool_first:
            x = self.pool(x)
        return x


def key_index(query_size: int, key_size: int) -> Tensor:
    """For each query position along one spatial axis, the key position that covers it.

    Keys come from a floor-mode max pool of stride s = query_size // key_size (2 when
    subsampled, else 1), so key k covers queries [k*s, (k+1)*s); the odd last query row
    that a floor-mode pool drops is mapped to the last key.
    """
    stride = max(query_size // key_size, 1)
    return torch.clamp(torch.arange(query_size) // stride, max=key_size - 1)


def allowed_keys(
    dims: str, query_shape: tuple[int, int, int], key_shape: tuple[int, int, int], time_groups: int = 1
) -> Tensor | None:
    """Boolean mask (N_q, N_k) of the keys each query may attend to; None when all of them.

    Rows and columns are in (T, H, W) flattening order. "space": keys of the query's own
    frame; "time": keys at the key cell covering the query's pixel, in every frame;
    ``time_groups`` > 1 (the Caffe2 "affine" long-clip models) restricts "spacetime" keys
    to the query's group of ``time_groups`` consecutive time steps.
    """
    tq, hq, wq = query_shape
    tk, hk, wk = key_shape
    q_t = torch.arange(tq).view(tq, 1, 1).expand(tq, hq, wq).reshape(-1)
    k_t = torch.arange(tk).view(tk, 1, 1).expand(tk, hk, wk).reshape(-1)
    if dims == "spacetime":
        if time_groups == 1:
            return None
        return (q_t[:, None] // time_groups) == (k_t[None, :] // time_groups)
    if dims == "space":
        return q_t[:, None] == k_t[None, :]
    if dims == "time":
        q_h = key_index(hq, hk).view(1, hq, 1).expand(tq, hq, wq).reshape(-1)
        q_w = key_index(wq, wk).view(1, 1, wq).expand(tq, hq, wq).reshape(-1)
        k_h = torch.arange(hk).view(1, hk, 1).expand(tk, hk, wk).reshape(-1)
        k_w = torch.arange(wk).view(1, 1, wk).expand(tk, hk, wk).reshape(-1)
        return (q_h[:, None] == k_h[None, :]) & (q_w[:, None] == k_w[None, :])
    raise ValueError(f"dims must be one of {DIMS}, got {dims!r}")


def affinity(
    pairwise: str,
    theta: Tensor,
    phi: Tensor,
    *,
    scale: float = 1.0,
    concat_weight: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Normalized affinity f(x_i, x_j) / C(x) for a batch of queries against all keys.

    theta: (..., Q, C) queries; phi: (..., C, K) keys; mask: (Q, K) bool of allowed keys, or None.
    concat_weight: (2C,) w_f of the concatenation variant, query half first.
    Returns (..., Q, K). Disallowed keys get exactly 0; for dot_product and concatenation the
    divisor N is the number of allowed keys of each query, as the paper defines it.
    """
    if pairwise == "concatenation":
        if concat_weight is None:
            raise ValueError("the concatenation pairwise function needs concat_weight (w_f)")
        c = theta.shape[-1]
        # w_f . [theta_i, phi_j] = w_q . theta_i + w_k . phi_j: (..., Q, 1) + (..., 1, K)
        q_term = theta @ concat_weight[:c].to(theta.dtype)
        k_term = torch.einsum("...ck,c->...k", phi, concat_weight[c:].to(phi.dtype))
        logits = F.relu(q_term[..., :, None] + k_term[..., None, :])  # (..., Q, K)
    else:
        logits = theta @ phi  # (..., Q, C) @ (..., C, K) => (..., Q, K)
    if pairwise in SOFTMAX_PAIRWISE:
        if scale != 1.0:
            logits = logits * scale
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return torch.softmax(logits, dim=-1)
    if pairwise in ("dot_product", "concatenation"):
        if mask is None:
            return logits / logits.shape[-1]
        counts = mask.sum(dim=-1, keepdim=True).to(logits.dtype)  # (Q, 1) allowed keys per query
        return logits.masked_fill(~mask, 0.0) / counts
    raise ValueError(f"pairwise must be one of {PAIRWISE}, got {pairwise!r}")


class NonLocalBlock(nn.Module):
    """Non-local block z = W(y) + x over a (N, C, T, H, W) feature map.

    Args:
        in_channels: C, the channels of x and z.
        pairwise: "gaussian" | "embedded_gaussian" | "dot_product" | "concatenation".
        dims: "spacetime" | "space" | "time": which keys each query sees.
        inter_channels: C' of theta/phi/g (default C // 2). Gaussian uses the raw input as
            theta/phi, so its affinity is over C channels whatever C' is (g still maps to C').
        subsample: max-pool the key/value path (phi, g) 1x2x2.
        pool_first: pool the input before the phi/g convs (Caffe2, PySlowFast) rather than
            after them (mmcv). Identical for a max pool only if the conv were monotone: it is not.
        use_scale: multiply softmax logits by 1/sqrt(C') (embedded_gaussian; Caffe2/PySlowFast).
        norm: a BatchNorm3d after W, its gamma zero-initialised so a new block is the identity.
            Without norm, W itself is zero-initialised.
        w_bias: bias on the W conv (Caffe2 and PySlowFast: yes; mmcv: no).
        proj_bias: bias on the theta/phi/g convs (all three sources: yes).
        bn_eps: eps of the BatchNorm after W.
        time_groups: restrict spacetime keys to groups of this many consecutive time steps
            (the Caffe2 "affine" long-clip models group res3 attention in 4s).

    Shapes: x (N, C, T, H, W) -> z (N, C, T, H, W). Query grid (T, H, W); key grid
    (T, H//2, W//2) when subsampled, else (T, H, W).
    """

    is_attention_block = True  # nlviz.capture hooks theta/phi of modules that say so

    def __init__(
        self,
        in_channels: int,
        *,
        pairwise: Pairwise = "embedded_gaussian",
        dims: Dims = "spacetime",
        inter_channels: int | None = None,
        subsample: bool = True,
        pool_first: bool = False,
        use_scale: bool = False,
        norm: bool = True,
        w_bias: bool = True,
        proj_bias: bool = True,
        bn_eps: float = 1e-5,
        time_groups: int = 1,
    ) -> None:
        super().__init__()
        if pairwise not in PAIRWISE:
            raise ValueError(f"pairwise must be one of {PAIRWISE}, got {pairwise!r}")
        if dims not in DIMS:
            raise ValueError(f"dims must be one of {DIMS}, got {dims!r}")
        if time_groups < 1 or (time_groups > 1 and dims != "spacetime"):
            raise ValueError("time_groups must be >= 1, and > 1 only with dims='spacetime'")
        self.in_channels = in_channels
        self.inter_channels = inter_channels or max(in_channels // 2, 1)
        self.pairwise = pairwise
        self.dims = dims
        self.subsample = subsample
        self.pool_first = pool_first
        self.use_scale = use_scale
        self.time_groups = time_groups
        c, ci = in_channels, self.inter_channels
        embed = None if pairwise == "gaussian" else ci  # gaussian: theta/phi are the raw input
        self.theta = Projection(c, embed, pool=False, pool_first=False, bias=proj_bias)
        self.phi = Projection(c, embed, pool=subsample, pool_first=pool_first, bias=proj_bias)
        self.g = Projection(c, ci, pool=subsample, pool_first=pool_first, bias=proj_bias)
        # w_f of the concatenation variant: a 1x1 projection of [theta_i, phi_j] to a scalar, no bias
        self.concat_project = nn.Conv1d(2 * ci, 1, 1, bias=False) if pairwise == "concatenation" else None
        self.out = nn.Conv3d(ci, c, 1, bias=w_bias)
        self.bn = nn.BatchNorm3d(c, eps=bn_eps) if norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small random projections; the residual branch starts at zero (the block is the identity)."""
        for proj in (self.theta, self.phi, self.g):
            if proj.conv is not None:
                nn.init.normal_(proj.conv.weight, std=0.01)
                if proj.conv.bias is not None:
                    nn.init.zeros_(proj.conv.bias)
        if self.concat_project is not None:
            nn.init.normal_(self.concat_project.weight, std=0.01)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)
        if self.bn is not None:
            nn.init.normal_(self.out.weight, std=0.01)
            nn.init.zeros_(self.bn.weight)
            nn.init.zeros_(self.bn.bias)
        else:
            nn.init.zeros_(self.out.weight)

    @property
    def scale(self) -> float:
        """The factor applied to softmax logits: 1/sqrt(C') with use_scale, else 1."""
        if not self.use_scale:
            return 1.0
        channels = self.in_channels if self.pairwise == "gaussian" else self.inter_channels
        return 1.0 / math.sqrt(channels)

    def concat_weight(self) -> Tensor | None:
        """w_f as a flat (2C',) vector, query half first; None unless pairwise is concatenation."""
        return None if self.concat_project is None else self.concat_project.weight.reshape(-1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, inter_channels={self.inter_channels}, pairwise={self.pairwise!r}, "
            f"dims={self.dims!r}, subsample={self.subsample}, pool_first={self.pool_first}, "
            f"use_scale={self.use_scale}, time_groups={self.time_groups}"
        )

    def forward(self, x: Tensor) -> Tensor:
        n, _, t, h, w = x.shape
        theta = self.theta(x)  # (N, C', T, H, W)  (C for gaussian)
        phi = self.phi(x)  # (N, C', T, H', W')
        g = self.g(x)  # (N, C', T, H', W')
        key_shape = tuple(phi.shape[2:])
        ck, ci = theta.shape[1], g.shape[1]
        wf = self.concat_weight()

        if self.dims == "spacetime" and self.time_groups == 1:
            q = theta.reshape(n, ck, -1).transpose(1, 2)  # (N, THW, C)
            k = phi.reshape(n, ck, -1)  # (N, C, T'H'W')
            v = g.reshape(n, ci, -1).transpose(1, 2)  # (N, T'H'W', C')
            attn = affinity(self.pairwise, q, k, scale=self.scale, concat_weight=wf)  # (N, THW, T'H'W')
            y = (attn @ v).transpose(1, 2).reshape(n, ci, t, h, w)
        elif self.dims == "spacetime":
            # groups of `time_groups` frames attend among themselves: fold them into the batch
            gs = self.time_groups
            if t % gs:
                raise ValueError(f"time_groups={gs} does not divide the {t} time steps of the input")
            ng = t // gs

            def fold(a: Tensor) -> Tensor:  # (N, C, T, H, W) => (N*T/gs, gs*H*W, C)
                nc = a.shape[1]
                a = a.reshape(n, nc, ng, gs, *a.shape[3:]).transpose(1, 2)  # (N, T/gs, C, gs, H, W)
                return a.reshape(n * ng, nc, -1).transpose(1, 2)

            attn = affinity(self.pairwise, fold(theta), fold(phi).transpose(1, 2), scale=self.scale, concat_weight=wf)
            y = attn @ fold(g)  # (N*T/gs, gs*H*W, C')
            y = y.transpose(1, 2).reshape(n, ng, ci, gs, h, w).transpose(1, 2).reshape(n, ci, t, h, w)
        elif self.dims == "space":
            q = theta.permute(0, 2, 3, 4, 1).reshape(n, t, h * w, ck)  # (N, T, HW, C)
            k = phi.permute(0, 2, 1, 3, 4).reshape(n, t, ck, -1)  # (N, T, C, H'W')
            v = g.permute(0, 2, 3, 4, 1).reshape(n, t, -1, ci)  # (N, T, H'W', C')
            attn = affinity(self.pairwise, q, k, scale=self.scale, concat_weight=wf)  # (N, T, HW, H'W')
            y = (attn @ v).reshape(n, t, h, w, ci).permute(0, 4, 1, 2, 3)
        else:  # time: each pixel attends to the key cell covering it, in every frame
            hi, wi = key_index(h, key_shape[1]), key_index(w, key_shape[2])
            k_full = phi[:, :, :, hi][:, :, :, :, wi]  # (N, C, T, H, W)
            v_full = g[:, :, :, hi][:, :, :, :, wi]  # (N, C', T, H, W)
            q = theta.permute(0, 3, 4, 2, 1).reshape(n, h * w, t, ck)  # (N, HW, T, C)
            k = k_full.permute(0, 3, 4, 1, 2).reshape(n, h * w, ck, t)  # (N, HW, C, T)
            v = v_full.permute(0, 3, 4, 2, 1).reshape(n, h * w, t, ci)  # (N, HW, T, C')
            attn = affinity(self.pairwise, q, k, scale=self.scale, concat_weight=wf)  # (N, HW, T, T)
            y = (attn @ v).reshape(n, h, w, t, ci).permute(0, 4, 3, 1, 2)
        z = self.out(y.contiguous())
        if self.bn is not None:
            z = self.bn(z)
        return z + x
