"""Turn attention rows into what a person sees: per-frame heat maps, overlays, top-k arrows, montages.

A block's row lives on its key grid (T', H', W'); the user looks at the sampled original
frames. :func:`frame_heatmaps` places each key time slice on the frames it covers and
stretches its (H', W') map over the pixels the key grid covers (nearest neighbour: one key
cell = one flat rectangle, which is the truth; smoothing would invent detail). Pixels outside
the model's view (outside a centre crop) are NaN and drawn uncoloured.

Colour scales are honest (:func:`value_range`): softmax rows are probabilities, drawn on
[0, max] with a sequential map; dot-product and concatenation rows are f / N, which may be
negative (dot product) or unnormalized, drawn on a range symmetric around 0 with a diverging
map when any value is negative.

Figures for the app are plotly (see :mod:`nlviz.ui`); files written to disk use OpenCV and
matplotlib ``Figure`` objects (never pyplot's global state: the app is a threaded server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from torch import Tensor


class FrameGeometry(Protocol):
    """What rendering needs from :class:`nlviz.video.ClipGeometry`."""

    def input_box_to_frames(
        self, t0: float, t1: float, y0: float, y1: float, x0: float, x1: float
    ) -> tuple[list[int], tuple[float, float, float, float]]: ...


class CellGrid(Protocol):
    """A grid of cells to draw a map on: its (T, H, W) shape and each cell's model-input box."""

    shape: tuple[int, int, int]

    def box(self, cell) -> tuple[float, float, float, float, float, float]: ...


@dataclass(frozen=True)
class KeyCells:
    """A block's key grid, where its rows live (:meth:`~nlviz.capture.BlockCapture.key_box`)."""

    block: Any

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.block.key_shape)

    def box(self, cell) -> tuple[float, float, float, float, float, float]:
        return self.block.key_box(cell)


@dataclass(frozen=True)
class QueryCells:
    """A block's query grid, where its columns live (who attends to a key): each query cell lands
    on the pixels it covers (:meth:`~nlviz.capture.BlockCapture.query_box`)."""

    block: Any

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.block.query_shape)

    def box(self, cell) -> tuple[float, float, float, float, float, float]:
        return self.block.query_box(cell)


@dataclass(frozen=True)
class ValueRange:
    """The colour scale of one map: [vmin, vmax] and the colour map to use."""

    vmin: float
    vmax: float
    cmap: str  # matplotlib/OpenCV-independent name: "inferno" (sequential) or "RdBu_r" (diverging)
    signed: bool  # True when the scale is symmetric around 0

    @property
    def label(self) -> str:
        if self.signed:
            return f"f/N, symmetric around 0: [{self.vmin:.3g}, {self.vmax:.3g}]"
        return f"[{self.vmin:.3g}, {self.vmax:.3g}]"


def value_range(rows: Sequence[np.ndarray | Tensor], signed_variant: bool) -> ValueRange:
    """An honest shared scale for one or more rows.

    Softmax rows: [0, max] (the weights are probabilities summing to 1; 'max' is shown on the
    colour bar). Signed variants: [-m, m] with m = max |value| when any value is negative,
    else [0, max]; either way the colour bar states that the values are f / N, not probabilities.
    """
    arrays = [np.asarray(r.detach().cpu() if isinstance(r, Tensor) else r, dtype=np.float64) for r in rows]
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.zeros(1)
    if finite.size == 0:
        finite = np.zeros(1)
    hi = float(finite.max())
    lo = float(finite.min())
    if signed_variant and lo < 0:
        m = max(abs(lo), abs(hi)) or 1.0
        return ValueRange(-m, m, "RdBu_r", True)
    return ValueRange(0.0, hi if hi > 0 else 1.0, "inferno", False)


