"""Several models, one query: their attention side by side, and measured on one pixel grid.

    rows = match_blocks({name: a.capture for name, a in analyses.items()})
    comp = compare(analyses, frame=5, x=32.5, y=20.5)       # the query in the first model's frame
    comp.views[(row.label, "demo.gaussian")]                 # a QueryView, or None (see comp.notes)
    comp.metrics[row.label].pairs[("demo.gaussian", "demo.dot_product")].jsd

Models differ in their grids (key strides, crops, clip sampling), so their rows cannot be
compared cell by cell. Every comparison here happens where the user looks: on the displayed
frames. :func:`pixel_density` spreads each key's weight uniformly over the pixels and displayed
frames it covers, at one common resolution; correlation and Jensen-Shannon divergence are
taken between those densities over the frames both clips share (by source frame index).

Blocks are paired by name (same name, same row), else by stage ("res3", "res4", ...) and
ordinal within the stage (Inception-v1's Mixed_3x/4x/5x modules count as res3/res4/res5: the
same spatial strides, 8, 16 and 32 pixels); a model without a block at a comparable stage gets an empty cell
with a note, as does a model that does not see the query pixel (outside its centre crop).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .capture import BlockCapture, Capture, OutOfGridError
from .explore import Analysis, QueryView, query_view, thumbnails
from .models.family import BlockInfo
from .render import ValueRange, draw_marker, fit_text, montage, value_range
from .video import OutsideCropError

Key = tuple[str, str]  # (row label, model name)


# ----------------------------------------------------------------------------- matching blocks


@dataclass
class BlockRow:
    """Comparable blocks of several models: one row of the comparison.

    ``blocks`` maps every model to its block in this row, or None when the model has no
    non-local block at a comparable stage.
    """

    label: str  # the shared block name ("res3.1.nl"), or stage and ordinal ("res3 #2")
    stage: str  # "res3" (Inception's Mixed_3x counts as res3), else the part of the name before the first dot
    blocks: dict[str, str | None]


# ResNet's stage names for the spatial strides of its stages: the common words for "how coarse"
STRIDE_STAGES = {4: "res2", 8: "res3", 16: "res4", 32: "res5"}


def block_stage(info: BlockInfo) -> str:
    """The stage a block is compared at, from its metadata: a ResNet stage as its family names it
    (a tiny network's res3 stays res3 whatever its stride); another family's block gets ResNet's
    name for its spatial stride (Inception-v1's Mixed_4x, 14x14 cells at 224 px, is "res4"; MViT's
    56x56 blocks "res2"), else its family's own stage name."""
    if info.stage in STRIDE_STAGES.values():
        return info.stage
    return STRIDE_STAGES.get(info.spatial_stride, info.stage)


def match_blocks(blocks: Mapping[str, Sequence[BlockInfo]]) -> list[BlockRow]:
    """Rows of comparable blocks across models, in network order.

    ``blocks``: model name -> its blocks' metadata (:class:`~nlviz.models.BlockInfo`, e.g.
    ``Analysis.block_infos``), in forward order. A block name found in two or more models makes
    one row. The remaining blocks are paired by stride (:func:`block_stage`) and by their ordinal
    among the remaining blocks of that stride (the second unmatched res3 block of one model goes
    with the second unmatched res3 block of another): different backbones put their blocks at
    different indices of the same stage. Rows go coarser with depth (by spatial stride, then
    by temporal). Models with nothing at a row's place get None there.
    """
    models = list(blocks)
    infos = {m: list(blocks[m]) for m in models}
    count = Counter(b.name for m in models for b in {b.name: b for b in infos[m]}.values())
    stride_of: dict[str, tuple[int, int]] = {}
    members: dict[tuple, dict[str, str]] = {}
    positions: dict[tuple, list[int]] = {}
    for m in models:
        ordinal: Counter = Counter()
        within: Counter = Counter()
        for b in infos[m]:
            stage = block_stage(b)
            stride_of.setdefault(stage, (b.spatial_stride, b.stride[0]))
            if count[b.name] >= 2 or len(models) == 1:
                key: tuple = ("name", stage, b.name)
            else:
                ordinal[stage] += 1
                key = ("stage", stage, ordinal[stage])
            members.setdefault(key, {})[m] = b.name
            positions.setdefault(key, []).append(within[stage])
            within[stage] += 1

    def order(key: tuple) -> tuple:
        return (stride_of[key[1]], sum(positions[key]) / len(positions[key]), str(key[2]))

    rows = []
    for key in sorted(members, key=order):
        present = members[key]
        distinct = set(present.values())
        label = next(iter(distinct)) if len(distinct) == 1 else f"{key[1]} #{key[2]}"
        rows.append(BlockRow(label, key[1], {m: present.get(m) for m in models}))
    return rows


# ----------------------------------------------------------------------------- the pixel grid


def _axis_overlap(bounds: np.ndarray, size: int) -> np.ndarray:
    """(size, cells) share of each cell's extent [b0, b1) that falls in each pixel [p, p + 1)."""
    p = np.arange(size, dtype=np.float64)[:, None]
    b0, b1 = bounds[:, 0][None, :], bounds[:, 1][None, :]
    inter = np.clip(np.minimum(p + 1, b1) - np.maximum(p, b0), 0.0, None)
    extent = b1 - b0
    return np.divide(inter, extent, out=np.zeros_like(inter), where=extent > 0)


def pixel_density(
    row: np.ndarray | QueryView, block: BlockCapture, clip, size: tuple[int, int]
) -> np.ndarray:
    """A block's row as attention mass per displayed pixel and frame: (T, H, W) float64.

    ``row``: (T', H', W') weights (or a :class:`~nlviz.explore.QueryView`, whose row is used);
    ``clip``: the :class:`~nlviz.video.Clip` (or its ``ClipGeometry``) the row was computed on;
    ``size``: (H, W) of the common grid, onto which the clip's displayed frames are scaled.

    Each key's weight is spread uniformly over the pixel-frames it covers: a key covering
    ``F`` displayed frames and a rectangle of ``A`` pixels puts weight / (F * A) on each
    (pixels the rectangle covers in part get the covered fraction). So the result sums to the
    row's sum (1 for softmax rows), whatever the key grid, and two models' densities are
    comparable pixel by pixel. Pixels outside the model's view, and frames no key covers, hold 0.
    """
    weights = np.asarray(row.row if isinstance(row, QueryView) else row, dtype=np.float64)
    tk, hk, wk = block.key_shape
    if weights.shape != (tk, hk, wk):
        raise ValueError(f"row shape {weights.shape} does not match the key grid {block.key_shape} of {block.name}")
    geometry = getattr(clip, "geometry", clip)
    h, w = size
    fw, fh = geometry.frame_size
    sx, sy = w / fw, h / fh
    ys, xs = [], []
    for i in range(hk):
        _, (_, y0, _, y1) = geometry.input_box_to_frames(*block.key_box((0, i, 0)))
        ys.append((y0 * sy, y1 * sy))
    for j in range(wk):
        _, (x0, _, x1, _) = geometry.input_box_to_frames(*block.key_box((0, 0, j)))
        xs.append((x0 * sx, x1 * sx))
    ay, ax = _axis_overlap(np.array(ys), h), _axis_overlap(np.array(xs), w)
    out = np.zeros((geometry.num_frames, h, w), dtype=np.float64)
    for t in range(tk):
        frames, _ = geometry.input_box_to_frames(*block.key_box((t, 0, 0)))
        frames = [k for k in frames if 0 <= k < geometry.num_frames]
        if frames:
            spread = ay @ weights[t] @ ax.T / len(frames)
            for k in frames:
                out[k] += spread
    return out


def frame_mass(density: np.ndarray, frame: int) -> float:
    """Share of the |mass| of a :func:`pixel_density` that lies on displayed frame ``frame``."""
    a = np.abs(density)
    total = a.sum()
    return float(a[frame].sum() / total) if total > 0 else 0.0


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (base 2, so in [0, 1]) between two non-negative arrays.

    Each array is normalized to sum 1 first; NaN when either sums to 0. Identical
    distributions give exactly 0, distributions with disjoint support exactly 1.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if (p < 0).any() or (q < 0).any():
        raise ValueError("jensen_shannon needs non-negative arrays (take |weights| of signed rows)")
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        return math.nan
    p, q = p / sp, q / sq
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return float(min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays of the same size; NaN when either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else math.nan


# ----------------------------------------------------------------------------- metrics


@dataclass
class ModelMetrics:
    """Summary numbers of one model's attention for the query, in one row."""

    entropy: float  # nats, over the model's keys (of |row| normalized for signed variants)
    max_entropy: float  # log(number of keys): entropy of uniform attention
    own_slice_share: float  # share of |mass| in the key time slice holding the query's frame
    own_frame_mass: float  # share of |mass| on the query's own displayed frame, on the pixel grid


@dataclass
class PairMetrics:
    """How alike two models' attention is, as densities on the common pixel grid."""

    correlation: float  # Pearson, of the signed densities; NaN when one is constant
    jsd: float  # Jensen-Shannon divergence in bits, of |densities| normalized; NaN when one is all 0
    shared_frames: int  # displayed frames (source frames) both clips hold: where the two are compared


@dataclass
class RowMetrics:
    """Per-model and pairwise metrics of one block row (models without a view are left out)."""

    models: dict[str, ModelMetrics] = field(default_factory=dict)
    pairs: dict[tuple[str, str], PairMetrics] = field(default_factory=dict)


def pair_metrics(da: np.ndarray, frames_a: Sequence[int], db: np.ndarray, frames_b: Sequence[int]) -> PairMetrics:
    """Compare two :func:`pixel_density` arrays on the frames they share.

    ``frames_a``/``frames_b``: source frame index of each displayed frame of either clip
    (``Clip.indices``). The densities must be on the same (H, W) grid. Only shared source
    frames count. The correlation is taken on the densities as they are (signed for the
    dot-product and concatenation variants); the Jensen-Shannon divergence on their absolute
    values, each normalized to sum 1 over the shared frames (for softmax rows, whose mass is
    all positive, that is the attention distribution itself).
    """
    if da.shape[1:] != db.shape[1:]:
        raise ValueError(f"densities on different grids: {da.shape[1:]} and {db.shape[1:]}")
    where_b = {s: k for k, s in enumerate(frames_b)}
    pairs = [(k, where_b[s]) for k, s in enumerate(frames_a) if s in where_b]
    if not pairs:
        return PairMetrics(math.nan, math.nan, 0)
    a = da[[k for k, _ in pairs]]
    b = db[[k for _, k in pairs]]
    return PairMetrics(pearson(a, b), jensen_shannon(np.abs(a), np.abs(b)), len(pairs))


# ----------------------------------------------------------------------------- the comparison


@dataclass
class Comparison:
    """One query seen by several models, block row by block row.

    ``views[(row_label, model)]`` is None where the model has no block in the row or does not
    see the query; ``notes`` says why (and anything else worth knowing, such as a query frame
    that had to be mapped to the nearest sampled frame). ``scale[row_label]`` holds the row's
    shared colour scales, one per kind of weight (:func:`weight_kind`: softmax probabilities,
    or the signed f/N of dot product and concatenation), since the two are different
    quantities: a probability of 0.01 and an f/N of 0.01 mean different things. Empty with
    per-model scales.
    """

    models: list[str]
    rows: list[BlockRow]
    queries: dict[str, tuple[int, float, float]]  # each model's query: displayed frame, x, y
    factors: dict[str, float]  # thumbnail pixels per displayed pixel, per model (to draw on overlays)
    views: dict[Key, QueryView | None]
    notes: dict[Key, str]
    scale: dict[str, dict[str, ValueRange]]
    metrics: dict[str, RowMetrics]
    shared_scale: bool
    grid: tuple[int, int]  # (H, W) of the common pixel grid the metrics are taken on

    def to_dict(self) -> dict:
        """The comparison's numbers as plain JSON-ready data (NaN becomes None)."""

        def num(v: float) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), 6)

        rows = []
        for row in self.rows:
            m = self.metrics[row.label]
            scales = self.scale.get(row.label, {})
            rows.append({
                "label": row.label,
                "stage": row.stage,
                "blocks": dict(row.blocks),
                "notes": {mod: self.notes[(row.label, mod)] for mod in self.models if (row.label, mod) in self.notes},
                "scale": {kind: {"vmin": num(s.vmin), "vmax": num(s.vmax), "signed": s.signed}
                          for kind, s in scales.items()} or None,
                "models": {mod: {k: num(v) for k, v in vars(mm).items()} for mod, mm in m.models.items()},
                "pairs": [
                    {"a": a, "b": b, "correlation": num(p.correlation), "jsd": num(p.jsd),
                     "shared_frames": p.shared_frames}
                    for (a, b), p in m.pairs.items()
                ],
            })
        return {
            "models": list(self.models),
            "queries": {mod: {"frame": k, "x": round(qx, 3), "y": round(qy, 3)}
                        for mod, (k, qx, qy) in self.queries.items()},
            "shared_scale": self.shared_scale,
            "grid": {"height": self.grid[0], "width": self.grid[1]},
            "rows": rows,
        }


