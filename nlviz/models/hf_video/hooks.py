"""Capture for the Hugging Face video transformers: hooks on the models' own q/k projections.

The adapter (:data:`ADAPTER`, registered with :func:`nlviz.capture.register_adapter` when the
family is imported) hooks, per attention site (:mod:`.structure`), the query and key projections'
outputs, and turns them into a :class:`nlviz.capture_tokens.TokenCapture`: queries and keys
(B, heads, tokens, d) in the capture's token order (extra tokens, then the (T, H, W) grid,
T-major). Whatever attention implementation the model runs (SDPA by default, eager, flash),
the projections are the same modules, so the rows are the same; the N x N matrix is never made.

- VideoMAE, ViViT, V-JEPA 2: one sequence per clip, T-major tubelet tokens after ViViT's class
  token; the grid is the input's (T, H, W) over the tubelet size.
- V-JEPA 2 rotates q and k (3-D RoPE) after projecting them. While its attention module runs on
  the capturing thread, a thread-local torch function mode (:class:`_Product`) keeps the q and k
  that reach the attention product (``scaled_dot_product_attention``, or eager's ``matmul``): the
  rotated tensors the model made, at no extra cost. Where no such call is seen (a fused kernel
  outside PyTorch's functions), the hook re-applies the module's own ``get_position_ids`` and
  ``apply_rotary_embeddings`` to the projections instead, as its forward does (the rotation costs
  about 7% of a ViT-L layer at 8,192 tokens on a CPU, hence not done twice when it can be kept).
- TimeSformer's divided attention: the temporal factor attends the T tokens of one patch
  (sequences b*H*W + h*W + w; :class:`~nlviz.capture_tokens.DividedRule` "time"), the spatial
  factor each frame's class token and H*W patches (sequences b*T + t). The class token is a
  separate query and key per frame there (:class:`FrameClassRule`): T extra tokens, frame t's
  seen only by frame t. :func:`two_hop_row` composes the two factors, labelled as such.
"""

from __future__ import annotations

import threading
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from ...capture import CaptureAdapter, CaptureError, HookContext, register_adapter
from ...capture_tokens import AttentionRule, DividedRule, Terms, TokenCapture
from .archs import HFVideoClassifier
from .structure import Layout, Site, find_sites, layout

# attention module -> (site, layout); filled by find(), read by hook() (weak: models come and go)
_SITES: "weakref.WeakKeyDictionary[nn.Module, tuple[Site, Layout]]" = weakref.WeakKeyDictionary()
_SITES_LOCK = threading.Lock()

TWO_HOP_LABEL = (
    "two-hop composition (space after time): the product of the layer's temporal and spatial rows "
    "along each path, not attention the model computed"
)