def frame_heatmaps(
    row: np.ndarray | Tensor, grid: CellGrid | Any, geometry: FrameGeometry, frame_size: tuple[int, int],
    num_frames: int,
) -> np.ndarray:
    """A map on a grid (T', H', W') as one heat map per displayed frame: (num_frames, H, W) float32.

    ``grid``: a :class:`CellGrid` (:class:`KeyCells` or :class:`QueryCells` of a block); a block
    itself stands for its key grid, where its rows live. frame_size: (H, W) of the displayed
    frames. Each time slice t' is drawn on every displayed frame it covers; each cell fills the
    rectangle of pixels it covers (a key: the pixels it pools). NaN marks pixels the map says
    nothing about (outside the crop, or frames no slice covers).
    """
    if not hasattr(grid, "box"):
        grid = KeyCells(grid)
    row = np.asarray(row.detach().cpu() if isinstance(row, Tensor) else row, dtype=np.float32)
    tk, hk, wk = grid.shape
    if row.shape != (tk, hk, wk):
        raise ValueError(f"row shape {row.shape} does not match the grid {grid.shape}")
    h, w = frame_size
    out = np.full((num_frames, h, w), np.nan, dtype=np.float32)
    for t in range(tk):
        first, last = grid.box((t, 0, 0)), grid.box((t, hk - 1, wk - 1))
        frames, (x0, y0, x1, y1) = geometry.input_box_to_frames(first[0], first[1], first[2], last[3], first[4], last[5])
        xa, ya = max(int(round(x0)), 0), max(int(round(y0)), 0)
        xb, yb = min(int(round(x1)), w), min(int(round(y1)), h)
        if xb <= xa or yb <= ya or not frames:
            continue
        patch = cv2.resize(row[t], (xb - xa, yb - ya), interpolation=cv2.INTER_NEAREST)
        for k in frames:
            if 0 <= k < num_frames:
                out[k, ya:yb, xa:xb] = patch
    return out


_CMAPS = {"inferno": cv2.COLORMAP_INFERNO, "RdBu_r": None, "viridis": cv2.COLORMAP_VIRIDIS}


def _diverging_lut() -> np.ndarray:
    """A blue-white-red 256-entry RGB lookup table (for signed maps)."""
    t = np.linspace(-1.0, 1.0, 256)[:, None]
    blue, white, red = np.array([33, 102, 172.0]), np.array([247, 247, 247.0]), np.array([178, 24, 43.0])
    lut = np.where(t < 0, white + (blue - white) * (-t), white + (red - white) * t)
    return lut.astype(np.uint8)


_DIVERGING = _diverging_lut()


def colorize(heat: np.ndarray, scale: ValueRange) -> np.ndarray:
    """Heat (..., H, W) float -> RGB uint8 (..., H, W, 3) under ``scale``; NaN -> black."""
    span = scale.vmax - scale.vmin or 1.0
    idx = np.clip((np.nan_to_num(heat, nan=scale.vmin) - scale.vmin) / span * 255.0, 0, 255).astype(np.uint8)
    if scale.cmap == "RdBu_r":
        rgb = _DIVERGING[idx]
    else:
        flat = idx.reshape(-1, 1)
        rgb = cv2.applyColorMap(flat, _CMAPS.get(scale.cmap, cv2.COLORMAP_INFERNO))[:, 0, ::-1]
        rgb = rgb.reshape(*idx.shape, 3)
    rgb = rgb.copy()
    rgb[np.isnan(heat)] = 0
    return rgb


OVERLAY_STYLES = ("heat", "darken")


