"""What a model expects of its input clip: the preprocessing that travels with a checkpoint.

Every model built by :mod:`nlviz.models` carries a :class:`ClipSpec` as ``model.spec``
(a frozen dataclass, never mutated), in the spirit of torchvision's ``Weights.transforms``:
the video loader (:mod:`nlviz.video`) reads it to sample and normalize frames exactly as
the model was trained, so that attention maps are computed on the input the model expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Caffe2 video-nonlocal-net and PySlowFast normalize 0-255 pixels with one mean/std for all channels.
C2_MEAN = (114.75, 114.75, 114.75)
C2_STD = (57.375, 57.375, 57.375)
# mmaction2 uses the ImageNet per-channel statistics (RGB order, on 0-255).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ClipSpec:
    """How to turn a video into the (N, 3, T, H, W) tensor a model was trained on.

    Sampling: ``num_frames`` frames taken every ``stride`` frames of the source video
    (the paper's "32x2" is num_frames=32, stride=2).
    Geometry: resize so the short side is ``short_side`` pixels, then either a centre
    crop of ``crop_size`` x ``crop_size`` (as in training) or the whole resized frame
    (fully convolutional, as in the paper's testing), chosen by the caller.
    Values: pixels in 0-255, in ``channel_order``, normalized as (x - mean) / std per channel.
    ``mean``/``std`` are given in the same channel order as the model input.
    """

    num_frames: int = 8  # T of the model input
    stride: int = 8  # temporal sampling rate: one frame every `stride` source frames
    short_side: int = 256  # the short side is resized to this before cropping
    crop_size: int = 224  # side of the square centre crop used in training
    mean: tuple[float, float, float] = C2_MEAN  # per channel, on the 0-255 scale
    std: tuple[float, float, float] = C2_STD  # per channel, on the 0-255 scale
    channel_order: str = "RGB"  # "RGB" or "BGR": the order conv1's weights expect
    labels: str | None = None  # label set name in assets/labels (e.g. "kinetics400"), or None
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # source-specific notes

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1, got {self.num_frames}, {self.stride}")
        if self.crop_size < 1 or self.short_side < 1:
            raise ValueError(f"crop_size and short_side must be >= 1, got {self.crop_size}, {self.short_side}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need one value per channel (3)")

    def with_(self, **changes) -> "ClipSpec":
        """A copy with some fields changed (the spec itself is immutable)."""
        return replace(self, **changes)
