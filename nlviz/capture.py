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

Other kinds of attention (multi-head self-attention over a token grid: MViT, Swin3D, the
Hugging Face video transformers) plug in as :class:`CaptureAdapter` s: a family module that
knows where its model keeps queries and keys calls :func:`register_adapter` when it is
imported, and ``capture_attention`` / ``record`` then capture those blocks too, into
:class:`nlviz.capture_tokens.TokenCapture` objects with the same interface as
:class:`BlockCapture` (plus heads: ``num_heads``, ``row(cell, head=None)``, None = the mean over
heads of the per-head rows).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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


class GridGeometry:
    """Model-input pixels <-> query and key cells of one block, for every kind of captured block.

    Needs ``name``, ``query_shape``, ``key_shape`` (both (T, H, W)), ``input_shape`` (T_in,
    H_in, W_in) and ``batch_size``.
    """

    def _check_cell(self, cell: Iterable[int], shape: tuple[int, int, int], what: str) -> Cell:
        cell = tuple(int(c) for c in cell)
        if len(cell) != 3 or not all(0 <= c < s for c, s in zip(cell, shape)):
            raise OutOfGridError(f"{what} cell {cell} is outside the {what} grid {shape} (T, H, W) of block {self.name}")
        return cell

    def _check_batch(self, batch: int) -> int:
        if not 0 <= batch < self.batch_size:
            raise OutOfGridError(f"batch index {batch} out of range for a batch of {self.batch_size}")
        return batch

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


@dataclass
class BlockCapture(GridGeometry):
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

    num_heads = 1  # a non-local block is one head; ``head`` may be None or 0 wherever it is taken

    @property
    def channels(self) -> int:
        """Channels of one query (theta's C')."""
        return int(self.theta.shape[1])

    # keys off the grid (a class token, padding), each named; a non-local block has none
    extra_tokens = ()
    extra_label = None

    def extra_weight(self, cell: Iterable[int], batch: int = 0, head: int | None = None) -> float:
        """The weight the query at ``cell`` gives keys off the grid: always 0 for a non-local block."""
        self._check_head(head)
        self._check_cell(cell, self.query_shape, "query")
        self._check_batch(batch)
        return 0.0

    def _check_head(self, head: int | None) -> None:
        if head is not None and (isinstance(head, bool) or int(head) != 0):
            raise OutOfGridError(f"head {head!r} out of range: block {self.name} has one head (use None or 0)")

    @property
    def signed(self) -> bool:
        """True when weights may be negative or not sum to 1 (dot_product, concatenation)."""
        return self.pairwise not in ("gaussian", "embedded_gaussian")

    @property
    def nbytes(self) -> int:
        """Memory held by this capture's tensors."""
        extra = 0 if self.concat_weight is None else self.concat_weight.nbytes
        return self.theta.nbytes + self.phi.nbytes + extra

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

    def rows(self, cells: Iterable[Iterable[int]], batch: int = 0, head: int | None = None) -> Tensor:
        """Normalized attention rows of several queries: (Q, T', H', W').

        Costs O(Q * N_k * C). Softmax variants: each row sums to 1. dot_product and
        concatenation: f / N (N = number of keys the query may attend to), as the paper
        defines it; such rows may be negative and need not sum to 1.
        Keys a "space"/"time" block does not attend to hold exactly 0. ``head``: None or 0.
        """
        self._check_head(head)
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

    def row(self, cell: Iterable[int], batch: int = 0, head: int | None = None) -> Tensor:
        """Normalized attention of the query at ``cell`` = (t, h, w): a (T', H', W') tensor.

        Equal to ``matrix(batch)[flat(cell)]`` reshaped to the key grid, at O(N_k * C) cost.
        """
        return self.rows([cell], batch, head)[0]

    def matrix(self, batch: int = 0, head: int | None = None) -> Tensor:
        """The full normalized affinity (N_q, N_k), rows and columns in (T, H, W) order.

        This is exactly the matrix the block multiplied with g in its forward pass. It costs
        N_q * N_k memory (e.g. 6272 x 1568 floats for res3 of I3D-R50 at 8x224x224): use
        :meth:`row` for single queries.
        """
        self._check_head(head)
        batch = self._check_batch(batch)
        ck = self.theta.shape[1]
        q = self.theta[batch].reshape(ck, -1).T  # (N_q, C)
        k = self.phi[batch].reshape(ck, -1)  # (C, N_k)
        mask = allowed_keys(self.dims, self.query_shape, self.key_shape, self.time_groups)
        if mask is not None:
            mask = mask.to(q.device)
        return affinity(self.pairwise, q, k, scale=self.scale, concat_weight=self.concat_weight, mask=mask)

    # -- the reverse direction: who attends to a key, computed a chunk of queries at a time

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

    def row_chunks(self, batch: int = 0, chunk: int = 2048, head: int | None = None) -> Iterator[tuple[int, Tensor]]:
        """Rows of :meth:`matrix`, ``chunk`` queries at a time: yields (start, rows (Q, N_k)).

        ``rows`` equals ``matrix(batch)[start:start + Q]``; only one chunk exists at a time, so
        memory stays O(chunk * N_k) however large the block. For whole-block statistics and
        columns of blocks too big to materialize.
        """
        self._check_head(head)
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

    def column(self, key_cell: Iterable[int], batch: int = 0, chunk: int = 4096, head: int | None = None) -> Tensor:
        """Who attends to one key: the weight every query gives ``key_cell``, a (T, H, W) tensor.

        The column ``matrix(batch)[:, flat_key(key_cell)]`` laid out on the QUERY grid,
        computed ``chunk`` queries at a time (memory O(chunk * N_k), never N_q x N_k). Each
        query's row is normalized over all its keys first, so for softmax variants the value
        is the share of that query's attention landing on this key. Queries that may not attend
        to the key ("space"/"time" blocks, time groups) hold exactly 0.
        """
        k = self.flat_key(key_cell)
        parts = [rows[:, k] for _, rows in self.row_chunks(batch, chunk, head)]
        return torch.cat(parts).reshape(self.query_shape)


