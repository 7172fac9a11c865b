"""One click, computed: everything the Explore view shows for a query pixel, without Streamlit.

    view = query_view(cap, clip, block="res3.1.nl", frame=5, x=120.0, y=80.0)
    view.heat        # (T, h, w) attention per displayed frame (NaN where the block has no key)
    view.overlays    # (T, h, w, 3) uint8 frames with the attention drawn over them
    view.top         # the top-k attended keys, placed on the frames (the paper's Fig. 3)

A click costs one row per block from the capture (see :mod:`nlviz.capture`) plus drawing; the
forward pass was done once per (model, video, sampling). The page only displays these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
import torch
from torch import nn

from .capture import BlockCapture, Capture, record
from .loaded import LoadedModel
from .render import KeyPoint, QueryCells, ValueRange, frame_heatmaps, overlay, shannon_entropy, temporal_profile, top_keys, value_range


@dataclass(frozen=True)
class Sampling:
    """How to sample a clip from a video; None fields fall back to the model's own spec.

    Hashable: with the model name and the video's hash it keys the cached forward pass.
    """

    num_frames: int | None = None
    stride: int | None = None
    start_frame: int | None = None
    uniform: bool = False  # num_frames evenly spaced over the whole video instead of num_frames x stride
    crop: str = "center"  # "center" (as in training) or "full" (fully convolutional: the whole frame)

    def kwargs(self) -> dict:
        """Keyword arguments for :func:`nlviz.video.load_clip`."""
        out = {"crop": self.crop, "uniform": self.uniform, "on_short": "reduce_stride"}
        for name in ("num_frames", "stride", "start_frame"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass
class Analysis:
    """One forward pass of a model over one clip: the expensive part, done once and cached."""

    clip: object  # nlviz.video.Clip
    capture: Capture
    probs: np.ndarray  # (classes,) softmax of the logits
    labels: list[str] | None  # class names, when the model has a label set
    thumbs: tuple[np.ndarray, float]  # (thumbnails (T, h, w, 3), scale factor) for the overlay strip
    default_block: str | None = None  # the block to show first (the model's ``default_block``, else the first)
    note: str | None = None  # what every picture of this model must say (the probe's label), else None
    # models with a dense head (the demo models' per-position task): class probabilities per cell of the
    # head's grid, (classes, T', H', W'); ``probs`` is then their mean over cells. None for clip classifiers
    dense_probs: np.ndarray | None = None
    block_infos: tuple = ()  # the family's BlockInfo of each captured block (stage, stride, kind, label, heads)

    def block_info(self, name: str):
        """The BlockInfo of block ``name`` (None when the family did not describe it)."""
        return next((b for b in self.block_infos if b.name == name), None)

    def is_probe(self, name: str) -> bool:
        """Whether block ``name`` is a parameter-free probe (the views label it so)."""
        info = self.block_info(name)
        return bool(info and info.probe)

    def top_predictions(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable classes as (name, probability)."""
        return self._top(self.probs, k)

    def _top(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-probs)[:k]
        names = self.labels or [f"class {i}" for i in range(len(probs))]
        return [(names[i] if i < len(names) else f"class {i}", float(probs[i])) for i in order]

    def predictions_at(self, frame: int, x: float, y: float, k: int = 5) -> list[tuple[str, float]] | None:
        """A dense model's k most probable classes at displayed frame ``frame``, pixel (x, y): the
        head's cell that covers the position, as a block's query cell covers it; None for clip
        classifiers. Raises :class:`nlviz.video.OutsideCropError` off what the model sees."""
        if self.dense_probs is None:
            return None
        t, yi, xi = self.clip.geometry.to_input(frame, x, y)
        grid = self.dense_probs.shape[1:]
        t_in, h_in, w_in = self.clip.geometry.input_shape
        cell = [min(int(v * g // n), g - 1) for v, g, n in zip((t, yi, xi), grid, (t_in, h_in, w_in))]
        return self._top(self.dense_probs[:, cell[0], cell[1], cell[2]], k)


def analyze(model: nn.Module, source, sampling: Sampling = Sampling(), *, thumb_width: int = 192,
            progress=None, device=None) -> Analysis:
    """Decode ``source`` as ``model`` expects, run one forward pass with capture, keep the results.

    ``source``: path, bytes or file-like (see :func:`nlviz.video.load_clip`). ``progress``:
    optional callback (fraction, message). The model is only read: no mode change, no state left.
    ``device``: where the forward pass runs (:func:`nlviz.device.choose`: default ``NLVIZ_DEVICE``,
    else cuda when present); off the model's own device it runs on a cached copy, and the captured
    factors are kept on the CPU either way.
    """
    from .video import load_clip

    if progress:
        progress(0.0, "decoding video")
    decoding = (lambda f, message: progress(0.5 * f, f"decoding video: {message}")) if progress else None
    loaded = LoadedModel.of(model)
    clip = load_clip(source, spec=loaded.spec, progress=decoding, **sampling.kwargs())
    if progress:
        progress(0.5, f"running the model on {clip.input.shape[2]} frames")
    from .device import choose, on_device

    device = choose(device)
    logits, cap, dense = _record_with_dense_head(on_device(loaded.model, device), clip.input.to(device), store_on="cpu")
    probs = torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()
    dense_probs = None if dense is None else torch.softmax(dense.float(), dim=1)[0].cpu().numpy()
    if progress:
        progress(1.0, "done")
    default_block = loaded.default_block
    return Analysis(clip, cap, probs, loaded.labels, thumbnails(clip.frames, thumb_width),
                    default_block if default_block in cap.blocks else cap.blocks[0], loaded.probe_label, dense_probs,
                    tuple(b for b in loaded.blocks if b.name in cap))


def _record_with_dense_head(model: nn.Module, clip: torch.Tensor, **kwargs):
    """:func:`nlviz.capture.record`, plus the per-cell logits of a dense head (ResNet3d with
    ``head="dense"``), kept by a forward hook on the head for this thread's forward only (the
    model is shared between sessions; the hook is removed before returning)."""
    import threading

    from .capture import _REGISTRATION_LOCK

    cfg = getattr(model, "cfg", None)
    if getattr(cfg, "head", "clip") != "dense":
        return (*record(model, clip, **kwargs), None)
    owner, kept = threading.get_ident(), {}

    def keep(_module, _args, output):
        if threading.get_ident() == owner:
            kept["dense"] = output.detach()

    with _REGISTRATION_LOCK:
        handle = model.head.register_forward_hook(keep)
    try:
        logits, cap = record(model, clip, **kwargs)
    finally:
        with _REGISTRATION_LOCK:
            handle.remove()
    return logits, cap, kept.get("dense")


class ScaledGeometry:
    """A clip geometry whose displayed-frame pixels are multiplied by ``factor`` (thumbnails)."""

    def __init__(self, geometry, factor: float) -> None:
        self.geometry, self.factor = geometry, factor

    def input_box_to_frames(self, t0, t1, y0, y1, x0, x1):
        frames, (a, b, c, d) = self.geometry.input_box_to_frames(t0, t1, y0, y1, x0, x1)
        f = self.factor
        return frames, (a * f, b * f, c * f, d * f)


@dataclass
class QueryView:
    """What one block attends to for one query pixel, ready to display."""

    block: str
    cell: tuple[int, int, int]  # the query cell in the block's grid
    row: np.ndarray  # (T', H', W') weights on the key grid
    heat: np.ndarray  # (T, h, w) per displayed frame, at the thumbnail size
    scale: ValueRange
    top: list[KeyPoint]  # in full-size displayed-frame pixels
    profile: np.ndarray  # (T',) mass per key time slice
    profile_frames: list[list[int]]  # displayed frames each key time slice covers
    entropy: float  # nats
    max_entropy: float  # log(N_keys): entropy of uniform attention
    own_slice_share: float  # share of |mass| in the key time slice that holds the query's frame
    signed: bool  # dot_product / concatenation: values are f / N, not probabilities
    pairwise: str
    # what :attr:`overlays` is drawn from: the thumbnails, alpha and style (drawn only when asked for:
    # the hover view draws in the browser, so a click there computes the row and its numbers only)
    drawing: tuple[np.ndarray, float, str] = field(default=None, repr=False, compare=False)

    @cached_property
    def overlays(self) -> np.ndarray:
        """(T, h, w, 3) uint8: the frames with the attention drawn over them (:func:`nlviz.render.overlay`)."""
        small, alpha, style = self.drawing
        return overlay(small, self.heat, self.scale, alpha, style)


def thumbnails(frames: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """Frames (T, H, W, 3) resized to ``width`` pixels wide: (thumbs, factor).

    Shrinking averages pixels (INTER_AREA); enlarging small frames (synthetic 64 px clips)
    repeats them (INTER_NEAREST), so no detail is invented.
    """
    factor = width / frames.shape[2]
    if factor == 1.0:
        return frames, 1.0
    size = (max(1, round(frames.shape[2] * factor)), max(1, round(frames.shape[1] * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_NEAREST
    return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames]), factor


def own_neighbourhood(b: BlockCapture, cell: tuple[int, int, int], radius: int) -> np.ndarray:
    """(T', H', W') bool: the keys within ``radius`` key cells (Chebyshev) of query ``cell``, in the
    key time slice that covers the query's time."""
    from .nonlocal_block import key_index

    (tq, hq, wq), (tk, hk, wk) = b.query_shape, b.key_shape
    kt, kh, kw = (int(key_index(q, k)[c]) for c, q, k in zip(cell, (tq, hq, wq), (tk, hk, wk)))
    mask = np.zeros((tk, hk, wk), dtype=bool)
    mask[kt, max(kh - radius, 0): kh + radius + 1, max(kw - radius, 0): kw + radius + 1] = True
    return mask


def query_view(
    cap: Capture,
    clip,
    block: str,
    frame: int,
    x: float,
    y: float,
    *,
    topk: int = 20,
    thumb_width: int = 256,
    alpha: float = 0.6,
    scale: ValueRange | None = None,
    thumbs: tuple[np.ndarray, float] | None = None,
    hide_own: int | None = None,
    style: str = "darken",
) -> QueryView:
    """Compute the view of ``block`` for the query at displayed frame ``frame``, pixel (x, y).

    ``clip`` is a :class:`nlviz.video.Clip` (frames, geometry, ``query_cell``). ``scale`` forces
    a shared colour scale (e.g. across models); by default the row's own honest scale is used.
    ``thumbs``: precomputed :func:`thumbnails` of the clip's frames (saves work per click).
    ``hide_own``: hide the keys within this many key cells (Chebyshev distance) of the query in
    its own key time slice, drawn like pixels the block does not see and left out of the colour
    scale and the top-k (feature-similarity maps are dominated by the query's own
    neighbourhood); the numbers (entropy, profile, shares) still describe the whole row.
    ``style``: how the overlays are drawn (:func:`nlviz.render.overlay`).
    Raises :class:`nlviz.video.OutsideCropError` for a pixel outside what the model sees.
    """
    b: BlockCapture = cap[block]
    cell = clip.query_cell(b, frame, x, y)
    row = b.row(cell).detach().cpu().numpy()
    shown = row if hide_own is None else np.where(own_neighbourhood(b, cell, hide_own), np.nan, row)
    small, factor = thumbs if thumbs is not None else thumbnails(clip.frames, thumb_width)
    heat = frame_heatmaps(shown, b, ScaledGeometry(clip.geometry, factor), small.shape[1:3], len(small))
    scale = scale or value_range([shown], b.signed)
    profile = temporal_profile(row)
    slices = []
    for t in range(b.key_shape[0]):
        t0, t1, *_ = b.key_box((t, 0, 0))
        frames, _ = clip.geometry.input_box_to_frames(t0, t1, 0, 1, 0, 1)
        slices.append(list(frames))
    own = [t for t, fr in enumerate(slices) if frame in fr]
    mass = np.abs(row).reshape(row.shape[0], -1).sum(axis=1)
    own_share = float(mass[own].sum() / mass.sum()) if own and mass.sum() > 0 else 0.0
    return QueryView(
        block=block,
        cell=cell,
        row=row,
        heat=heat,
        scale=scale,
        top=[k for k in top_keys(shown, b, clip.geometry, topk) if np.isfinite(k.weight)],
        profile=profile,
        profile_frames=slices,
        entropy=shannon_entropy(row),
        max_entropy=float(np.log(row.size)),
        own_slice_share=own_share,
        signed=b.signed,
        pairwise=b.pairwise,
        drawing=(small, alpha, style),
    )


# ----------------------------------------------------------------------------- reverse view


@dataclass
class IncomingAttention:
    """How much attention one key receives, over every query of a block."""

    column: np.ndarray  # (T, H, W) on the query grid: the weight each query gives the key
    total: float  # sum of the column: the attention mass, in query-rows, that lands on the key
    mean_weight: float  # mean weight over the queries that may attend to the key
    uniform_weight: float  # mean of 1 / (keys a query may attend to) over those queries: the mean a flat map would give
    top1_share: float  # share of those queries whose largest weight is on this key (ties count)
    top5_share: float  # share of those queries with this key among their 5 largest weights
    num_queries: int  # queries that may attend to the key (all of them for plain "spacetime")


def incoming_attention(b: BlockCapture, key_cell, batch: int = 0, chunk: int = 4096) -> IncomingAttention:
    """The column of ``key_cell`` and where it ranks in each query's row, one pass in chunks.

    A key is among a query's top k when fewer than k of the query's allowed keys weigh
    strictly more: ties (e.g. uniform attention) count for every tied key. Keys a query may not
    attend to never rank; queries that may not attend to the key are left out of the shares
    and the mean. Memory stays O(chunk * N_k), as in :meth:`BlockCapture.column`.
    """
    k = b.flat_key(key_cell)
    parts, reach, top1, top5, inv_counts = [], 0, 0, 0, 0.0
    for start, rows in b.row_chunks(batch, chunk):
        mask = b.allowed_mask(start, start + rows.shape[0])
        col = rows[:, k]
        parts.append(col)
        if mask is None:
            ranked, can = rows, torch.ones_like(col, dtype=torch.bool)
            counts = torch.full_like(col, rows.shape[1], dtype=torch.float64)
        else:
            ranked, can = rows.masked_fill(~mask, float("-inf")), mask[:, k]
            counts = mask.sum(dim=1).to(torch.float64)
        above = (ranked > col[:, None]).sum(dim=1)[can]
        reach += int(can.sum())
        top1 += int((above < 1).sum())
        top5 += int((above < 5).sum())
        inv_counts += float((1.0 / counts[can]).sum())
    column = torch.cat(parts).reshape(b.query_shape).detach().cpu().numpy()
    total = float(column.astype(np.float64).sum())
    per_query = 1.0 / reach if reach else 0.0  # no query may attend to the key: every share is 0
    return IncomingAttention(
        column=column,
        total=total,
        mean_weight=total * per_query,
        uniform_weight=inv_counts * per_query,
        top1_share=top1 * per_query,
        top5_share=top5 * per_query,
        num_queries=reach,
    )


@dataclass
class ReverseView:
    """Who attends to one key cell of one block, drawn on the frames where the queries sit.

    For softmax variants every query's weights sum to 1, so the column says how much of each
    query's attention lands on this key; dot_product / concatenation columns are f / N and may
    be negative.
    """

    block: str
    cell: tuple[int, int, int]  # the key cell in the block's key grid
    column: np.ndarray  # (T, H, W) on the query grid: the weight each query gives the key
    heat: np.ndarray  # (frames, h, w) per displayed frame, at the thumbnail size; NaN outside the crop
    overlays: np.ndarray  # (frames, h, w, 3) uint8
    scale: ValueRange
    # the key on the frames: (frames, (x0, y0, x1, y1) in full-size displayed pixels)
    region: tuple[list[int], tuple[float, float, float, float]]
    total: float  # sum of the column
    mean_weight: float  # mean weight over the queries that may attend to the key
    uniform_weight: float  # what the mean would be if every query spread its attention evenly
    top1_share: float  # share of those queries whose strongest key this is
    top5_share: float  # share of those queries with this key in their top 5
    num_queries: int  # queries that may attend to the key
    signed: bool
    pairwise: str


def reverse_view(
    cap: Capture,
    clip,
    block: str,
    frame: int,
    x: float,
    y: float,
    *,
    thumbs: tuple[np.ndarray, float] | None = None,
    alpha: float = 0.6,
    scale: ValueRange | None = None,
    thumb_width: int = 256,
    batch: int = 0,
    chunk: int = 4096,
) -> ReverseView:
    """The reverse of :func:`query_view`: which queries attend to the key under a clicked pixel.

    (frame, x, y) is a displayed-frame pixel; it picks the KEY cell whose pooled box covers it
    (``clip.geometry.to_input`` then :meth:`BlockCapture.key_at`). The view holds that key's
    column of the affinity (every query's weight on it, computed in chunks of queries) drawn
    on the frames the queries cover. For softmax variants each query's weights sum to 1, so
    the column says how much of each query's attention lands here; ``total`` is then the
    number of query-rows' worth of attention the key receives.
    Raises :class:`nlviz.video.OutsideCropError` for a pixel outside what the model sees and
    :class:`nlviz.capture.OutOfGridError` for a position off the block's grid.
    """
    b: BlockCapture = cap[block]
    cell = b.key_at(*clip.geometry.to_input(frame, x, y))
    incoming = incoming_attention(b, cell, batch, chunk)
    small, factor = thumbs if thumbs is not None else thumbnails(clip.frames, thumb_width)
    heat = frame_heatmaps(incoming.column, QueryCells(b), ScaledGeometry(clip.geometry, factor),
                          small.shape[1:3], len(small))
    scale = scale or value_range([incoming.column], b.signed)
    return ReverseView(
        block=block,
        cell=cell,
        column=incoming.column,
        heat=heat,
        overlays=overlay(small, heat, scale, alpha),
        scale=scale,
        region=clip.key_region(b, cell),
        total=incoming.total,
        mean_weight=incoming.mean_weight,
        uniform_weight=incoming.uniform_weight,
        top1_share=incoming.top1_share,
        top5_share=incoming.top5_share,
        num_queries=incoming.num_queries,
        signed=b.signed,
        pairwise=b.pairwise,
    )