def overlay(frames: np.ndarray, heat: np.ndarray, scale: ValueRange, alpha: float = 0.6,
            style: str = "darken") -> np.ndarray:
    """Draw heat maps over frames: (T, H, W, 3) uint8 + (T, H, W) -> (T, H, W, 3) uint8.

    ``style="darken"``: sequential scales (softmax weights) darken the frame where the weight is
    low and tint it with the colour map where it is high, so the attended regions are the bright
    part of the picture; ``alpha`` is the strength of both. Signed scales: the diverging colour is
    blended at ``alpha`` everywhere (white = 0, so zero weights leave a pale frame).
    ``style="heat"``: the frame is left untouched and the colour laid over it with an opacity
    of 0.85 * sqrt(w), w the weight's place on the scale (|value| / max for signed scales), so
    weak maps stay readable and unattended pixels show the frame as it is. The browser's view
    (``nlviz/ui/attention_view.js``) draws both styles with the same formulas.
    Where the heat is NaN (outside the model's view) the frame is shown dimmed and uncoloured.
    """
    if frames.shape[:3] != heat.shape:
        raise ValueError(f"frames {frames.shape[:3]} and heat maps {heat.shape} differ in shape")
    if style not in OVERLAY_STYLES:
        raise ValueError(f"style must be one of {OVERLAY_STYLES}, got {style!r}")
    nan = np.isnan(heat)
    color = colorize(heat, scale)
    # out = frame * f + colour * g, with per-pixel factors f, g (T, H, W): the (T, H, W, 3) work is
    # two multiplies and an add, in place (a click redraws every frame of the clip)
    span = scale.vmax - scale.vmin or 1.0
    if style == "heat":
        v = np.where(nan, 0.0, heat)
        w = np.abs(v) / (scale.vmax or 1.0) if scale.signed else (v - scale.vmin) / span
        g = (0.85 * np.sqrt(np.clip(w, 0, 1))).astype(np.float32)
        f = 1 - g
    elif scale.signed:
        f = np.full(heat.shape, 1 - alpha, np.float32)
        g = np.full(heat.shape, alpha, np.float32)
    else:
        w = np.sqrt(np.clip((np.where(nan, scale.vmin, heat) - scale.vmin) / span, 0, 1)).astype(np.float32)
        f = (1 - alpha * 0.8 * (1 - w)) * (1 - alpha * w)  # low weight: darker frame
        g = alpha * w  # high weight: colour on top
    f[nan], g[nan] = 0.45, 0.0  # outside the model's view: dimmed, uncoloured
    out = frames.astype(np.float32)
    out *= f[..., None]
    out += color * g[..., None]
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


@dataclass(frozen=True)
class KeyPoint:
    """One of the top-k attended keys, placed on the displayed frames."""

    cell: tuple[int, int, int]
    weight: float
    frames: tuple[int, ...]  # displayed frames the key covers
    x: float  # centre of its pixel rectangle in displayed-frame pixels
    y: float


def top_keys(row: np.ndarray | Tensor, block: Any, geometry: FrameGeometry, k: int = 20) -> list[KeyPoint]:
    """The ``k`` keys with the largest weights (the paper's Fig. 3 arrows), largest first; ``block``:
    anything with a ``key_box`` (a :class:`~nlviz.capture.BlockCapture`)."""
    row = np.asarray(row.detach().cpu() if isinstance(row, Tensor) else row, dtype=np.float64)
    flat = row.ravel()
    k = min(k, flat.size)
    order = np.argsort(-flat, kind="stable")[:k]
    out = []
    for i in order:
        cell = tuple(int(c) for c in np.unravel_index(i, row.shape))
        t0, t1, y0, y1, x0, x1 = block.key_box(cell)
        frames, (fx0, fy0, fx1, fy1) = geometry.input_box_to_frames(t0, t1, y0, y1, x0, x1)
        out.append(KeyPoint(cell, float(flat[i]), tuple(frames), (fx0 + fx1) / 2, (fy0 + fy1) / 2))
    return out


def temporal_profile(row: np.ndarray | Tensor) -> np.ndarray:
    """Attention mass per key time slice: (T',). Sums to 1 for softmax rows."""
    row = np.asarray(row.detach().cpu() if isinstance(row, Tensor) else row, dtype=np.float64)
    return row.reshape(row.shape[0], -1).sum(axis=1)