SOFTMAX = "softmax"  # weights are probabilities: each row sums to 1
SIGNED = "f/N"  # dot product / concatenation: f / N, may be negative, need not sum to 1


def weight_kind(signed: bool) -> str:
    """Which kind of weight a block produces (:data:`SOFTMAX` or :data:`SIGNED`): shared colour
    scales only span blocks of the same kind."""
    return SIGNED if signed else SOFTMAX


def map_query(reference, clip, frame: int, x: float, y: float) -> tuple[tuple[int, float, float], str | None]:
    """A query in ``reference``'s displayed frames -> the same place in ``clip``'s: ((k, x, y), note).

    The frame is matched by source frame index (``Clip.indices``), the pixel by the ratio of
    the displayed frame sizes. When ``clip`` did not sample that source frame the nearest one
    is used and the note says so; otherwise the note is None.
    """
    source = reference.indices[frame]
    note = None
    if source in clip.indices:
        k = clip.indices.index(source)
    else:
        k = int(np.argmin([abs(s - source) for s in clip.indices]))
        note = (f"source frame {source} is not in this model's clip; the nearest sampled frame "
                f"{k} (source frame {clip.indices[k]}) is used")
    (w0, h0), (w, h) = reference.geometry.frame_size, clip.geometry.frame_size
    return (k, x * w / w0, y * h / h0), note


