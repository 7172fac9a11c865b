"""The object-tracking score: does a non-local block attend to the same object in other frames?

For a query on an object in one frame of a synthetic clip (ground-truth masks from
:mod:`nlviz.synthetic`), take the block's attention row and look only at the keys of the
*other* frames (key time slices that do not contain the query's frame). The score is the
share of that attention mass falling on the same object's pixels; chance is the share a
uniform attention would put there (the object's area share in those key cells). A key cell
counts with the fraction of its pixels (over the frames it covers) that the object occupies.

Rows of dot_product / concatenation blocks are f / N, not distributions: their mass is taken
as |f| / N (stated wherever the figure is reported). A dot product's f is linear in the key's
features, so it can single out the query's object by sign rather than by sparsity (f > 0 on it,
f < 0 on the others), which |f| counts as mass on the others; the score of the positive part
max(f, 0) alone (:attr:`TrackingScore.positive`, equal to the score for softmax rows) tells
the two apart.

A high score alone does not show that a block follows *the query's* object: a block that sends
every query to the objects in general (a query-independent map, as Cao et al., GCNet 2019,
found for trained non-local blocks) scores well above chance too. So each score comes with a
control: the same score for the block's mean row over all queries of the clip, which is the
same map for every query. ``ratio / control_ratio`` near 1 means the attention is about where
the objects are, not about which one was clicked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .capture import BlockCapture, record
from .stats import cosine_query_dependence
from .synthetic import to_tensor


@dataclass
class TrackingScore:
    block: str
    score: float  # mean share of other-frame attention mass on the query's object
    chance: float  # mean share a uniform row would give
    queries: int
    control: float = float("nan")  # mean share the block's query-independent mean row gives
    positive: float = float("nan")  # the score of the rows' positive part max(f, 0) (softmax rows: = score)

    @property
    def ratio(self) -> float:
        return self.score / self.chance if self.chance > 0 else float("nan")

    @property
    def positive_ratio(self) -> float:
        return self.positive / self.chance if self.chance > 0 else float("nan")

    @property
    def control_ratio(self) -> float:
        """The control's score against chance: what attending to the same map for every query reaches."""
        return self.control / self.chance if self.chance > 0 else float("nan")


def _key_object_fraction(mask: np.ndarray, obj: int, key_shape, input_shape) -> np.ndarray:
    """(T', H', W') fraction of each key cell's pixels (over its frames) covered by object ``obj``.

    mask: (T, H, W) object ids of the clip at model-input resolution.
    """
    tk, hk, wk = key_shape
    t_in, h_in, w_in = input_shape
    on = (mask == obj).astype(np.float64)
    # average pooling over each key cell's box: frames t_in/tk, rows h_in/hk, cols w_in/wk (exact for our grids)
    st, sh, sw = t_in // tk, h_in // hk, w_in // wk
    on = on[: tk * st, : hk * sh, : wk * sw]
    return on.reshape(tk, st, hk, sh, wk, sw).mean(axis=(1, 3, 5))