_BOUND = object()


class HeadView:
    """One block seen through one of its heads: the block's interface, with ``head`` bound.

    Every method that takes ``head`` (row, rows, matrix, row_chunks, column, extra_weight) uses
    the bound one unless given another; everything else is the block's own. Made by
    :meth:`Capture.with_heads`, so views written for a block (nlviz.explore, render, stats)
    show one head without knowing about heads.
    """

    def __init__(self, block: Any, head: int) -> None:
        block._check_head(head)
        self._block, self.head = block, int(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._block, name)

    def __repr__(self) -> str:
        return f"HeadView({self._block.name!r}, head={self.head})"

    def _h(self, head: Any) -> int | None:
        return self.head if head is _BOUND else head

    def rows(self, cells, batch: int = 0, head: Any = _BOUND) -> Tensor:
        return self._block.rows(cells, batch, self._h(head))

    def row(self, cell, batch: int = 0, head: Any = _BOUND) -> Tensor:
        return self._block.row(cell, batch, self._h(head))

    def matrix(self, batch: int = 0, head: Any = _BOUND) -> Tensor:
        return self._block.matrix(batch, self._h(head))

    def row_chunks(self, batch: int = 0, chunk: int = 2048, head: Any = _BOUND):
        return self._block.row_chunks(batch, chunk, self._h(head))

    def column(self, key_cell, batch: int = 0, chunk: int = 4096, head: Any = _BOUND) -> Tensor:
        return self._block.column(key_cell, batch, chunk, self._h(head))

    def extra_weight(self, cell, batch: int = 0, head: Any = _BOUND) -> float:
        return self._block.extra_weight(cell, batch, self._h(head))


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

    def with_heads(self, heads: dict[str, int | None]) -> "Capture":
        """The same capture with some blocks seen through one head ({block: head}; None: the mean
        over heads, as every block shows by default). Shares the tensors; OutOfGridError for a
        head the block does not have."""
        for name in heads:
            self[name]  # CaptureError for an unknown block
        return Capture({name: (HeadView(getattr(b, "_block", b), heads[name])
                               if heads.get(name) is not None else b) for name, b in self._blocks.items()})

    def rows_at(self, t: float, y: float, x: float, batch: int = 0) -> dict[str, Tensor]:
        """For a model-input position, every block's attention row: {name: (T', H', W')}."""
        return {b.name: b.row(b.query_at(t, y, x), batch) for b in self}