def _check_reference_query(clip, frame: int, x: float, y: float) -> None:
    """The query must be a sampled frame and a pixel of the first model's displayed frame."""
    n = len(clip.frames)
    if isinstance(frame, bool) or not float(frame).is_integer() or not 0 <= frame < n:
        raise OutsideCropError(f"frame {frame} is not one of the {n} sampled frames (0..{n - 1})")
    w, h = clip.geometry.frame_size
    if not (0 <= x < w and 0 <= y < h):
        raise OutsideCropError(f"pixel (x={x:g}, y={y:g}) is outside the {w}x{h} frame")


def metric_grid(frame_size: tuple[int, int], side: int = 128) -> tuple[int, int]:
    """(H, W) of the pixel grid the metrics are taken on: the displayed frame (W, H), shrunk so its
    long side is at most ``side`` pixels (never enlarged). Key cells of a 224-px input are 16 px
    at res3, so 128 px keeps several grid pixels per key while the metrics stay cheap."""
    w, h = frame_size
    f = min(1.0, side / max(w, h))
    return max(1, round(h * f)), max(1, round(w * f))


def compare(
    analyses: Mapping[str, Analysis],
    frame: int,
    x: float,
    y: float,
    *,
    shared_scale: bool = True,
    thumb_width: int | None = None,
    rows: list[BlockRow] | None = None,
    topk: int = 20,
    grid_side: int = 128,
) -> Comparison:
    """The query (frame, x, y) of the first analysis's displayed frames, in every model and block row.

    ``analyses``: model name -> :class:`~nlviz.explore.Analysis`, normally of the same video and
    sampling; the first is the reference the query is given in, and its displayed frame,
    shrunk to at most ``grid_side`` pixels (:func:`metric_grid`), is the common pixel grid of
    the metrics. ``shared_scale``: one colour scale per row and kind of weight
    (:func:`weight_kind`) covering those models' weights, so colours compare across columns;
    else each view keeps its own scale. ``thumb_width``: the overlays' width (default: each
    analysis's own thumbnails). ``rows``: which block rows (default :func:`match_blocks`).
    ``metrics[row_label]``: per model the entropy, the share in the query's key time slice and
    the mass on the query's displayed frame; per pair of models the correlation and the
    Jensen-Shannon divergence of their :func:`pixel_density` (see :func:`pair_metrics`).

    Raises :class:`~nlviz.video.OutsideCropError` when the frame is not sampled or the pixel
    lies outside the first model's frame; a model that does not see the pixel (outside its
    crop) gets no view and a note instead.
    """
    if not analyses:
        raise ValueError("compare needs at least one analysis")
    models = list(analyses)
    ref = analyses[models[0]].clip
    _check_reference_query(ref, frame, x, y)
    rows = rows if rows is not None else match_blocks({m: a.block_infos for m, a in analyses.items()})
    thumbs = {m: a.thumbs if thumb_width is None else thumbnails(a.clip.frames, thumb_width)
              for m, a in analyses.items()}
    grid = metric_grid(ref.geometry.frame_size, grid_side)
    queries, frame_notes = {}, {}
    for m, a in analyses.items():
        queries[m], note = map_query(ref, a.clip, frame, x, y)
        if note:
            frame_notes[m] = note

    views: dict[Key, QueryView | None] = {}
    notes: dict[Key, str] = {}
    scales: dict[str, dict[str, ValueRange]] = {}
    metrics: dict[str, RowMetrics] = {}
    for row in rows:
        found: dict[str, np.ndarray] = {}
        for m in models:
            key = (row.label, m)
            name = row.blocks.get(m)
            if name is None:
                notes[key] = f"no non-local block at a comparable stage ({row.stage})"
                continue
            a = analyses[m]
            try:
                b = a.capture[name]
                found[m] = b.row(a.clip.query_cell(b, *queries[m])).detach().cpu().numpy()
            except (OutsideCropError, OutOfGridError) as e:
                notes[key] = str(e)
        kinds = {m: weight_kind(analyses[m].capture[row.blocks[m]].signed) for m in found}
        if shared_scale and found:
            scales[row.label] = {
                kind: value_range([found[m] for m in found if kinds[m] == kind], kind == SIGNED)
                for kind in dict.fromkeys(kinds.values())
            }
        for m in models:
            key = (row.label, m)
            views[key] = None
            if m in found:
                a = analyses[m]
                views[key] = query_view(a.capture, a.clip, row.blocks[m], *queries[m], topk=topk,
                                        scale=scales.get(row.label, {}).get(kinds[m]), thumbs=thumbs[m])
            if m in frame_notes:
                notes[key] = "; ".join(n for n in (notes.get(key), frame_notes[m]) if n)
        metrics[row.label] = _row_metrics(row, analyses, views, queries, grid)
    return Comparison(models, rows, queries, {m: t[1] for m, t in thumbs.items()}, views, notes, scales,
                      metrics, shared_scale, grid)


