"""Where a sampled clip's pixels are: :class:`ClipGeometry` (displayed frame <-> model input,
exact arithmetic) and :class:`Clip` (the sampled frames, the model input and their geometry).

Coordinates are continuous everywhere: pixel column i covers x in [i, i + 1) and its centre is
x = i + 0.5 (a click on pixel i is best given as i + 0.5); sampled frame k covers t in [k, k + 1)
of the model input's time axis. With this convention the bilinear resize is a pure scaling
(x_resized = x * W_resized / W), so the mapping is exact arithmetic (:class:`ClipGeometry`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import OutsideCropError


@dataclass(frozen=True)
class ClipGeometry:
    """Exact mapping between the displayed frames and the model input (pure arithmetic).

    Displayed side: sampled frame number k in [0, T), pixel position (x, y) in the displayed
    frame (``Clip.frames``, ``frame_size`` = (W, H)). Model side: input frame t in [0, T), pixel
    row y and column x of the (T, H_in, W_in) input. Coordinates are continuous: pixel i
    covers [i, i + 1), its centre is i + 0.5; frame k covers [k, k + 1) on the time axis.

    The chain: displayed frame --(resize by resized_size / frame_size, bilinear)--> resized
    frame --(crop at crop_offset, size input_size)--> model input. ``source_size`` is the
    video's own display size before the ``max_side`` downscale; ``frame_to_source`` maps there.
    """

    num_frames: int  # T: sampled frames = model input frames
    frame_size: tuple[int, int]  # (W, H) of the displayed frames
    source_size: tuple[int, int]  # (W, H) of the video as a player shows it, full resolution
    resized_size: tuple[int, int]  # (W, H) after resizing the short side to spec.short_side
    crop_offset: tuple[int, int]  # (x, y) of the crop's top-left corner in the resized frame
    input_size: tuple[int, int]  # (W_in, H_in) of the model input
    crop: str = "center"  # "center" or "full"

    @classmethod
    def build(
        cls,
        frame_size: tuple[int, int],
        *,
        short_side: int,
        crop_size: int,
        crop: str = "center",
        num_frames: int = 1,
        source_size: tuple[int, int] | None = None,
    ) -> "ClipGeometry":
        """The geometry of resizing ``frame_size`` (W, H) to ``short_side`` and cropping.

        Resized size: the short side becomes exactly ``short_side``, the long side
        floor(long * short_side / short + 0.5). Centre crop offset: ((W_r - c) // 2, (H_r - c) // 2).
        """
        if crop not in ("center", "full"):
            raise ValueError(f"crop must be 'center' or 'full', got {crop!r}")
        w, h = (int(v) for v in frame_size)
        if w < 1 or h < 1:
            raise ValueError(f"frame size must be positive, got {frame_size}")
        if w <= h:
            wr, hr = short_side, max(1, math.floor(h * short_side / w + 0.5))
        else:
            wr, hr = max(1, math.floor(w * short_side / h + 0.5)), short_side
        if crop == "full":
            offset, size = (0, 0), (wr, hr)
        else:
            if crop_size > min(wr, hr):
                raise ValueError(f"crop size {crop_size} is larger than the resized frame {wr}x{hr}")
            offset, size = ((wr - crop_size) // 2, (hr - crop_size) // 2), (crop_size, crop_size)
        return cls(num_frames, (w, h), tuple(source_size or (w, h)), (wr, hr), offset, size, crop)

    # -- derived values
    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): resized pixels per displayed pixel along x and y."""
        return self.resized_size[0] / self.frame_size[0], self.resized_size[1] / self.frame_size[1]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(T, H_in, W_in) of the model input."""
        return self.num_frames, self.input_size[1], self.input_size[0]

    # -- displayed -> model input
    def to_input(self, k: int, x: float, y: float) -> tuple[float, float, float]:
        """Displayed frame k, pixel (x, y) -> model input (t, y_in, x_in), continuous.

        t = k + 0.5 (the centre of input frame k). Raises :class:`OutsideCropError` when k is
        not a sampled frame, (x, y) lies outside the frame, or outside the centre crop.
        """
        t = self._check_frame(k)
        w, h = self.frame_size
        if not (0 <= x < w and 0 <= y < h):
            raise OutsideCropError(f"pixel (x={x:g}, y={y:g}) is outside the {w}x{h} frame")
        sx, sy = self.scale
        xi, yi = x * sx - self.crop_offset[0], y * sy - self.crop_offset[1]
        wi, hi = self.input_size
        if not (0 <= xi < wi and 0 <= yi < hi):
            x0, y0, x1, y1 = self.crop_rect()
            raise OutsideCropError(
                f"pixel (x={x:g}, y={y:g}) is outside the centre crop the model sees "
                f"(x {x0:.1f}..{x1:.1f}, y {y0:.1f}..{y1:.1f}): pick a point inside it, or use the full frame"
            )
        return t + 0.5, yi, xi

    # -- model input -> displayed
    def to_frame(self, t: float, y: float, x: float) -> tuple[int, float, float]:
        """Model input (t, y_in, x_in) -> (k, x, y) in the displayed frame (inverse of :meth:`to_input`)."""
        t_in, h_in, w_in = self.input_shape
        if not (0 <= t < t_in and 0 <= y < h_in and 0 <= x < w_in):
            raise OutsideCropError(f"position (t={t:g}, y={y:g}, x={x:g}) is outside the {t_in}x{h_in}x{w_in} input")
        sx, sy = self.scale
        return int(math.floor(t)), (x + self.crop_offset[0]) / sx, (y + self.crop_offset[1]) / sy

    def input_box_to_frames(
        self, t0: float, t1: float, y0: float, y1: float, x0: float, x1: float
    ) -> tuple[list[int], tuple[float, float, float, float]]:
        """A half-open model-input box -> (sampled frames it covers, (x0, y0, x1, y1) displayed rectangle).

        Frame k is covered when [k, k + 1) overlaps [t0, t1) (a 1e-6 tolerance absorbs float
        error at exact boundaries). The rectangle is in displayed-frame pixels, clipped to the frame.
        """
        eps = 1e-6
        first = max(0, math.floor(t0 + eps))
        last = min(self.num_frames, math.ceil(t1 - eps))
        frames = list(range(first, last))
        sx, sy = self.scale
        ox, oy = self.crop_offset
        w, h = self.frame_size
        rect = (
            min(max((x0 + ox) / sx, 0.0), w),
            min(max((y0 + oy) / sy, 0.0), h),
            min(max((x1 + ox) / sx, 0.0), w),
            min(max((y1 + oy) / sy, 0.0), h),
        )
        return frames, rect

    def crop_rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the region the model sees, in displayed-frame pixels (the whole frame for "full")."""
        wi, hi = self.input_size
        return self.input_box_to_frames(0, self.num_frames, 0, hi, 0, wi)[1]

    def frame_to_source(self, x: float, y: float) -> tuple[float, float]:
        """Displayed-frame (x, y) -> the video's full-resolution display pixels (undoes ``max_side``)."""
        return x * self.source_size[0] / self.frame_size[0], y * self.source_size[1] / self.frame_size[1]

    def _check_frame(self, k: int) -> int:
        if isinstance(k, bool) or not float(k).is_integer() or not 0 <= k < self.num_frames:
            raise OutsideCropError(
                f"frame {k} is not one of the {self.num_frames} sampled frames (0..{self.num_frames - 1})"
            )
        return int(k)


@dataclass
class Clip:
    """A sampled, preprocessed clip: what the user sees and what the model gets.

    ``frames`` (T, H, W, 3) uint8 RGB at the displayed size (the video's size, or capped at
    ``max_side``); ``indices``/``timestamps``: source frame number and time (seconds from the
    first frame) of each sampled frame; ``input`` (1, 3, T, H_in, W_in) float32 for the model.
    """

    frames: np.ndarray = field(repr=False)
    indices: list[int]
    timestamps: list[float]
    fps: float  # frames per second of the source (1.0 for a still image, which has no rate)
    source_size: tuple[int, int]  # (W, H) of the video at full resolution, as a player shows it
    input: torch.Tensor = field(repr=False)
    geometry: ClipGeometry
    notes: list[str] = field(default_factory=list)
    total_frames: int = 0  # frames in the source video
    stride: int | None = None  # stride actually used; None for uniform sampling
    is_still: bool = False  # a still image repeated

    def query_cell(self, block: Any, k: int, x: float, y: float) -> tuple[int, int, int]:
        """The block's query cell under displayed frame k, pixel (x, y).

        ``block`` has ``query_at(t, y, x)`` in model-input coordinates (see
        :class:`nlviz.capture.BlockCapture`). Raises :class:`OutsideCropError` off the crop.
        """
        return block.query_at(*self.geometry.to_input(k, x, y))

    def key_region(self, block: Any, cell: Sequence[int]) -> tuple[list[int], tuple[float, float, float, float]]:
        """Where a key cell of ``block`` lies on the displayed frames: (frames k, (x0, y0, x1, y1)).

        ``block.key_box(cell)`` gives the half-open model-input box the key pools (including
        any temporal stride of the network); this maps it back with the geometry.
        """
        return self.geometry.input_box_to_frames(*block.key_box(cell))