def attention_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The model's non-local (theta/phi) blocks by qualified module name, in definition order.

    Only the blocks of :func:`is_attention_block`; :func:`capturable_blocks` lists every block
    capture can record, those of registered :class:`CaptureAdapter` s included.
    """
    return {name: m for name, m in model.named_modules() if is_attention_block(m)}


_REGISTRATION_LOCK = threading.RLock()


class HookContext:
    """What a :class:`CaptureAdapter`'s hooks get from the capture they serve.

    ``mine()``: whether the running forward belongs to the capture's thread (hooks must record
    nothing otherwise: another session may be running the shared model). ``keep(t)``: the
    tensor to store (detached, on ``store_on``). ``input_shape``: (T, H, W) of this forward's
    model input (CaptureError if the model input was not seen). ``store(block)``: file one
    block's capture (an object with BlockCapture's interface; a re-recorded block moves to
    the end, so the order is the forward's).
    """

    def __init__(self, owner: int, store_on: torch.device | str | None, cap: "Capture") -> None:
        self._owner = owner
        self._store_on = store_on
        self._cap = cap
        self._input_shape: tuple[int, int, int] | None = None
        self._cleanups: list[Callable[[], None]] = []

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the capture ends (on its thread, also after an error): for state a hook
        set up for the length of one module's forward (a forward that raises skips the hook that
        would have undone it)."""
        self._cleanups.append(fn)

    def _cleanup(self) -> None:
        while self._cleanups:
            self._cleanups.pop()()

    def mine(self) -> bool:
        return threading.get_ident() == self._owner

    def keep(self, t: Tensor, src: Tensor | None = None) -> Tensor:
        t = t.detach()
        if src is not None and t.data_ptr() == src.data_ptr():
            t = t.clone()  # e.g. gaussian theta is the block's input itself: keep our own copy
        return t if self._store_on is None else t.to(self._store_on)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if self._input_shape is None:
            raise CaptureError("capture needs the model input as a (N, 3, T, H, W) tensor, first argument")
        return self._input_shape

    def set_input_shape(self, shape: Iterable[int]) -> None:
        self._input_shape = tuple(int(s) for s in shape)

    def store(self, block: Any) -> None:
        self._cap._blocks.pop(block.name, None)
        self._cap._blocks[block.name] = block


def _default_input_shape(args: tuple, kwargs: dict) -> tuple[int, int, int] | None:
    """(T, H, W) of the first (N, 3, T, H, W) tensor among a forward's positional arguments."""
    if args and isinstance(args[0], Tensor) and args[0].dim() == 5:
        return tuple(args[0].shape[2:])
    return None


@dataclass(frozen=True)
class CaptureAdapter:
    """How capture finds and hooks one kind of attention block.

    find(model) -> {capture name: module}, in forward order (empty: the model has none);
    hook(name, module, ctx: HookContext) -> the hook handles it registered on the module or its
    children (removed when the capture ends); its hooks call ``ctx.store(...)`` once the
    block's queries and keys are known. input_shape(args, kwargs) -> (T, H, W) of the model
    input from the model's forward arguments (None: not this call's); default: the first
    positional (N, 3, T, H, W) tensor. check_input(model, args, kwargs): raise a clear error for
    an input the model cannot take (before its forward fails deep inside); None: no check.
    """

    name: str
    find: Callable[[nn.Module], dict[str, nn.Module]]
    hook: Callable[[str, nn.Module, HookContext], list]
    input_shape: Callable[[tuple, dict], tuple[int, int, int] | None] = _default_input_shape
    check_input: Callable[[nn.Module, tuple, dict], None] | None = None


