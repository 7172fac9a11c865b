"""Whole-block statistics of attention: how far, how spread out and how query-specific it is.

A click shows one query's row; these numbers summarize ALL rows of a block, for the Models
page's architecture view::

    stats = capture_stats(cap)                  # {block name: BlockStats}
    table = [s.as_row() for s in stats.values()]

Every statistic is computed from rows normalized to a distribution, p_i = |w_i| / sum |w_i|.
For the softmax variants (gaussian, embedded_gaussian) that is the row itself. The signed
variants (dot_product, concatenation) have rows f / N that may be negative and need not sum
to 1; for them p is the share of the row's absolute mass, which is what "where does this query
look" means for a signed map. Rows whose mass is 0 say nothing about where the query looks and
are left out (counted in ``empty_rows``).

- distance: mean over queries of sum_j p_ij d(i, j), where d is the distance between the
  centre of query cell i (:meth:`BlockCapture.query_box`) and the centre of key cell j
  (:meth:`BlockCapture.key_box`): Euclidean in model-input pixels (space), absolute in
  model-input frames (time).
- entropy: mean over queries of -sum_j p_ij log p_ij, in nats; log(N_k) is uniform attention
  over every key (blocks restricted to "space" or "time" can reach only the log of their
  allowed keys).
- query dependence (cosine), the measure of Cao et al. (GCNet, 2019): the mean cosine distance
  1 - cos(p_a, p_b) over all pairs of different queries a != b. 0: every query attends to the
  same map (what GCNet found for trained non-local blocks); 1: queries attend to disjoint keys.
- query dependence (TV): mean over queries of the total-variation distance 0.5 * sum_j |p_ij - m_j|
  between each row and the mean row m. Also 0 when all rows are equal; n disjoint one-hot rows
  give 1 - 1/n (the cosine measure gives 1). TV weighs mass that moves (one query's map shifted
  by a cell counts fully), the cosine measure the overlap of maps (a sharp peak on shared keys
  dominates it); both go to 0 together, and GCNet's figures are of the cosine one.
- own-slice share: mean over queries of the mass on keys of the key time slice that covers
  the query's own input frames.

By default the statistics are of a bounded, seeded sample of queries: ``queries=256`` cells
drawn uniformly without replacement from the block's query grid (``torch.Generator`` seeded
with ``seed``, so the same clip always gives the same figures; every query when the grid has
fewer). That keeps the Models page's first view fast on real networks (a full pass over the
6272 x 1568 rows of an I3D block took 30-40 s on 2 cores) at a sampling error of about
1/sqrt(256) of the spread of the per-query values. ``queries=None`` is every query, exact:
rows are then computed ``chunk`` queries at a time (:meth:`BlockCapture.row_chunks`), so memory
stays O(chunk * N_k) even for blocks whose N_q x N_k matrix would not fit; the mean row needs a
second pass over the chunks (the cosine measure does not: the sum over pairs of cos(p_a, p_b)
is |sum_a u_a|^2 - n for the unit rows u_a).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .capture import BlockCapture, Capture
from .nonlocal_block import key_index


@dataclass(frozen=True)
class BlockStats:
    """Attention statistics of one block over all its queries (see the module docstring)."""

    name: str
    pairwise: str
    dims: str
    signed: bool  # dot_product / concatenation: statistics are of |w| normalized per row
    query_shape: tuple[int, int, int]  # (T, H, W)
    key_shape: tuple[int, int, int]  # (T', H', W')
    input_shape: tuple[int, int, int]  # (T_in, H_in, W_in) of the model input
    channels: int  # channels of theta (the raw input's for gaussian)
    time_groups: int
    mean_distance_px: float  # model-input pixels between query and key cell centres, mass-weighted
    mean_distance_frames: float  # model-input frames between query and key cell centres, mass-weighted
    entropy: float  # nats, mean over queries
    max_entropy: float  # log(N_k)
    query_dependence: float  # mean total-variation distance to the mean row: 0 same map for all, 1 query-specific
    own_slice_share: float  # mean mass in the key time slice covering the query's own frames
    num_queries: int  # queries with a non-zero row (the ones averaged)
    empty_rows: int  # queries whose row is all zeros, left out
    query_dependence_cos: float = math.nan  # GCNet's: mean pairwise cosine distance of rows, 0 same map, 1 disjoint
    sampled_queries: int | None = None  # how many queries were sampled (seeded); None: every query
    total_queries: int = 0  # queries in the block's grid (T x H x W)

    def as_row(self) -> dict[str, object]:
        """One line of a table: short human-friendly keys, rounded values."""

        def grid(shape: tuple[int, int, int]) -> str:
            return "×".join(str(s) for s in shape)

        return {
            "block": self.name,
            "pairwise": self.pairwise,
            "dims": self.dims,
            "queries (T×H×W)": grid(self.query_shape),
            "keys (T×H×W)": grid(self.key_shape),
            "channels": self.channels,
            "distance (px)": round(self.mean_distance_px, 1),
            "distance (frames)": round(self.mean_distance_frames, 2),
            "entropy (nats)": round(self.entropy, 2),
            "max entropy (nats)": round(self.max_entropy, 2),
            "query dependence (cosine, GCNet)": round(self.query_dependence_cos, 3),
            "query dependence": round(self.query_dependence, 3),
            "own-slice share": round(self.own_slice_share, 3),
            "queries used": self.num_queries,
        }


def _axis_centres(b: BlockCapture, kind: str) -> list[Tensor]:
    """Centres along t, y, x (model-input units) of the query or key cells, one tensor per axis.

    Boxes are products of per-axis intervals, so walking each axis with the block's own
    :meth:`~BlockCapture.query_box` / :meth:`~BlockCapture.key_box` gives every centre.
    """
    box = b.query_box if kind == "query" else b.key_box
    shape = b.query_shape if kind == "query" else b.key_shape
    out = []
    for axis, size in enumerate(shape):
        centres = []
        for i in range(size):
            cell = [0, 0, 0]
            cell[axis] = i
            lo, hi = box(cell)[2 * axis : 2 * axis + 2]
            centres.append((lo + hi) / 2)
        out.append(torch.tensor(centres, dtype=torch.float64))
    return out


def _flat_coords(centres: list[Tensor], flat: Tensor, shape: tuple[int, int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """(t, y, x) centres of the cells with flat indices ``flat`` in a grid of ``shape``."""
    _, h, w = shape
    return centres[0][flat // (h * w)], centres[1][(flat // w) % h], centres[2][flat % w]


def _distributions(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Rows (Q, N_k) -> (p, keep): |rows| normalized per row (float64) and which rows had mass."""
    a = rows.detach().to("cpu", torch.float64).abs()
    mass = a.sum(dim=1, keepdim=True)
    keep = mass[:, 0] > 0
    return a[keep] / mass[keep], keep


