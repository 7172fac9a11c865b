"""Multi-head softmax attention over a (T, H, W) token grid, captured as queries and keys.

The non-local paper's embedded Gaussian is self-attention: ``softmax_j(theta(x_i) . phi(x_j))``
with a 1/sqrt(d) scale. A transformer block computes that per head, often with more around it:
a class token in front of the grid, an additive bias that depends on the query (MViT v2's
decomposed relative position bias, Swin's relative position table), a restricted key set (Swin's
shifted windows, TimeSformer's divided space / time attention). :class:`TokenCapture` holds the
block's queries ``q`` (B, heads, E_q + N_q, d) and keys ``k`` (B, heads, E_k + N_k, d) once, and
an :class:`AttentionRule` that says, for any set of queries, which keys they see and what is
added to ``scale * q . k``; a row is then computed on demand for the queries asked for::

    b = cap["blocks.0.attn"]                 # a TokenCapture, same interface as BlockCapture
    b.num_heads, b.query_shape, b.key_shape
    b.row((t, h, w))                         # (T', H', W'): the mean over heads of per-head rows
    b.row((t, h, w), head=2)                 # one head's softmax row over the key grid
    b.extra_weight((t, h, w))                # what the query gives the class token (off the grid)
    b.token_probs([0, 5])                    # full rows over every key token, class token included

Token layout (the rule's indices use it): the first ``query_extra`` query tokens (and
``key_extra`` key tokens) are extra tokens off the grid (a class token; padding); the grid
tokens follow in (T, H, W) order, T slowest. Grid-only views (row, matrix, column, statistics)
drop the extra keys: their rows sum to 1 minus :meth:`TokenCapture.extra_weight`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .capture import GridGeometry, OutOfGridError

ELEMENT_BUDGET = 1 << 24  # logits computed at once (heads x queries x keys): 64 MiB of float32


class Terms(NamedTuple):
    """What a rule adds, for Q queries, to the plain logits ``scale * q . k`` over M keys.

    keys: (Q, M) long key-token indices each query sees (None: all E_k + N_k key tokens, M = all);
    bias: (heads or 1, Q, M) added to the logits (None: nothing);
    valid: (Q, M) bool, False where the query does not attend the key (its weight is exactly 0).
    """

    keys: Tensor | None = None
    bias: Tensor | None = None
    valid: Tensor | None = None


class AttentionRule:
    """Plain global attention: every query sees every key, nothing added. Subclass to change that.

    ``terms(capture, tokens, batch)`` gets the query-token indices (Q,) (extra tokens first, as
    in :class:`TokenCapture`) and returns :class:`Terms`. ``nbytes``: memory the rule holds.
    ``describe``: a few words for captions ("global", "window 8x7x7, shifted").
    """

    nbytes = 0
    describe = "global"

    def terms(self, capture: "TokenCapture", tokens: Tensor, batch: int) -> Terms:
        return Terms()


class DividedRule(AttentionRule):
    """Divided attention on a shared query/key grid: ``"time"`` (keys at the same (h, w)) or
    ``"space"`` (keys in the same frame t); extra keys (a class token) are seen by every query
    when ``extra_keys_visible``, extra queries see every key."""

    def __init__(self, dims: str, extra_keys_visible: bool = True) -> None:
        if dims not in ("space", "time"):
            raise ValueError(f"divided attention is 'space' or 'time', got {dims!r}")
        self.dims = dims
        self.extra_keys_visible = bool(extra_keys_visible)
        self.describe = f"divided, {dims}"

    def terms(self, capture: "TokenCapture", tokens: Tensor, batch: int) -> Terms:
        if capture.query_shape != capture.key_shape:
            raise ValueError(f"block {capture.name}: divided attention needs the same query and key grids")
        _, h, w = capture.key_shape
        ek, eq = capture.key_extra, capture.query_extra
        cell = (tokens - eq).clamp(min=0)
        qt, qhw = cell // (h * w), cell % (h * w)
        k = torch.arange(capture.k.shape[2], device=tokens.device) - ek
        kc = k.clamp(min=0)
        kt, khw = kc // (h * w), kc % (h * w)
        same = (qt[:, None] == kt[None, :]) if self.dims == "space" else (qhw[:, None] == khw[None, :])
        valid = same & (k[None, :] >= 0)
        valid |= (k[None, :] < 0) & self.extra_keys_visible
        valid |= (tokens < eq)[:, None]
        return Terms(valid=valid)


@dataclass
class TokenCapture(GridGeometry):
    """What one multi-head attention block saw in one forward pass, and its rows on demand.

    q: (B, heads, E_q + N_q, d) queries as the block multiplies them (unscaled; ``scale`` is
    applied here, as the block does); k: (B, heads, E_k + N_k, d) keys; grids (T, H, W) of the
    N_q query and N_k key tokens; input_shape (T_in, H_in, W_in) of the model input.
    """

    name: str
    q: Tensor
    k: Tensor
    query_grid: tuple[int, int, int]
    key_grid: tuple[int, int, int]
    input_shape: tuple[int, int, int]
    scale: float
    query_extra: int = 0  # leading query tokens off the grid (a class token)
    key_extra: int = 0  # leading key tokens off the grid (a class token, padding)
    extra_label: str | None = None  # what the extra key tokens are, for captions ("class token")
    rule: AttentionRule | None = None
    kind: str = "self_attention"  # nlviz.models.family.KINDS

    # BlockCapture's descriptive attributes, with their meaning for self-attention
    pairwise = "embedded_gaussian"  # softmax of scaled dot products: the paper's embedded Gaussian
    dims = "spacetime"  # the grid spans space and time (restrictions, if any, are the rule's)
    time_groups = 1
    concat_weight = None
    signed = False  # softmax rows: non-negative, each sums to 1 over all key tokens

    def __post_init__(self) -> None:
        self.query_grid = tuple(int(s) for s in self.query_grid)
        self.key_grid = tuple(int(s) for s in self.key_grid)
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if self.q.dim() != 4 or self.k.dim() != 4 or self.q.shape[:2] != self.k.shape[:2] \
                or self.q.shape[3] != self.k.shape[3]:
            raise ValueError(f"block {self.name}: q and k must be (B, heads, tokens, d) alike, "
                             f"got {tuple(self.q.shape)} and {tuple(self.k.shape)}")
        for what, t, extra, grid in (("query", self.q, self.query_extra, self.query_grid),
                                     ("key", self.k, self.key_extra, self.key_grid)):
            if t.shape[2] != extra + math.prod(grid):
                raise ValueError(f"block {self.name}: {t.shape[2]} {what} tokens, expected {extra} extra + "
                                 f"{'x'.join(map(str, grid))} grid")
        if self.rule is None:
            self.rule = AttentionRule()

    # -- shapes

    @property
    def query_shape(self) -> tuple[int, int, int]:
        return self.query_grid

    @property
    def key_shape(self) -> tuple[int, int, int]:
        return self.key_grid

    @property
    def batch_size(self) -> int:
        return int(self.q.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.q.shape[1])

    @property
    def channels(self) -> int:
        """Channels of one head's query (d)."""
        return int(self.q.shape[3])

    @property
    def extra_tokens(self) -> tuple[str, ...]:
        """One name per extra key token (empty when the keys are all on the grid)."""
        return (self.extra_label or "extra token",) * self.key_extra

    @property
    def nbytes(self) -> int:
        """Memory held by this capture: q, k (shared storage counted once) and the rule's tensors."""
        seen, total = set(), 0
        for t in (self.q, self.k):
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
        return total + int(self.rule.nbytes)

    def _check_head(self, head: int | None) -> list[int]:
        if head is None:
            return list(range(self.num_heads))
        if isinstance(head, bool) or not 0 <= int(head) < self.num_heads:
            raise OutOfGridError(f"head {head!r} out of range: block {self.name} has {self.num_heads} heads "
                                 f"(0..{self.num_heads - 1}, or None for their mean)")
        return [int(head)]

    def _grid_tokens(self, cells: Iterable[Iterable[int]]) -> Tensor:
        flat = [self.flat_query(c) for c in cells]
        return torch.tensor(flat, dtype=torch.long) + self.query_extra

    # -- the core: softmax rows of a set of query tokens

    def _probs(self, tokens: Tensor, batch: int, heads: list[int]) -> Tensor:
        """(len(heads), Q, E_k + N_k) per-head softmax rows of the query tokens ``tokens`` (Q,)."""
        dev = self.q.device
        tokens = tokens.to(dev)
        h_idx = torch.tensor(heads, device=dev)
        lo, hi = heads[0], heads[-1] + 1
        if heads == list(range(lo, hi)):  # all heads or one: views, no copy of the keys per row
            q, k = self.q[batch, lo:hi][:, tokens], self.k[batch, lo:hi]
        else:
            q, k = self.q[batch].index_select(0, h_idx)[:, tokens], self.k[batch].index_select(0, h_idx)
        q, k = q.float(), k.float()  # (h, Q, d), (h, N, d); no-ops for float32
        terms = self.rule.terms(self, tokens, batch)
        if terms.keys is None:
            logits = torch.matmul(self.scale * q, k.transpose(1, 2))  # (h, Q, N)
        else:
            keys = terms.keys.to(dev)
            kk = k[:, keys]  # (h, Q, M, d)
            logits = torch.einsum("hqd,hqmd->hqm", self.scale * q, kk)
        if terms.bias is not None:
            bias = terms.bias.to(dev).float()
            if bias.shape[0] != 1:
                bias = bias.index_select(0, h_idx)
            logits = logits + bias
        if terms.valid is not None:
            logits = logits.masked_fill(~terms.valid.to(dev)[None], float("-inf"))
        p = torch.softmax(logits, dim=-1)
        if terms.valid is not None:
            p = p.masked_fill(~terms.valid.to(dev)[None], 0.0)
        if terms.keys is None:
            return p
        out = torch.zeros((len(heads), len(tokens), self.k.shape[2]), dtype=p.dtype, device=dev)
        return out.scatter_add_(2, keys[None].expand(len(heads), -1, -1), p)

    def _chunk_size(self, heads: int) -> int:
        return max(1, ELEMENT_BUDGET // max(1, heads * self.k.shape[2]))

    def token_probs(self, tokens: Iterable[int] | Tensor, batch: int = 0, head: int | None = None,
                    per_head: bool = False) -> Tensor:
        """Rows over every key token (extra tokens first), for query tokens ``tokens``.

        (Q, E_k + N_k): one head's rows, or their mean over heads (``head=None``);
        ``per_head=True``: (heads, Q, E_k + N_k), every head (``head`` ignored). Each row of one
        head is exactly the block's softmax row (keys it does not see hold 0).
        """
        batch = self._check_batch(batch)
        heads = list(range(self.num_heads)) if per_head else self._check_head(head)
        tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
        n_tok = self.q.shape[2]
        if len(tokens) and (int(tokens.min()) < 0 or int(tokens.max()) >= n_tok):
            raise OutOfGridError(f"query token out of range 0..{n_tok - 1} for block {self.name}")
        step = self._chunk_size(len(heads))
        parts = [self._probs(tokens[i:i + step], batch, heads) for i in range(0, len(tokens), step)]
        if not parts:
            p = torch.zeros((len(heads), 0, self.k.shape[2]))
        else:
            p = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # one chunk (a click): no copy
        return p if per_head else p.mean(0)

    # -- BlockCapture's interface

    def rows(self, cells: Iterable[Iterable[int]], batch: int = 0, head: int | None = None) -> Tensor:
        """Rows of several query cells over the key grid: (Q, T', H', W').

        ``head=None``: the mean over heads of each head's softmax row; an int: that head's row.
        Keys a restricted block (a window) does not see hold exactly 0; the weight on extra key
        tokens (:meth:`extra_weight`) is left out, so rows sum to 1 minus it.
        """
        batch = self._check_batch(batch)
        self._check_head(head)
        p = self.token_probs(self._grid_tokens(cells), batch, head)
        return p[:, self.key_extra:].reshape(len(p), *self.key_grid)

    def row(self, cell: Iterable[int], batch: int = 0, head: int | None = None) -> Tensor:
        """One query cell's row over the key grid: (T', H', W') (see :meth:`rows`)."""
        return self.rows([cell], batch, head)[0]

    def extra_weight(self, cell: Iterable[int], batch: int = 0, head: int | None = None) -> float:
        """The weight the query at ``cell`` gives the extra key tokens (the class token), for the
        mean over heads or one head; 0 when the block has none."""
        batch = self._check_batch(batch)
        self._check_head(head)
        if not self.key_extra:
            self._check_cell(cell, self.query_shape, "query")
            return 0.0
        p = self.token_probs(self._grid_tokens([cell]), batch, head)
        return float(p[0, :self.key_extra].sum())

    def extra_row(self, index: int = 0, batch: int = 0, head: int | None = None) -> Tensor:
        """The row of extra query token ``index`` (the class token as a query) over the key grid."""
        if not 0 <= int(index) < self.query_extra:
            raise OutOfGridError(f"block {self.name} has {self.query_extra} extra query token(s), not index {index}")
        p = self.token_probs([int(index)], batch, head)
        return p[0, self.key_extra:].reshape(self.key_grid)

    def row_chunks(self, batch: int = 0, chunk: int = 2048, head: int | None = None) -> Iterator[tuple[int, Tensor]]:
        """Grid rows of :meth:`matrix` a chunk of queries at a time: yields (start, rows (Q, N_k)).

        Chunks hold at most ``chunk`` queries, fewer where the heads x keys logits would pass
        :data:`ELEMENT_BUDGET`; memory stays bounded however large the block.
        """
        batch = self._check_batch(batch)
        heads = self._check_head(head)
        if isinstance(chunk, bool) or int(chunk) < 1:
            raise ValueError(f"chunk must be a positive number of query rows, got {chunk!r}")
        chunk = min(int(chunk), self._chunk_size(len(heads)))
        n_q = math.prod(self.query_grid)
        for start in range(0, n_q, chunk):
            stop = min(start + chunk, n_q)
            tokens = torch.arange(start, stop) + self.query_extra
            yield start, self._probs(tokens, batch, heads).mean(0)[:, self.key_extra:]

    def matrix(self, batch: int = 0, head: int | None = None) -> Tensor:
        """Grid rows of every grid query: (N_q, N_k), (T, H, W) order; N_q x N_k memory."""
        return torch.cat([rows for _, rows in self.row_chunks(batch, head=head)])

    def column(self, key_cell: Iterable[int], batch: int = 0, chunk: int = 4096, head: int | None = None) -> Tensor:
        """Who attends to one key: every query's weight on ``key_cell``, a (T, H, W) tensor."""
        k = self.flat_key(key_cell)
        parts = [rows[:, k] for _, rows in self.row_chunks(batch, chunk, head)]
        return torch.cat(parts).reshape(self.query_shape)

    def allowed_mask(self, start: int, stop: int) -> Tensor | None:
        """(stop - start, N_k) bool: the grid keys grid queries [start, stop) see; None when all."""
        tokens = torch.arange(start, stop) + self.query_extra
        terms = self.rule.terms(self, tokens.to(self.q.device), 0)
        if terms.keys is None and terms.valid is None:
            return None
        n = self.k.shape[2]
        if terms.keys is None:
            mask = terms.valid.bool()
        else:
            valid = torch.ones_like(terms.keys, dtype=torch.int32) if terms.valid is None else terms.valid.int()
            hits = torch.zeros((len(tokens), n), dtype=torch.int32, device=terms.keys.device)
            mask = hits.scatter_add_(1, terms.keys, valid) > 0
        return mask[:, self.key_extra:]


__all__ = ["AttentionRule", "DividedRule", "ELEMENT_BUDGET", "Terms", "TokenCapture"]
