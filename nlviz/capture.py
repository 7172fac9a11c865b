"""Capture the attention of non-local blocks with forward hooks, one row at a time.

Every pairwise function of the non-local block factorizes: given a block's theta (queries)
and phi (keys), one query's row of the affinity costs O(N_keys * C'), and the N_q x N_k
matrix never needs to exist. So capture keeps, per block, only the outputs of the block's
``theta`` and ``phi`` submodules (and w_f for concatenation), and computes rows on request
with :func:`nlviz.nonlocal_block.affinity`, the very function the block's forward uses::

    with capture_attention(model) as cap:   # hooks registered here, removed on exit (also on error)
        logits = model(clip)                # clip: (N, 3, T, H, W)
    cap.blocks                              # block names, in network order
    b = cap["res3.1.nonlocal"]
    b.query_shape, b.key_shape              # (T, H, W) grids of queries and (subsampled) keys
    b.row((t, h, w))                        # (T', H', W') normalized weights of one query
    b.matrix()                              # (N_q, N_k) full normalized affinity, rows in (T, H, W) order
    b.query_at(t, y, x)                     # model-input frame/pixel -> query cell (t, h, w)

Sharing a model between threads (the app's browser sessions share one cached model): each
capture's hooks record only forwards run by the thread that opened the capture, so several
threads may capture on the same model object at once, each getting its own results; nothing
but the hooks themselves is ever attached to the model, and they are removed on exit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .nonlocal_block import affinity, allowed_keys, key_index

Cell = tuple[int, int, int]
Box = tuple[float, float, float, float, float, float]


class CaptureError(RuntimeError):
    """Capture was used wrongly: no attention block in the model, nothing recorded, unknown block."""


class OutOfGridError(ValueError):
    """A position lies outside the model input or a block's grid."""


def is_attention_block(module: nn.Module) -> bool:
    """Whether ``module`` exposes attention factors the way :class:`NonLocalBlock` does.

    Such a module has submodules ``theta`` and ``phi`` (their outputs: queries (N, C, T, H, W)
    and keys (N, C, T', H', W')), attributes ``pairwise``, ``dims``, ``scale``, ``time_groups``
    and a method ``concat_weight()``; it sets the class attribute ``is_attention_block = True``.
    """
    return bool(getattr(type(module), "is_attention_block", False))