@torch.no_grad()
def tracking_scores(
    model: nn.Module, clips: np.ndarray, masks: np.ndarray, *, queries_per_clip: int = 4, seed: int = 0,
    frames: Sequence[int] | None = None,
) -> list[TrackingScore]:
    """Object-tracking score of every non-local block over synthetic clips.

    clips (N, T, H, W, 3) uint8 and masks (N, T, H, W) object ids (-1 background) at the
    model's input size. Queries: per clip, ``queries_per_clip`` random (frame, object) pairs,
    at the object's pixel nearest its mask centroid (so the query cell lies on the object);
    frames drawn from ``frames`` (default: every frame).
    """
    rng = np.random.default_rng(seed)
    sums: dict[str, list[float]] = {}
    for clip, mask in zip(clips, masks):
        _, cap = record(model, to_tensor(clip))
        # the control: every block's mean |row| over all its queries (chunked: never the whole matrix)
        mean_rows = {}
        for b in cap:
            total = torch.zeros(b.key_shape, dtype=torch.float64)
            for _, rows in b.row_chunks():
                total += rows.abs().double().sum(0).reshape(b.key_shape)
            mean_rows[b.name] = (total / math.prod(b.query_shape)).numpy()
        t_in, h_in, w_in = mask.shape
        objs = [o for o in np.unique(mask) if o >= 0]
        for _ in range(queries_per_clip):
            frame = int(rng.integers(t_in)) if frames is None else int(rng.choice(list(frames)))
            present = [o for o in objs if (mask[frame] == o).sum() >= 4]
            if not present:
                continue
            obj = int(rng.choice(present))
            ys, xs = np.nonzero(mask[frame] == obj)
            i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
            y, x = ys[i] + 0.5, xs[i] + 0.5
            for b in cap:
                signed = b.row(b.query_at(frame + 0.5, y, x)).numpy().astype(np.float64)
                row, positive = np.abs(signed), np.maximum(signed, 0.0)
                frac = _key_object_fraction(mask, obj, b.key_shape, (t_in, h_in, w_in))
                tk = b.key_shape[0]
                own = int(frame * tk // t_in)
                other = np.ones(tk, bool)
                other[own] = False
                if row[other].sum() <= 0:
                    continue
                on = frac[other]
                # share of each map's other-frame mass on the object (a map with none there puts none on it)
                score, control, pos = (float((w[other] * on).sum() / w[other].sum()) if w[other].sum() > 0 else 0.0
                                       for w in (row, mean_rows[b.name], positive))
                acc = sums.setdefault(b.name, [0.0, 0.0, 0, 0.0, 0.0])
                acc[0] += score
                acc[1] += float(on.mean())  # chance
                acc[2] += 1
                acc[3] += control
                acc[4] += pos
    return [TrackingScore(name, s / n, c / n, n, k / n, p / n) for name, (s, c, n, k, p) in sums.items() if n]


@dataclass
class QueryDependence:
    """GCNet's query dependence of one block over clips (see :func:`query_dependence_scores`)."""

    block: str
    random: float  # mean pairwise cosine distance between rows of random query cells, averaged over clips
    on_objects: float  # the same for query cells on objects
    zero_rows: float  # share of all the block's rows (every query of every clip) that are all zeros
    clips: int


def _cell_centres(b: BlockCapture, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, y, x) input-pixel centres of query cells with flat indices ``flat``."""
    _, hq, wq = b.query_shape
    cells = np.stack([flat // (hq * wq), (flat // wq) % hq, flat % wq], axis=1)
    boxes = np.array([b.query_box(c) for c in cells.tolist()], dtype=np.float64)
    return (boxes[:, 0] + boxes[:, 1]) / 2, (boxes[:, 2] + boxes[:, 3]) / 2, (boxes[:, 4] + boxes[:, 5]) / 2


@torch.no_grad()
def query_dependence_scores(
    model: nn.Module, clips: np.ndarray, masks: np.ndarray, *, queries: int = 64, seed: int = 0
) -> list[QueryDependence]:
    """Per block, the mean pairwise cosine distance between the rows of different queries
    (Cao et al., GCNet 2019; :func:`nlviz.stats.cosine_query_dependence`): 0 when every query
    sees the same map, 1 when they see disjoint keys.

    Per clip, ``queries`` query cells drawn uniformly from the block's grid ("random"), and
    ``queries`` drawn from the cells whose centre pixel lies on an object ("on objects"), the
    distance averaged over the pairs within each clip, then over clips. ``zero_rows``: the share
    of every row of every clip whose mass is 0 (a dead concatenation ReLU gives 1).
    """
    rng = np.random.default_rng(seed)
    acc: dict[str, list[float]] = {}
    for clip, mask in zip(clips, masks):
        _, cap = record(model, to_tensor(clip))
        for b in cap:
            n_q = math.prod(b.query_shape)
            flat = np.arange(n_q)
            t, y, x = _cell_centres(b, flat)
            on = mask[t.astype(int), y.astype(int), x.astype(int)] >= 0
            a = acc.setdefault(b.name, [0.0, 0.0, 0.0, 0, 0])
            zero = sum(int((rows.abs().sum(1) == 0).sum()) for _, rows in b.row_chunks())
            a[2] += zero / n_q
            rnd = rng.choice(flat, size=min(queries, n_q), replace=False)
            a[0] += cosine_query_dependence(_rows(b, rnd))
            objs = flat[on]
            if len(objs) >= 2:
                pick = rng.choice(objs, size=min(queries, len(objs)), replace=False)
                a[1] += cosine_query_dependence(_rows(b, pick))
                a[4] += 1
            a[3] += 1
    out = []
    for name, (r, o, z, n, n_obj) in acc.items():
        out.append(QueryDependence(name, r / n, o / n_obj if n_obj else math.nan, z / n, n))
    return out


def _rows(b: BlockCapture, flat: np.ndarray) -> torch.Tensor:
    _, hq, wq = b.query_shape
    cells = [(int(f // (hq * wq)), int((f // wq) % hq), int(f % wq)) for f in flat]
    return b.rows(cells).reshape(len(cells), -1)
