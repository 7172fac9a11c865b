"""The survey's statistics of one block (one head) over a sample of query rows.

Rows are first made distributions as in :mod:`nlviz.stats`: p_j = |w_j| / sum |w_j| (the softmax
variants' rows already are; for the signed dot-product / concatenation rows p is the share of the
row's absolute mass); rows without mass are left out. Then, averaged over the queries:

- ``dist_space_px``: sum_j p_j * Euclidean distance (model-input pixels) between the centre of the
  query's cell and the centre of key cell j (the "mean attention distance" of Dosovitskiy et al.,
  ViT, Fig. 7, for space);
- ``dist_time_frames``: the same with |t_key - t_query| in model-input frames;
- ``entropy_norm``: -sum_j p_j log p_j / log(N_keys): 1 for uniform attention over every key, 0 for
  a one-hot row (blocks restricted to "space"/"time" reach at most log(allowed) / log(N_keys));
- ``offset_mass``: mass by temporal offset, key time slice minus the key time slice that covers the
  query, offsets ``offset_min`` .. -offset_min (key slices; ``frames_per_slice`` input frames each);
- ``own_slice_share``: the mass at offset 0, in the query's own time slice;
- ``query_dependence``: GCNet's mean pairwise cosine distance of the rows of different queries
  (as :func:`nlviz.stats.cosine_query_dependence`): 0 when every query sees the same map.

Everything is computed in float64 on the rows' device (the GPU's, in a CUDA survey).

:func:`row_statistics` works on hand-built rows and coordinates (the unit tests' way in);
:func:`block_statistics` feeds it a captured block's rows and cell centres.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..nonlocal_block import key_index
from ..stats import _axis_centres, sample_queries

STAT_FIELDS = ("dist_space_px", "dist_time_frames", "entropy_norm", "own_slice_share", "query_dependence")


def row_statistics(rows: Tensor, q_coords: Tensor, k_coords: Tensor, q_slice: Tensor, k_slice: Tensor,
                   num_slices: int) -> dict:
    """Statistics of rows (Q, N_k) whose queries sit at ``q_coords`` (Q, 3) and keys at ``k_coords``
    (N_k, 3), both (t in frames, y, x in pixels); ``q_slice`` (Q,): the key time slice covering each
    query; ``k_slice`` (N_k,): each key's time slice, of ``num_slices``. Returns the module's
    statistics plus ``queries`` (rows with mass) and ``empty_rows``."""
    a = rows.detach().to(torch.float64).reshape(rows.shape[0], -1).abs()  # on the rows' device (a GPU's too)
    dev = a.device
    mass = a.sum(dim=1)
    keep = mass > 0
    p = a[keep] / mass[keep][:, None]
    n, n_k = p.shape
    span = 2 * num_slices - 1
    out = {"queries": int(n), "empty_rows": int((~keep).sum()), "n_keys": int(n_k),
           "offset_min": -(num_slices - 1)}
    if n == 0:
        out.update({f: math.nan for f in STAT_FIELDS})
        out["offset_mass"] = [math.nan] * span
        return out
    q = q_coords.to(dev, torch.float64)[keep]
    k = k_coords.to(dev, torch.float64)
    q_slice, k_slice = q_slice.to(dev), k_slice.to(dev)
    d_space = torch.sqrt((q[:, None, 1] - k[None, :, 1]) ** 2 + (q[:, None, 2] - k[None, :, 2]) ** 2)
    d_time = (q[:, None, 0] - k[None, :, 0]).abs()
    entropy = -torch.xlogy(p, p).sum(dim=1)
    offset = k_slice[None, :].long() - q_slice[keep][:, None].long() + (num_slices - 1)  # (Q, N_k) in [0, span)
    by_offset = torch.zeros(n, span, dtype=torch.float64, device=dev).scatter_add_(1, offset, p)
    offset_mass = by_offset.mean(dim=0).cpu()
    u = p / p.norm(dim=1, keepdim=True)  # GCNet: 1 - mean cos over pairs a != b (as nlviz.stats computes it)
    dependence = 1.0 - (float(u.sum(dim=0).square().sum()) - n) / (n * (n - 1)) if n >= 2 else math.nan
    out.update({
        "dist_space_px": float((p * d_space).sum(dim=1).mean()),
        "dist_time_frames": float((p * d_time).sum(dim=1).mean()),
        "entropy_norm": float(entropy.mean() / math.log(n_k)) if n_k > 1 else math.nan,
        "own_slice_share": float(offset_mass[num_slices - 1]),
        "query_dependence": dependence,
        "offset_mass": [float(v) for v in offset_mass],
    })
    return out


def block_geometry(b) -> dict:
    """A captured block's cell centres and time slices (model-input units), for :func:`row_statistics`."""
    tq, hq, wq = b.query_shape
    tk, hk, wk = b.key_shape
    qc, kc = _axis_centres(b, "query"), _axis_centres(b, "key")
    n_k = tk * hk * wk
    kf = torch.arange(n_k)
    k_coords = torch.stack([kc[0][kf // (hk * wk)], kc[1][(kf // wk) % hk], kc[2][kf % wk]], dim=1)
    return {"q_centres": qc, "k_coords": k_coords, "k_slice": kf // (hk * wk),
            "own_slice": key_index(tq, tk), "num_slices": tk,
            "frames_per_slice": float(b.input_shape[0]) / tk}


def sampled_cells(b, queries: int | None, seed: int) -> list[tuple[int, int, int]]:
    """The query cells of ``b`` the survey uses: ``queries`` distinct cells drawn uniformly from the
    block's grid (the model's crop) with a generator seeded by ``seed``; every cell when fewer."""
    flat = sample_queries(b, queries if queries is None or queries >= 2 else 2, seed)
    tq, hq, wq = b.query_shape
    if flat is None:
        flat = torch.arange(tq * hq * wq)
    return [(int(f) // (hq * wq), (int(f) // wq) % hq, int(f) % wq) for f in flat]


def block_statistics(b, cells: list[tuple[int, int, int]], geometry: dict | None = None) -> list[dict]:
    """One dict of statistics per head of block ``b`` over the rows of ``cells`` (head None for
    blocks without heads)."""
    g = geometry or block_geometry(b)
    qc = g["q_centres"]
    idx = torch.tensor(cells, dtype=torch.long).reshape(-1, 3)
    q_coords = torch.stack([qc[0][idx[:, 0]], qc[1][idx[:, 1]], qc[2][idx[:, 2]]], dim=1)
    q_slice = g["own_slice"][idx[:, 0]]
    heads = int(getattr(b, "num_heads", 1) or 1)
    out = []
    for h in range(heads):
        rows = b.rows(cells, head=h) if heads > 1 else b.rows(cells)
        s = row_statistics(rows.reshape(len(cells), -1), q_coords, g["k_coords"], q_slice, g["k_slice"],
                           g["num_slices"])
        s.update(head=h if heads > 1 else None, heads=heads, frames_per_slice=g["frames_per_slice"])
        out.append(s)
    return out


__all__ = ["STAT_FIELDS", "block_geometry", "block_statistics", "row_statistics", "sampled_cells"]