@dataclass
class BlockCapture:
    """What one attention block saw in one forward pass, and its attention on demand.

    theta: (N, C, T, H, W) queries; phi: (N, C, T', H', W') keys (pooled where the block pools);
    input_shape: (T_in, H_in, W_in) of the model input, for mapping pixels to cells.
    """

    name: str
    pairwise: str
    dims: str
    scale: float
    time_groups: int
    theta: Tensor
    phi: Tensor
    concat_weight: Tensor | None
    input_shape: tuple[int, int, int]

    @property
    def query_shape(self) -> tuple[int, int, int]:
        """(T, H, W) grid of query cells."""
        return tuple(self.theta.shape[2:])

    @property
    def key_shape(self) -> tuple[int, int, int]:
        """(T', H', W') grid of key cells (coarser than the query grid when subsampled)."""
        return tuple(self.phi.shape[2:])

    @property
    def batch_size(self) -> int:
        return self.theta.shape[0]

    @property
    def signed(self) -> bool:
        """True when weights may be negative or not sum to 1 (dot_product, concatenation)."""
        return self.pairwise not in ("gaussian", "embedded_gaussian")

    @property
    def nbytes(self) -> int:
        """Memory held by this capture's tensors."""
        extra = 0 if self.concat_weight is None else self.concat_weight.nbytes
        return self.theta.nbytes + self.phi.nbytes + extra

    def _check_cell(self, cell: Iterable[int], shape: tuple[int, int, int], what: str) -> Cell:
        cell = tuple(int(c) for c in cell)
        if len(cell) != 3 or not all(0 <= c < s for c, s in zip(cell, shape)):
            raise OutOfGridError(f"{what} cell {cell} is outside the {what} grid {shape} (T, H, W) of block {self.name}")
        return cell

    def _check_batch(self, batch: int) -> int:
        if not 0 <= batch < self.batch_size:
            raise OutOfGridError(f"batch index {batch} out of range for a batch of {self.batch_size}")
        return batch

    def _row_mask(self, cell: Cell) -> Tensor | None:
        """(1, N_k) bool mask of the keys the query at ``cell`` may attend to; None when all."""
        t, h, w = cell
        tk, hk, wk = self.key_shape
        if self.dims == "spacetime" and self.time_groups == 1:
            return None
        mask = torch.zeros(self.key_shape, dtype=torch.bool)
        if self.dims == "space":
            mask[t] = True
        elif self.dims == "time":
            mask[:, key_index(self.query_shape[1], hk)[h], key_index(self.query_shape[2], wk)[w]] = True
        else:
            g = self.time_groups
            mask[(torch.arange(tk) // g) == (t // g)] = True
        return mask.reshape(1, -1).to(self.phi.device)

    def rows(self, cells: Iterable[Iterable[int]], batch: int = 0) -> Tensor:
        """Normalized attention rows of several queries: (Q, T', H', W').

        Costs O(Q * N_k * C). Softmax variants: each row sums to 1. dot_product and
        concatenation: f / N (N = number of keys the query may attend to), as the paper
        defines it; such rows may be negative and need not sum to 1.
        Keys a "space"/"time" block does not attend to hold exactly 0.
        """
        batch = self._check_batch(batch)
        cells = [self._check_cell(c, self.query_shape, "query") for c in cells]
        ck = self.theta.shape[1]
        keys = self.phi[batch].reshape(ck, -1)  # (C, N_k)
        out = []
        for cell in cells:
            q = self.theta[batch, :, cell[0], cell[1], cell[2]].reshape(1, ck)  # (1, C)
            out.append(
                affinity(self.pairwise, q, keys, scale=self.scale, concat_weight=self.concat_weight,
                         mask=self._row_mask(cell))
            )
        return torch.cat(out).reshape(len(cells), *self.key_shape)

    def row(self, cell: Iterable[int], batch: int = 0) -> Tensor:
        """Normalized attention of the query at ``cell`` = (t, h, w): a (T', H', W') tensor.

        Equal to ``matrix(batch)[flat(cell)]`` reshaped to the key grid, at O(N_k * C) cost.
        """
        return self.rows([cell], batch)[0]

    def matrix(self, batch: int = 0) -> Tensor:
        """The full normalized affinity (N_q, N_k), rows and columns in (T, H, W) order.

        This is exactly the matrix the block multiplied with g in its forward pass. It costs
        N_q * N_k memory (e.g. 6272 x 1568 floats for res3 of I3D-R50 at 8x224x224): use
        :meth:`row` for single queries.
        """
        batch = self._check_batch(batch)
        ck = self.theta.shape[1]
        q = self.theta[batch].reshape(ck, -1).T  # (N_q, C)
        k = self.phi[batch].reshape(ck, -1)  # (C, N_k)
        mask = allowed_keys(self.dims, self.query_shape, self.key_shape, self.time_groups)
        if mask is not None:
            mask = mask.to(q.device)
        return affinity(self.pairwise, q, k, scale=self.scale, concat_weight=self.concat_weight, mask=mask)

    def query_at(self, t: float, y: float, x: float) -> Cell:
        """Model-input position (frame t, pixel row y, column x; floats allowed) -> query cell.

        The cell is the one whose receptive-field stride covers the position:
        floor(t * T / T_in), floor(y * H / H_in), floor(x * W / W_in).
        """
        t_in, h_in, w_in = self.input_shape
        if not (0 <= t < t_in and 0 <= y < h_in and 0 <= x < w_in):
            raise OutOfGridError(
                f"position (t={t}, y={y}, x={x}) is outside the model input of {t_in} frames x {h_in} x {w_in} pixels"
            )
        tq, hq, wq = self.query_shape
        return (min(int(t * tq // t_in), tq - 1), min(int(y * hq // h_in), hq - 1), min(int(x * wq // w_in), wq - 1))

    def _grid_box(self, start: Cell, stop: Cell) -> Box:
        """Query-grid half-open box [start, stop) -> model-input box (t0, t1, y0, y1, x0, x1)."""
        ratios = [i / q for i, q in zip(self.input_shape, self.query_shape)]
        (t0, y0, x0), (t1, y1, x1) = ([a * r for a, r in zip(c, ratios)] for c in (start, stop))
        return (t0, t1, y0, y1, x0, x1)

    def query_box(self, cell: Iterable[int]) -> Box:
        """The model-input region (t0, t1, y0, y1, x0, x1), half-open, of one query cell."""
        t, h, w = self._check_cell(cell, self.query_shape, "query")
        return self._grid_box((t, h, w), (t + 1, h + 1, w + 1))

    def key_box(self, cell: Iterable[int]) -> Box:
        """The model-input region (t0, t1, y0, y1, x0, x1), half-open, that one key cell pools.

        A subsampled key (k_h, k_w) is the max over query rows [2 k_h, 2 k_h + 2) and columns
        [2 k_w, 2 k_w + 2) of the block's grid; its box is that region in input pixels.
        """
        t, h, w = self._check_cell(cell, self.key_shape, "key")
        strides = [max(q // k, 1) for q, k in zip(self.query_shape, self.key_shape)]
        start = (t * strides[0], h * strides[1], w * strides[2])
        stop = tuple(min(s + st, q) for s, st, q in zip(start, strides, self.query_shape))
        return self._grid_box(start, stop)

    def flat_query(self, cell: Iterable[int]) -> int:
        """Index of a query cell in the rows of :meth:`matrix` ((T, H, W) order)."""
        t, h, w = self._check_cell(cell, self.query_shape, "query")
        _, hq, wq = self.query_shape
        return (t * hq + h) * wq + w

    # -- the reverse direction: who attends to a key, computed a chunk of queries at a time

    def flat_key(self, cell: Iterable[int]) -> int:
        """Index of a key cell in the columns of :meth:`matrix` ((T', H', W') order)."""
        t, h, w = self._check_cell(cell, self.key_shape, "key")
        _, hk, wk = self.key_shape
        return (t * hk + h) * wk + w

    def key_at(self, t: float, y: float, x: float) -> Cell:
        """Model-input position (frame t, pixel row y, column x; floats allowed) -> key cell.

        The key is the one whose pooled box (:meth:`key_box`) covers the position: the query
        cell under it (:meth:`query_at`) mapped through the pool, as the block itself relates
        queries to keys. The odd last query row or column that a floor-mode pool drops maps to
        the last key, the one next to it. Raises :class:`OutOfGridError` outside the model input.
        """
        qt, qh, qw = self.query_at(t, y, x)
        return tuple(
            int(key_index(q_size, k_size)[q])
            for q, q_size, k_size in zip((qt, qh, qw), self.query_shape, self.key_shape)
        )

    def allowed_mask(self, start: int, stop: int) -> Tensor | None:
        """(stop - start, N_k) bool: the keys the queries with flat indices [start, stop) may attend to.

        None when every query may attend to every key (plain "spacetime"). Equal to rows
        [start, stop) of :func:`nlviz.nonlocal_block.allowed_keys`, without building the
        N_q x N_k mask: a chunk of queries costs (stop - start) * N_k booleans.
        """
        if self.dims == "spacetime" and self.time_groups == 1:
            return None
        tq, hq, wq = self.query_shape
        tk, hk, wk = self.key_shape
        q = torch.arange(start, stop)
        q_t, q_h, q_w = q // (hq * wq), (q // wq) % hq, q % wq
        k = torch.arange(tk * hk * wk)
        k_t, k_h, k_w = k // (hk * wk), (k // wk) % hk, k % wk
        if self.dims == "spacetime":
            g = self.time_groups
            mask = (q_t[:, None] // g) == (k_t[None, :] // g)
        elif self.dims == "space":
            mask = q_t[:, None] == k_t[None, :]
        elif self.dims == "time":
            mask = (key_index(hq, hk)[q_h][:, None] == k_h[None, :]) & (key_index(wq, wk)[q_w][:, None] == k_w[None, :])
        else:
            raise ValueError(f"block {self.name} has unknown dims {self.dims!r}; expected spacetime, space or time")
        return mask.to(self.phi.device)

    def row_chunks(self, batch: int = 0, chunk: int = 2048) -> Iterator[tuple[int, Tensor]]:
        """Rows of :meth:`matrix`, ``chunk`` queries at a time: yields (start, rows (Q, N_k)).

        ``rows`` equals ``matrix(batch)[start:start + Q]``; only one chunk exists at a time, so
        memory stays O(chunk * N_k) however large the block. For whole-block statistics and
        columns of blocks too big to materialize.
        """
        batch = self._check_batch(batch)
        if isinstance(chunk, bool) or int(chunk) < 1:
            raise ValueError(f"chunk must be a positive number of query rows, got {chunk!r}")
        chunk = int(chunk)
        ck = self.theta.shape[1]
        q_all = self.theta[batch].reshape(ck, -1).T  # (N_q, C), a view
        k = self.phi[batch].reshape(ck, -1)  # (C, N_k)
        for start in range(0, q_all.shape[0], chunk):
            stop = min(start + chunk, q_all.shape[0])
            rows = affinity(self.pairwise, q_all[start:stop], k, scale=self.scale,
                            concat_weight=self.concat_weight, mask=self.allowed_mask(start, stop))
            yield start, rows

    def column(self, key_cell: Iterable[int], batch: int = 0, chunk: int = 4096) -> Tensor:
        """Who attends to one key: the weight every query gives ``key_cell``, a (T, H, W) tensor.

        The column ``matrix(batch)[:, flat_key(key_cell)]`` laid out on the QUERY grid,
        computed ``chunk`` queries at a time (memory O(chunk * N_k), never N_q x N_k). Each
        query's row is normalized over all its keys first, so for softmax variants the value
        is the share of that query's attention landing on this key. Queries that may not attend
        to the key ("space"/"time" blocks, time groups) hold exactly 0.
        """
        k = self.flat_key(key_cell)
        parts = [rows[:, k] for _, rows in self.row_chunks(batch, chunk)]
        return torch.cat(parts).reshape(self.query_shape)


@dataclass
class Capture:
    """Per-block captures of one forward pass, keyed by block name in network order."""

    _blocks: dict[str, BlockCapture] = field(default_factory=dict)

    @property
    def blocks(self) -> list[str]:
        """Names of the captured blocks, in the order the forward pass ran them."""
        return list(self._blocks)

    def __getitem__(self, name: str) -> BlockCapture:
        try:
            return self._blocks[name]
        except KeyError:
            if not self._blocks:
                raise CaptureError(
                    "nothing was captured: run the model's forward pass inside `with capture_attention(model) as cap:`"
                ) from None
            raise CaptureError(f"no block named {name!r}; captured blocks: {', '.join(self._blocks)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._blocks

    def __iter__(self) -> Iterator[BlockCapture]:
        return iter(self._blocks.values())

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def nbytes(self) -> int:
        """Memory held by all captured tensors."""
        return sum(b.nbytes for b in self)

    def rows_at(self, t: float, y: float, x: float, batch: int = 0) -> dict[str, Tensor]:
        """For a model-input position, every block's attention row: {name: (T', H', W')}."""
        return {b.name: b.row(b.query_at(t, y, x), batch) for b in self}


def attention_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The model's attention blocks by qualified module name, in definition order."""
    return {name: m for name, m in model.named_modules() if is_attention_block(m)}


_REGISTRATION_LOCK = threading.Lock()


@contextmanager
def capture_attention(
    model: nn.Module, *, blocks: Iterable[str] | None = None, store_on: torch.device | str | None = None
) -> Iterator[Capture]:
    """Record the attention factors of every non-local block during forward passes in this block.

    Args:
        model: any module containing :class:`~nlviz.nonlocal_block.NonLocalBlock` (or compatible) blocks.
        blocks: names of the blocks to capture (default: all).
        store_on: device to keep the captured tensors on (default: where they were computed).

    Yields a :class:`Capture`, filled when the model's forward runs inside the ``with`` block
    on the same thread; a second forward overwrites the first. Hooks are removed on exit,
    also when the forward raises. Only what the hooks record is kept: detached theta/phi
    per block, never the N_q x N_k matrix.
    """
    found = attention_blocks(model)
    if not found:
        raise CaptureError(f"{type(model).__name__} has no non-local (attention) block to capture")
    if blocks is not None:
        wanted = list(blocks)
        unknown = [b for b in wanted if b not in found]
        if unknown:
            raise CaptureError(f"unknown block(s) {unknown}; the model's blocks are: {', '.join(found)}")
        found = {b: found[b] for b in wanted}

    owner = threading.get_ident()
    cap = Capture()
    pending: dict[str, dict] = {}
    input_shape: list[tuple[int, int, int]] = []

    def keep(t: Tensor, src: Tensor | None = None) -> Tensor:
        t = t.detach()
        if src is not None and t.data_ptr() == src.data_ptr():
            t = t.clone()  # gaussian theta is the block's input itself: keep our own copy
        return t if store_on is None else t.to(store_on)

    def on_model_input(_module: nn.Module, args: tuple) -> None:
        if threading.get_ident() == owner and args and isinstance(args[0], Tensor) and args[0].dim() == 5:
            input_shape[:] = [tuple(args[0].shape[2:])]

    def on_theta(name: str):
        def hook(_module: nn.Module, args: tuple, output: Tensor) -> None:
            if threading.get_ident() == owner:
                pending[name] = {"theta": keep(output, args[0])}

        return hook

    def on_phi(name: str, block: nn.Module):
        def hook(_module: nn.Module, args: tuple, output: Tensor) -> None:
            if threading.get_ident() != owner or name not in pending:
                return
            if not input_shape:
                raise CaptureError("capture needs the model input as a (N, 3, T, H, W) tensor, first argument")
            wf = block.concat_weight()
            cap._blocks.pop(name, None)  # a second forward re-records, in its own order
            cap._blocks[name] = BlockCapture(
                name=name,
                pairwise=block.pairwise,
                dims=block.dims,
                scale=float(block.scale),
                time_groups=int(block.time_groups),
                theta=pending.pop(name)["theta"],
                phi=keep(output, args[0]),
                concat_weight=None if wf is None else keep(wf).clone(),
                input_shape=input_shape[0],
            )

        return hook

    with _REGISTRATION_LOCK:
        handles = [model.register_forward_pre_hook(on_model_input)]
        try:
            for name, block in found.items():
                handles.append(block.theta.register_forward_hook(on_theta(name)))
                handles.append(block.phi.register_forward_hook(on_phi(name, block)))
        except BaseException:
            for h in handles:
                h.remove()
            raise
    try:
        yield cap
    finally:
        with _REGISTRATION_LOCK:
            for h in handles:
                h.remove()


@torch.no_grad()
def record(model: nn.Module, clip: Tensor, **kwargs) -> tuple[Tensor, Capture]:
    """One forward pass of ``model`` on ``clip`` (N, 3, T, H, W) with capture: (logits, Capture).

    Runs under ``torch.no_grad()``; the model is not put in eval mode here (callers own the
    model's mode; the loaders return models in eval mode). Keyword arguments go to
    :func:`capture_attention`.
    """
    with capture_attention(model, **kwargs) as cap:
        logits = model(clip)
    return logits, cap


__all__ = [
    "BlockCapture",
    "Capture",
    "CaptureError",
    "OutOfGridError",
    "attention_blocks",
    "capture_attention",
    "is_attention_block",
    "record",
]