class FrameClassRule(AttentionRule):
    """TimeSformer's spatial factor: one class-token query and key per frame (the T extra tokens,
    in frame order), and every query, grid or class, sees only its own frame's class token and
    patches."""

    describe = "divided, space (within the frame; a class token per frame)"

    def terms(self, capture: TokenCapture, tokens: Tensor, batch: int) -> Terms:
        _, h, w = capture.key_shape
        hw = h * w

        def frame(idx: Tensor, extra: int) -> Tensor:
            return torch.where(idx < extra, idx, (idx - extra).clamp(min=0) // hw)

        qf = frame(tokens, capture.query_extra)
        kf = frame(torch.arange(capture.k.shape[2], device=tokens.device), capture.key_extra)
        return Terms(valid=qf[:, None] == kf[None, :])


WRAPPED = "hf"  # the HF model's attribute in HFVideoClassifier: block names start with it


def block_name(site: Site) -> str:
    """A site's block name: its attention module's qualified name in the wrapper (the capture key)."""
    return f"{WRAPPED}.{site.path}"


class _Product(TorchFunctionMode):
    """Keeps the q and k of the first attention product run while it is active (modes are per
    thread: other threads running the same model are not seen): ``scaled_dot_product_attention(q,
    k, ...)`` or ``matmul(q, k^T)``, if their shapes are the module's (B, heads, N, d)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.q: Tensor | None = None
        self.k: Tensor | None = None

    def _offer(self, q: object, k: object) -> None:
        if isinstance(q, Tensor) and isinstance(k, Tensor) and tuple(q.shape) == self.shape == tuple(k.shape):
            self.q, self.k = q, k

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.q is None:
            if func is F.scaled_dot_product_attention:
                self._offer(args[0] if args else kwargs.get("query"), args[1] if len(args) > 1 else kwargs.get("key"))
            elif func in (torch.matmul, Tensor.__matmul__) and len(args) == 2 and isinstance(args[1], Tensor) \
                    and args[1].dim() == 4:
                self._offer(args[0], args[1].transpose(-2, -1))
        return func(*args, **kwargs)

    def pop(self) -> None:
        """Leave the mode if it is still this thread's innermost one (idempotent)."""
        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is self:
            self.__exit__(None, None, None)


class _PopOnRemove:
    """A hook handle that also leaves a :class:`_Product` mode a forward that raised left behind."""

    def __init__(self) -> None:
        self.mode: _Product | None = None

    def remove(self) -> None:
        if self.mode is not None:
            self.mode.pop()
            self.mode = None


def sites(model: HFVideoClassifier) -> dict[str, tuple[Site, nn.Module]]:
    """{block name: (site, attention module)} of a wrapped HF model, in forward order."""
    return {block_name(s): (s, model.hf.get_submodule(s.path)) for s in find_sites(model.hf)}


def find(model: nn.Module) -> dict[str, nn.Module]:
    """The adapter's ``find``: the attention modules of an :class:`HFVideoClassifier` ({} otherwise)."""
    if not isinstance(model, HFVideoClassifier):
        return {}
    lay = layout(model.hf.config)
    out = {}
    with _SITES_LOCK:
        for name, (site, module) in sites(model).items():
            _SITES[module] = (site, lay)
            out[name] = module
    return out


def _heads_view(t: Tensor, heads: int, d: int) -> Tensor:
    """(B', N', heads * d) -> (B', heads, N', d), a view."""
    return t.view(*t.shape[:2], heads, d).transpose(1, 2)


def _build(name: str, site: Site, lay: Layout, q: Tensor, k: Tensor, ctx: HookContext) -> TokenCapture:
    """q, k (B', heads, N', d) as the module multiplies them -> the block's TokenCapture."""
    grid = lay.grid(ctx.input_shape)
    t, h, w = grid
    bp, heads, n_tok, d = q.shape
    common = dict(name=name, query_grid=grid, key_grid=grid, input_shape=ctx.input_shape, scale=site.scale,
                  kind=site.kind)
    if site.kind == "divided_time":
        if n_tok != t or bp % (h * w):
            raise CaptureError(f"block {name}: temporal attention over {n_tok} tokens in {bp} sequences does not "
                               f"fit the {t}x{h}x{w} grid")
        b = bp // (h * w)

        def grid_order(x: Tensor) -> Tensor:  # (B*H*W, heads, T, d) -> (B, heads, T*H*W, d), one copy
            return x.unflatten(0, (b, h, w)).permute(0, 3, 4, 1, 2, 5).reshape(b, heads, t * h * w, d)

        return TokenCapture(q=ctx.keep(grid_order(q)), k=ctx.keep(grid_order(k)), rule=DividedRule("time"), **common)
    if site.kind == "divided_space":
        cls = n_tok - h * w
        if cls != lay.cls or bp % t:
            raise CaptureError(f"block {name}: spatial attention over {n_tok} tokens in {bp} sequences does not "
                               f"fit the {t}x{h}x{w} grid with {lay.cls} class token")
        b = bp // t

        def grid_order(x: Tensor) -> Tensor:  # (B*T, heads, C + H*W, d) -> (B, heads, C*T + T*H*W, d), one copy
            x = x.unflatten(0, (b, t))  # (B, T, heads, C + H*W, d), a view
            out = x.new_empty((b, heads, cls * t + t * h * w, d))
            out[:, :, :cls * t].view(b, heads, cls, t, d).copy_(x[:, :, :, :cls].permute(0, 2, 3, 1, 4))
            out[:, :, cls * t:].view(b, heads, t, h * w, d).copy_(x[:, :, :, cls:].permute(0, 2, 1, 3, 4))
            return out

        return TokenCapture(q=ctx.keep(grid_order(q)), k=ctx.keep(grid_order(k)), query_extra=cls * t,
                            key_extra=cls * t, extra_label="class token (per frame)" if cls else None,
                            rule=FrameClassRule(), **common)
    extra = n_tok - t * h * w
    if extra != lay.cls:
        raise CaptureError(f"block {name}: {n_tok} tokens do not fit the {t}x{h}x{w} grid of a "
                           f"{ctx.input_shape} input with {lay.cls} class token")
    return TokenCapture(q=ctx.keep(q), k=ctx.keep(k), query_extra=extra, key_extra=extra,
                        extra_label="class token" if extra else None, **common)


def hook(name: str, module: nn.Module, ctx: HookContext) -> list:
    """The adapter's ``hook``: record one attention module's queries and keys."""
    with _SITES_LOCK:
        try:
            site, lay = _SITES[module]
        except KeyError:
            raise CaptureError(f"block {name}: not an attention site found by the hf_video adapter") from None
    pending: dict[str, object] = {}
    guard = _PopOnRemove()

    def finish() -> None:
        x = pending.pop("x")
        product = pending.pop("product", None)
        if site.fused:
            qkv = pending.pop("qkv")
            parts = qkv.view(*qkv.shape[:2], 3, site.heads, site.head_dim)
            q, k = parts[:, :, 0].transpose(1, 2), parts[:, :, 1].transpose(1, 2)
        else:
            q = _heads_view(pending.pop("q"), site.heads, site.head_dim)
            k = _heads_view(pending.pop("k"), site.heads, site.head_dim)
        if site.rope:
            if product is not None and product.q is not None:  # the rotated q, k the model multiplied
                q, k = product.q.detach(), product.k.detach()
            else:  # V-JEPA 2: rotate as the module's forward does, with its own functions
                pos = module.get_position_ids(x, masks=pending.get("position_mask"))
                q, k = module.apply_rotary_embeddings(q, pos), module.apply_rotary_embeddings(k, pos)
        if site.fused and not site.kind.startswith("divided"):  # own copies of q and k only: the fused
            q, k = q.contiguous(), k.contiguous()  # output also holds v (divided ones are copied in order)
        pending.clear()
        ctx.store(_build(name, site, lay, q, k, ctx))

    def on_call(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not ctx.mine():
            return
        pending.clear()
        pending["position_mask"] = kwargs.get("position_mask", args[1] if len(args) > 1 else None)
        if site.rope:
            guard.remove()  # a mode a raising forward left behind
            x = args[0] if args else kwargs["hidden_states"]
            product = _Product((x.shape[0], site.heads, x.shape[1], site.head_dim))
            product.__enter__()
            guard.mode = pending["product"] = product

    def on_return(_module: nn.Module, _args: tuple, _output: object) -> None:
        if ctx.mine() and site.rope and "product" in pending:
            guard.remove()
            if "q" in pending and "k" in pending:
                finish()

    def on_proj(role: str):
        def record(_module: nn.Module, args: tuple, output: Tensor) -> None:
            if not ctx.mine():
                return
            pending["x"] = args[0]
            pending[role] = output.detach()
            if site.fused or (not site.rope and "q" in pending and "k" in pending):
                finish()

        return record

    handles: list = [guard, module.register_forward_pre_hook(on_call, with_kwargs=True)]
    if site.rope:
        handles.append(module.register_forward_hook(on_return))
    try:
        if site.fused:
            handles.append(module.get_submodule(site.query).register_forward_hook(on_proj("qkv")))
        else:
            handles.append(module.get_submodule(site.query).register_forward_hook(on_proj("q")))
            handles.append(module.get_submodule(site.key).register_forward_hook(on_proj("k")))
    except BaseException:
        for h in handles:
            h.remove()
        raise
    return handles


def check_input(model: nn.Module, args: tuple, kwargs: dict) -> None:
    """The adapter's ``check_input``: a clip the wrapped model cannot take fails before its forward."""
    if isinstance(model, HFVideoClassifier) and args and isinstance(args[0], Tensor):
        model.check_clip(tuple(args[0].shape))


ADAPTER = register_adapter(CaptureAdapter(name="hf_video", find=find, hook=hook, check_input=check_input))


def two_hop_row(time: TokenCapture, space: TokenCapture, cell, batch: int = 0, head: int | None = None) -> Tensor:
    """TimeSformer: the two-hop composition of one layer's factors for the query at ``cell``.

    The layer's spatial factor mixes, within frame t, the outputs of its temporal factor, each of
    which mixed its own patch over T; the product along each path (t, h, w) -> (t, h', w') ->
    (t', h', w') is ``space[(t,h,w) -> (t,h',w')] * time[(t,h',w') -> (t',h',w')]``, a (T, H, W)
    map summing to 1 minus the class token's share. It ignores the residual paths, the temporal
    projection between the factors and the class token, and it is NOT attention the model
    computed: show it only under :data:`TWO_HOP_LABEL`. ``head=None`` composes the head means.
    """
    if time.kind != "divided_time" or space.kind != "divided_space":
        raise ValueError("two_hop_row takes a layer's divided_time capture, then its divided_space capture")
    if time.query_shape != space.query_shape:
        raise ValueError("the two factors must share one grid")
    t, h, w = space.query_shape
    cell = space._check_cell(cell, space.query_shape, "query")
    s = space.row(cell, batch, head)[cell[0]]  # (H, W): the spatial row lives in the query's frame
    frame = [(cell[0], i, j) for i in range(h) for j in range(w)]
    tr = time.rows(frame, batch, head).reshape(h, w, t, h, w)  # row of (t, i, j): nonzero at (., i, j)
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    own = tr[ii, jj, :, ii, jj]  # (H, W, T): each patch's temporal row over its own column
    return (s[..., None] * own).permute(2, 0, 1).contiguous()


__all__ = ["ADAPTER", "FrameClassRule", "TWO_HOP_LABEL", "WRAPPED", "block_name", "find", "hook", "sites", "two_hop_row"]
