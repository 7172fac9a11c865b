"""The object-tracking score: does a non-local block attend to the same object in other frames?

For a query on an object in one frame of a synthetic clip (ground-truth masks from
:mod:`nlviz.synthetic`), take the block's attention row and look only at the keys of the
*other* frames (key time slices that do not contain the query's frame). The score is the
share of that attention mass falling on the same object's pixels; chance is the share a
uniform attention would put there (the object's area share in those key cells). A key cell
counts with the fraction of its pixels (over the frames it covers) that the object occupies.

Rows of dot_product / concatenation blocks are f / N, not distributions: their mass is taken
as |f| / N (stated wherever the figure is reported).

A high score alone does not show that a block follows *the query's* object: a block that sends
every query to the objects in general (a query-independent map, as Cao et al., GCNet 2019,
found for trained non-local blocks) scores well above chance too. So each score comes with a
control: the same score for the block's mean row over all queries of the clip, which is the
same map for every query. ``ratio / control_ratio`` near 1 means the attention is about where
the objects are, not about which one was clicked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .capture import record
from .synthetic import to_tensor


@dataclass
class TrackingScore:
    block: str
    score: float  # mean share of other-frame attention mass on the query's object
    chance: float  # mean share a uniform row would give
    queries: int
    control: float = float("nan")  # mean share the block's query-independent mean row gives

    @property
    def ratio(self) -> float:
        return self.score / self.chance if self.chance > 0 else float("nan")

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
    model: nn.Module, clips: np.ndarray, masks: np.ndarray, *, queries_per_clip: int = 4, seed: int = 0
) -> list[TrackingScore]:
    """Object-tracking score of every non-local block over synthetic clips.

    clips (N, T, H, W, 3) uint8 and masks (N, T, H, W) object ids (-1 background) at the
    model's input size. Queries: per clip, ``queries_per_clip`` random (frame, object) pairs,
    at the object's pixel nearest its mask centroid (so the query cell lies on the object).
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
            frame = int(rng.integers(t_in))
            present = [o for o in objs if (mask[frame] == o).sum() >= 4]
            if not present:
                continue
            obj = int(rng.choice(present))
            ys, xs = np.nonzero(mask[frame] == obj)
            i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
            y, x = ys[i] + 0.5, xs[i] + 0.5
            for b in cap:
                row = np.abs(b.row(b.query_at(frame + 0.5, y, x)).numpy().astype(np.float64))
                frac = _key_object_fraction(mask, obj, b.key_shape, (t_in, h_in, w_in))
                tk = b.key_shape[0]
                own = int(frame * tk // t_in)
                other = np.ones(tk, bool)
                other[own] = False
                mass = row[other].sum()
                if mass <= 0:
                    continue
                score = float((row[other] * frac[other]).sum() / mass)
                chance = float(frac[other].mean())
                mean_row = mean_rows[b.name]
                control_mass = mean_row[other].sum()
                control = float((mean_row[other] * frac[other]).sum() / control_mass) if control_mass > 0 else 0.0
                acc = sums.setdefault(b.name, [0.0, 0.0, 0, 0.0])
                acc[0] += score
                acc[1] += chance
                acc[2] += 1
                acc[3] += control
    return [TrackingScore(name, s / n, c / n, n, k / n) for name, (s, c, n, k) in sums.items() if n]