DEFAULT_QUERIES = 256  # queries sampled per block for the app's statistics (seeded)


def sample_queries(b: BlockCapture, queries: int | None = DEFAULT_QUERIES, seed: int = 0) -> Tensor | None:
    """Sorted flat indices of the sampled query cells (uniform without replacement, seeded), or None
    for every query (``queries`` None or at least the grid's size)."""
    n_q = math.prod(b.query_shape)
    if queries is None or queries >= n_q:
        return None
    if queries < 2:
        raise ValueError(f"queries must be >= 2 (pairs of queries), got {queries}")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n_q, generator=g)[:queries].sort().values


def _chunks(b: BlockCapture, batch: int, chunk: int, flat: Tensor | None):
    """(flat query indices, rows (Q, N_k)) chunk by chunk: every query, or the ``flat`` ones."""
    if flat is None:
        for start, rows in b.row_chunks(batch, chunk):
            yield torch.arange(start, start + rows.shape[0]), rows
        return
    _, hq, wq = b.query_shape
    for i in range(0, len(flat), chunk):
        f = flat[i : i + chunk]
        cells = torch.stack([f // (hq * wq), (f // wq) % hq, f % wq], dim=1).tolist()
        yield f, b.rows(cells, batch).reshape(len(f), -1)


def cosine_query_dependence(rows: Tensor) -> float:
    """GCNet's query dependence of rows (Q, N_k): mean over pairs a != b of 1 - cos(|r_a|, |r_b|).

    Rows without mass are left out; nan with fewer than two rows left. Identical rows give 0,
    rows on disjoint keys give 1.
    """
    p, _ = _distributions(rows)
    n = len(p)
    if n < 2:
        return math.nan
    u = p / p.norm(dim=1, keepdim=True)
    pair_sum = float(u.sum(dim=0).square().sum()) - n  # sum over ordered pairs a != b of cos
    return 1.0 - pair_sum / (n * (n - 1))


def block_stats(b: BlockCapture, batch: int = 0, chunk: int = 2048, *, queries: int | None = DEFAULT_QUERIES,
                seed: int = 0) -> BlockStats:
    """Statistics of ``b``'s queries (see the module docstring): a seeded sample of ``queries``
    of them (None: all), ``chunk`` rows at a time."""
    tq, hq, wq = b.query_shape
    tk, hk, wk = b.key_shape
    n_k = tk * hk * wk
    q_cent, k_cent = _axis_centres(b, "query"), _axis_centres(b, "key")
    kt, ky, kx = _flat_coords(k_cent, torch.arange(n_k), b.key_shape)
    key_slice = torch.arange(n_k) // (hk * wk)
    own_slice = key_index(tq, tk)  # query time index -> key time slice covering its frames
    flat_sample = sample_queries(b, queries, seed)

    dist_px = dist_t = entropy = own = 0.0
    count, empty = 0, 0
    p_sum = torch.zeros(n_k, dtype=torch.float64)
    u_sum = torch.zeros(n_k, dtype=torch.float64)
    for flat_all, rows in _chunks(b, batch, chunk, flat_sample):
        p, keep = _distributions(rows)
        empty += int((~keep).sum())
        if not len(p):
            continue
        flat = flat_all[keep]
        qt, qy, qx = _flat_coords(q_cent, flat, b.query_shape)
        d_px = torch.sqrt((qy[:, None] - ky[None, :]) ** 2 + (qx[:, None] - kx[None, :]) ** 2)
        dist_px += float((p * d_px).sum())
        dist_t += float((p * (qt[:, None] - kt[None, :]).abs()).sum())
        entropy += float(-torch.xlogy(p, p).sum())
        same = key_slice[None, :] == own_slice[flat // (hq * wq)][:, None]
        own += float((p * same).sum())
        p_sum += p.sum(dim=0)
        u_sum += (p / p.norm(dim=1, keepdim=True)).sum(dim=0)
        count += len(p)

    dependence = 0.0
    if count:
        p_mean = p_sum / count
        for _, rows in _chunks(b, batch, chunk, flat_sample):
            p, _ = _distributions(rows)
            dependence += float(0.5 * (p - p_mean[None, :]).abs().sum())
    cos_dep = 1.0 - (float(u_sum.square().sum()) - count) / (count * (count - 1)) if count >= 2 else math.nan

    def mean(total: float) -> float:
        return total / count if count else math.nan  # every row empty: nothing to average

    return BlockStats(
        name=b.name,
        pairwise=b.pairwise,
        dims=b.dims,
        signed=b.signed,
        query_shape=b.query_shape,
        key_shape=b.key_shape,
        input_shape=tuple(b.input_shape),
        channels=int(b.channels),
        time_groups=b.time_groups,
        mean_distance_px=mean(dist_px),
        mean_distance_frames=mean(dist_t),
        entropy=mean(entropy),
        max_entropy=math.log(n_k),
        query_dependence=mean(dependence),
        own_slice_share=mean(own),
        num_queries=count,
        empty_rows=empty,
        query_dependence_cos=cos_dep,
        sampled_queries=None if flat_sample is None else len(flat_sample),
        total_queries=tq * hq * wq,
    )


def capture_stats(cap: Capture, batch: int = 0, chunk: int = 2048, *, queries: int | None = DEFAULT_QUERIES,
                  seed: int = 0) -> dict[str, BlockStats]:
    """:func:`block_stats` of every captured block: {block name: BlockStats}, in network order."""
    return {b.name: block_stats(b, batch, chunk, queries=queries, seed=seed) for b in cap}


def sampling_note(stats: dict[str, BlockStats]) -> str:
    """One sentence saying which queries the statistics are over."""
    sampled = {s.sampled_queries for s in stats.values() if s.sampled_queries is not None}
    if not sampled:
        return "Statistics over every query of each block."
    n = sampled.pop() if len(sampled) == 1 else max(sampled)
    return (f"Statistics over {n} query cells per block, drawn at random with a fixed seed (the same "
            "cells every time; every query in blocks with fewer).")


__all__ = ["DEFAULT_QUERIES", "BlockStats", "block_stats", "capture_stats", "cosine_query_dependence",
           "sample_queries", "sampling_note"]