def _row_metrics(row: BlockRow, analyses: Mapping[str, Analysis], views: dict[Key, QueryView | None],
                 queries: dict[str, tuple[int, float, float]], grid: tuple[int, int]) -> RowMetrics:
    out = RowMetrics()
    dens = {}
    for m, a in analyses.items():
        v = views[(row.label, m)]
        if v is None:
            continue
        dens[m] = pixel_density(v.row, a.capture[v.block], a.clip, grid)
        out.models[m] = ModelMetrics(v.entropy, v.max_entropy, v.own_slice_share, frame_mass(dens[m], queries[m][0]))
    present = list(dens)
    for i, ma in enumerate(present):
        for mb in present[i + 1:]:
            out.pairs[(ma, mb)] = pair_metrics(dens[ma], analyses[ma].clip.indices, dens[mb], analyses[mb].clip.indices)
    return out


# ----------------------------------------------------------------------------- one picture

HEADER_HEIGHT = 30  # model names above the columns
LABEL_WIDTH = 120  # row labels left of the rows
CAPTION_HEIGHT = 18  # numbers under each cell
GAP = 8  # between cells
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, color=(20, 20, 20)) -> None:
    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def _shorten(text: str, width: int, scale: float) -> str:
    """``text``, cut with '..' where it would be wider than ``width`` pixels."""
    if cv2.getTextSize(text, _FONT, scale, 1)[0][0] <= width:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "..", _FONT, scale, 1)[0][0] > width:
        text = text[:-1]
    return text + ".."