def draw_marker(frame: np.ndarray, x: float, y: float, color=(0, 255, 0), radius: int | None = None) -> np.ndarray:
    """A copy of ``frame`` with a crosshair circle at (x, y): the query.

    The crosshair is drawn over a black halo one pixel wider on each side, so that it stands out
    on any background (a green crosshair alone vanishes on grass)."""
    out = frame.copy()
    r = radius or max(3, min(frame.shape[:2]) // 40)
    c = (int(round(x)), int(round(y)))
    thick = max(1, r // 3)
    for col, width in (((0, 0, 0), thick + 2), (color, thick)):
        cv2.circle(out, c, r, col, width, lineType=cv2.LINE_AA)
        for (ax, ay), (bx, by) in (((-2, 0), (-1, 0)), ((1, 0), (2, 0)), ((0, -2), (0, -1)), ((0, 1), (0, 2))):
            cv2.line(out, (c[0] + ax * r, c[1] + ay * r), (c[0] + bx * r, c[1] + by * r), col, width,
                     lineType=cv2.LINE_AA)
    return out


def fit_text(text: str, width: int, scale: float) -> list[str]:
    """Split ``text`` into lines that fit ``width`` pixels in OpenCV's simplex font at ``scale``."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def text_strip(width: int, text: str, scale: float = 0.45, color=(30, 30, 30)) -> np.ndarray:
    """A white strip ``width`` pixels wide holding ``text``, wrapped to fit: (h, width, 3) uint8."""
    lines = fit_text(text, max(width - 8, 8), scale)
    step = int(round(22 * scale / 0.45))
    strip = np.full((step * len(lines) + 8, width, 3), 255, np.uint8)
    for n, line in enumerate(lines):
        cv2.putText(strip, line, (4, step * (n + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return strip


def draw_rect(frame: np.ndarray, rect: tuple[float, float, float, float], color=(255, 255, 0),
              thickness: int | None = None) -> np.ndarray:
    """A copy of ``frame`` with rectangle (x0, y0, x1, y1) outlined (e.g. the model's crop).

    ``thickness``: line width in pixels (default: grows with the frame, 1 px per 150)."""
    out = frame.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    width = thickness or max(1, min(frame.shape[:2]) // 150)
    cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), color, width)
    return out


def montage(images: Sequence[np.ndarray], columns: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile same-size RGB images (H, W, 3) into a grid, row-major: one image for export."""
    if not images:
        raise ValueError("montage needs at least one image")
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    out = np.full((rows * h + (rows - 1) * pad, columns * w + (columns - 1) * pad, 3), fill, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = im
    return out


def shannon_entropy(row: np.ndarray | Tensor) -> float:
    """Entropy in nats of a softmax row (of |row| / sum |row| for signed variants).

    NaN for an all-zero row: it attends nowhere, which is not the same as attending to one key."""
    p = np.abs(np.asarray(row.detach().cpu() if isinstance(row, Tensor) else row, dtype=np.float64)).ravel()
    total = p.sum()
    if total <= 0:
        return float("nan")
    p = p[p > 0] / total
    return float(-(p * np.log(p)).sum())


def arrows_montage(
    frames: np.ndarray,
    query_frame: int,
    query_xy: tuple[float, float],
    keys: Sequence[KeyPoint],
    columns: int,
    factor: float = 1.0,
    pad: int = 4,
) -> np.ndarray:
    """The paper's Fig. 3 view: frames tiled, arrows from the query to its top-k keys.

    frames: (T, h, w, 3) thumbnails; query_xy and the keys' x/y are in full-size displayed
    pixels and are multiplied by ``factor``. An arrow goes to each frame a key covers; its
    thickness and opacity grow with the key's weight (relative to the strongest key).
    """
    h, w = frames.shape[1:3]
    tiles = [f.copy() for f in frames]
    tiles[query_frame] = draw_marker(tiles[query_frame], query_xy[0] * factor, query_xy[1] * factor)
    canvas = montage(tiles, columns, pad=pad)

    def origin(k: int) -> tuple[int, int]:
        r, c = divmod(k, columns)
        return c * (w + pad), r * (h + pad)

    qx0, qy0 = origin(query_frame)
    start = (int(qx0 + query_xy[0] * factor), int(qy0 + query_xy[1] * factor))
    if not keys:
        return canvas
    top = max(abs(kp.weight) for kp in keys) or 1.0
    layer = canvas.copy()
    for kp in reversed(keys):  # strongest drawn last, on top
        strength = abs(kp.weight) / top
        color = (255, int(230 * (1 - strength)), 0)
        for k in kp.frames:
            if not 0 <= k < len(frames):
                continue
            ox, oy = origin(k)
            end = (int(ox + kp.x * factor), int(oy + kp.y * factor))
            cv2.arrowedLine(layer, start, end, color, max(1, int(1 + 2 * strength)), cv2.LINE_AA, tipLength=0.08)
            cv2.circle(layer, end, max(2, int(2 + 3 * strength)), color, -1, cv2.LINE_AA)
    return cv2.addWeighted(layer, 0.85, canvas, 0.15, 0)
