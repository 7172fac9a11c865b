"""NonLocalBlock against an independent float64 reference: a direct loop over positions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nlviz import NonLocalBlock, capture_attention
from nlviz.nonlocal_block import PAIRWISE

C, T, H, W = 4, 4, 4, 5  # odd W: the floor-mode 1x2x2 pool drops the last column


def randomize(block: NonLocalBlock, seed: int) -> NonLocalBlock:
    """Random weights everywhere (the default init makes the block the identity), float64, eval."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        if block.bn is not None:
            block.bn.running_mean.copy_(torch.randn(C, generator=g) * 0.1)
            block.bn.running_var.copy_(torch.rand(C, generator=g) + 0.5)
    return block.double().eval()


def conv1x1(weight: torch.Tensor | None, bias: torch.Tensor | None, x: np.ndarray) -> np.ndarray:
    """A 1x1x1 conv on (C, T, H, W) written as a per-position matrix product."""
    if weight is None:
        return x
    w = weight.detach().numpy().reshape(weight.shape[0], -1)
    out = np.einsum("oc,cthw->othw", w, x)
    if bias is not None:
        out = out + bias.detach().numpy()[:, None, None, None]
    return out


def maxpool122(x: np.ndarray) -> np.ndarray:
    c, t, h, w = x.shape
    out = np.empty((c, t, h // 2, w // 2))
    for i, j in itertools.product(range(h // 2), range(w // 2)):
        out[:, :, i, j] = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(2, 3))
    return out


def projection(proj, x: np.ndarray, subsample: bool, pool_first: bool) -> np.ndarray:
    conv = proj.conv
    weight, bias = (None, None) if conv is None else (conv.weight, conv.bias)
    if subsample and pool_first:
        return conv1x1(weight, bias, maxpool122(x))
    out = conv1x1(weight, bias, x)
    return maxpool122(out) if subsample else out


def reference(block: NonLocalBlock, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, A) for one sample x (C, T, H, W): the block's output and its (N_q, N_k) affinity."""
    sub, pf = block.subsample, block.pool_first
    theta = projection(block.theta, x, False, False)
    phi = projection(block.phi, x, sub, pf)
    g = projection(block.g, x, sub, pf)
    _, tq, hq, wq = theta.shape
    _, tk, hk, wk = phi.shape
    sh = hq // hk  # key cell covering a query pixel (time dims)
    queries = list(itertools.product(range(tq), range(hq), range(wq)))
    keys = list(itertools.product(range(tk), range(hk), range(wk)))
    ci = theta.shape[0]
    A = np.zeros((len(queries), len(keys)))
    for qi, (t, h, w) in enumerate(queries):
        allowed = []
        for ki, (t2, h2, w2) in enumerate(keys):
            if block.dims == "space" and t2 != t:
                continue
            if block.dims == "time" and (h2, w2) != (min(h // sh, hk - 1), min(w // sh, wk - 1)):
                continue
            if block.time_groups > 1 and t2 // block.time_groups != t // block.time_groups:
                continue
            allowed.append(ki)
        f = {}
        for ki in allowed:
            t2, h2, w2 = keys[ki]
            a, b = theta[:, t, h, w], phi[:, t2, h2, w2]
            if block.pairwise == "concatenation":
                wf = block.concat_project.weight.detach().numpy().reshape(-1)
                f[ki] = max(0.0, float(wf[: len(a)] @ a + wf[len(a) :] @ b))
            elif block.pairwise == "dot_product":
                f[ki] = float(a @ b)
            else:  # gaussian / embedded_gaussian: exp of (scaled) dot product, normalized by the sum
                s = 1 / math.sqrt(ci) if block.use_scale else 1.0
                f[ki] = float(a @ b) * s
        if block.pairwise in ("gaussian", "embedded_gaussian"):
            m = max(f.values())
            den = sum(math.exp(v - m) for v in f.values())
            for ki, v in f.items():
                A[qi, ki] = math.exp(v - m) / den
        else:
            for ki, v in f.items():
                A[qi, ki] = v / len(allowed)
    y = (A @ g.reshape(g.shape[0], -1).T).T.reshape(g.shape[0], tq, hq, wq)
    z = conv1x1(block.out.weight, block.out.bias, y)
    if block.bn is not None:
        bn = block.bn
        mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
        gamma, beta = bn.weight.detach().numpy(), bn.bias.detach().numpy()
        z = (z - mean[:, None, None, None]) / np.sqrt(var + bn.eps)[:, None, None, None]
        z = z * gamma[:, None, None, None] + beta[:, None, None, None]
    return z + x, A


CASES = [
    dict(pairwise=p, dims=d, subsample=s, pool_first=pf, use_scale=sc)
    for p, d, s, pf, sc in itertools.product(PAIRWISE, ("spacetime", "space", "time"), (True, False), (True, False), (True, False))
    if not (not s and pf)  # pool order only matters when pooling
    if not (sc and p not in ("gaussian", "embedded_gaussian"))  # scale only applies to softmax
] + [
    dict(pairwise="embedded_gaussian", dims="spacetime", subsample=True, pool_first=True, use_scale=True, time_groups=2),
    dict(pairwise="dot_product", dims="spacetime", subsample=True, pool_first=False, use_scale=False, time_groups=2),
    dict(pairwise="embedded_gaussian", dims="spacetime", subsample=True, pool_first=False, use_scale=False, norm=False, w_bias=False),
]


@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_block_matches_direct_loop(opts):
    block = randomize(NonLocalBlock(C, **opts), seed=hash(tuple(opts.items())) % 2**31)
    x = torch.randn(2, C, T, H, W, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad(), capture_attention(block) as cap:
        z = block(x)
    (name,) = cap.blocks
    for n in range(2):
        z_ref, a_ref = reference(block, x[n].numpy())
        np.testing.assert_allclose(z[n].numpy(), z_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(cap[name].matrix(batch=n).numpy(), a_ref, rtol=1e-10, atol=1e-12)


def test_new_block_is_identity():
    block = NonLocalBlock(8).eval()
    x = torch.randn(1, 8, 2, 4, 4)
    torch.testing.assert_close(block(x), x)


def test_gaussian_affinity_uses_raw_input():
    """The gaussian variant has no theta/phi convs: f = exp(x_i . x_j) on the input itself."""
    block = NonLocalBlock(4, pairwise="gaussian", subsample=False)
    assert block.theta.conv is None and block.phi.conv is None and block.g.conv is not None


@pytest.mark.parametrize("bad", [dict(pairwise="cosine"), dict(dims="spacetimes"), dict(dims="space", time_groups=2)])
def test_bad_options_raise(bad):
    with pytest.raises(ValueError):
        NonLocalBlock(4, **bad)


def test_time_groups_must_divide_time():
    block = NonLocalBlock(4, time_groups=3).eval()
    with pytest.raises(ValueError, match="does not divide"):
        block(torch.randn(1, 4, 4, 4, 4))