def tile_columns(num_frames: int) -> int:
    """Frames per line in one cell of :func:`comparison_image`: a near-square grid."""
    return max(1, math.ceil(math.sqrt(num_frames)))


def cell_image(comp: Comparison, key: Key, *, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """One cell of the comparison, ``key`` = (row label, model): the model's overlays of every
    sampled frame tiled (``columns`` per line, default :func:`tile_columns`), query marked. RGB uint8.

    Raises ValueError for a cell without a view (its reason is in ``comp.notes``).
    """
    view = comp.views.get(key)
    if view is None:
        raise ValueError(f"no view for {key}: {comp.notes.get(key, 'unknown row or model')}")
    m = key[1]
    tiles = list(view.overlays)
    k, qx, qy = comp.queries[m]
    f = comp.factors[m]
    tiles[k] = draw_marker(tiles[k], qx * f, qy * f)
    return montage(tiles, columns or tile_columns(len(tiles)), pad=pad)


def comparison_image(comp: Comparison, *, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """The comparison as one RGB picture: a column per model, a row per block row.

    Each cell tiles that model's overlays of every sampled frame (``columns`` frames per line,
    default :func:`tile_columns`), with the query marked, and states the colour scale and the
    entropy underneath; an empty cell shows its note. Cells are the size of the largest one.
    """
    cells = {key: cell_image(comp, key, columns=columns, pad=pad) for key, v in comp.views.items() if v is not None}
    if cells:
        ch = max(c.shape[0] for c in cells.values())
        cw = max(c.shape[1] for c in cells.values())
    else:
        ch, cw = 120, 160
    cw = max(cw, 160)
    height = HEADER_HEIGHT + len(comp.rows) * (ch + CAPTION_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + len(comp.models) * (cw + GAP) + GAP
    img = np.full((height, width, 3), 255, np.uint8)
    for j, m in enumerate(comp.models):
        x0 = LABEL_WIDTH + GAP + j * (cw + GAP)
        _text(img, _shorten(m, cw, 0.5), (x0, HEADER_HEIGHT - 10), 0.5)
    for i, row in enumerate(comp.rows):
        y0 = HEADER_HEIGHT + GAP + i * (ch + CAPTION_HEIGHT + GAP)
        for n, line in enumerate(fit_text(row.label, LABEL_WIDTH - 8, 0.45)[:3]):
            _text(img, line, (6, y0 + 16 + 18 * n))
        for n, (kind, s) in enumerate(comp.scale.get(row.label, {}).items()):
            _text(img, f"{kind} {s.vmin:.3g}..{s.vmax:.3g}", (6, y0 + 72 + 16 * n), 0.35, (90, 90, 90))
        for j, m in enumerate(comp.models):
            x0 = LABEL_WIDTH + GAP + j * (cw + GAP)
            key = (row.label, m)
            cell = cells.get(key)
            if cell is None:
                img[y0 : y0 + ch, x0 : x0 + cw] = 225
                for n, line in enumerate(fit_text(comp.notes.get(key, "no view"), cw - 12, 0.4)[: max(1, ch // 16 - 1)]):
                    _text(img, line, (x0 + 6, y0 + 18 + 16 * n), 0.4, (60, 60, 60))
                continue
            img[y0 : y0 + cell.shape[0], x0 : x0 + cell.shape[1]] = cell
            v = comp.views[key]
            caption = f"H {v.entropy:.2f}/{v.max_entropy:.2f} nats"
            if not comp.shared_scale:
                caption += f"  scale {v.scale.vmin:.3g}..{v.scale.vmax:.3g}"
            _text(img, caption, (x0, y0 + ch + CAPTION_HEIGHT - 5), 0.4, (60, 60, 60))
    return img


__all__ = [
    "BlockRow",
    "Comparison",
    "ModelMetrics",
    "PairMetrics",
    "RowMetrics",
    "STRIDE_STAGES",
    "block_stage",
    "cell_image",
    "compare",
    "comparison_image",
    "frame_mass",
    "jensen_shannon",
    "map_query",
    "match_blocks",
    "metric_grid",
    "pair_metrics",
    "pearson",
    "pixel_density",
    "weight_kind",
    "tile_columns",
]