def _hook_nonlocal(name: str, block: nn.Module, ctx: HookContext) -> list:
    pending: dict[str, Tensor] = {}

    def on_theta(_module: nn.Module, args: tuple, output: Tensor) -> None:
        if ctx.mine():
            pending["theta"] = ctx.keep(output, args[0])

    def on_phi(_module: nn.Module, args: tuple, output: Tensor) -> None:
        if not ctx.mine() or "theta" not in pending:
            return
        wf = block.concat_weight()
        ctx.store(BlockCapture(
            name=name,
            pairwise=block.pairwise,
            dims=block.dims,
            scale=float(block.scale),
            time_groups=int(block.time_groups),
            theta=pending.pop("theta"),
            phi=ctx.keep(output, args[0]),
            concat_weight=None if wf is None else ctx.keep(wf).clone(),
            input_shape=ctx.input_shape,
        ))

    return [block.theta.register_forward_hook(on_theta), block.phi.register_forward_hook(on_phi)]


NONLOCAL_ADAPTER = CaptureAdapter(name="nonlocal", find=attention_blocks, hook=_hook_nonlocal)
_ADAPTERS: list[CaptureAdapter] = [NONLOCAL_ADAPTER]


def register_adapter(adapter: CaptureAdapter) -> CaptureAdapter:
    """Make capture find and hook ``adapter``'s blocks (a family module calls this on import).

    Registering an adapter of the same name again replaces it (modules may be reloaded)."""
    with _REGISTRATION_LOCK:
        _ADAPTERS[:] = [a for a in _ADAPTERS if a.name != adapter.name] + [adapter]
    return adapter


def adapters() -> list[CaptureAdapter]:
    """The registered capture adapters, the built-in non-local one first."""
    return list(_ADAPTERS)


def capturable_blocks(model: nn.Module) -> dict[str, tuple[CaptureAdapter, nn.Module]]:
    """Every block capture can record in ``model``: {name: (adapter, module)}, in forward order
    per adapter."""
    found: dict[str, tuple[CaptureAdapter, nn.Module]] = {}
    for adapter in adapters():
        for name, module in adapter.find(model).items():
            found.setdefault(name, (adapter, module))
    return found



@contextmanager
def capture_attention(
    model: nn.Module, *, blocks: Iterable[str] | None = None, store_on: torch.device | str | None = None
) -> Iterator[Capture]:
    """Record the attention factors of every attention block during forward passes in this block.

    Args:
        model: any module containing :class:`~nlviz.nonlocal_block.NonLocalBlock` (or compatible)
            blocks, or blocks a registered :class:`CaptureAdapter` finds (MViT, Swin3D, ...).
        blocks: names of the blocks to capture (default: all).
        store_on: device to keep the captured tensors on (default: where they were computed).

    Yields a :class:`Capture`, filled when the model's forward runs inside the ``with`` block
    on the same thread; a second forward overwrites the first. Hooks are removed on exit,
    also when the forward raises. Only what the hooks record is kept: detached queries and
    keys per block, never the N_q x N_k matrix.
    """
    found = capturable_blocks(model)
    if not found:
        raise CaptureError(f"{type(model).__name__} has no non-local (attention) block to capture")
    if blocks is not None:
        wanted = list(blocks)
        unknown = [b for b in wanted if b not in found]
        if unknown:
            raise CaptureError(f"unknown block(s) {unknown}; the model's blocks are: {', '.join(found)}")
        found = {b: found[b] for b in wanted}

    cap = Capture()
    ctx = HookContext(threading.get_ident(), store_on, cap)
    used = list(dict.fromkeys(adapter for adapter, _ in found.values()))

    def on_model_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not ctx.mine():
            return
        for adapter in used:
            if adapter.check_input is not None:
                adapter.check_input(module, args, kwargs)
        for adapter in used:
            shape = adapter.input_shape(args, kwargs)
            if shape is not None:
                ctx.set_input_shape(shape)
                return

    with _REGISTRATION_LOCK:
        handles = [model.register_forward_pre_hook(on_model_input, with_kwargs=True)]
        try:
            for name, (adapter, module) in found.items():
                handles.extend(adapter.hook(name, module, ctx))
        except BaseException:
            for h in handles:
                h.remove()
            raise
    try:
        yield cap
    finally:
        try:
            ctx._cleanup()
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
    "CaptureAdapter",
    "HeadView",
    "HookContext",
    "NONLOCAL_ADAPTER",
    "adapters",
    "attention_blocks",
    "capturable_blocks",
    "capture_attention",
    "is_attention_block",
    "record",
    "register_adapter",
]
