"""Synthetic video clips with ground-truth object identities, masks and tracks.

nlviz trains its bundled demo models (:mod:`nlviz.train`) on these clips, because no
non-local checkpoint can be downloaded on the build machines, and then measures whether their
non-local blocks attend to *the same object in other frames* (the "object-tracking score").
That needs, per frame, each object's identity and pixel mask: :func:`make_track_clip` and
:func:`make_clip` return both.

The demo models' task: identity propagation (:func:`make_track_clip`)
-----------------------------------------------------------------------
Four objects of random shapes, each of a different colour of :data:`HUES`, move fast (24-43 px
over 16 frames at 64 px, bouncing off the edges) over a dark background, crossing and occluding
each other. In the first ``colour_frames`` (4) frames each object shows a *shade*, one of four
brightnesses (the label: :data:`TRACK_CLASSES`), each shade on one object, in random order;
from then on every object has the same medium brightness and keeps its colour. The network
labels every cell of the last frames (``label_from`` = 10 on) with the shade of the object
there, background being a class of its own: dense classification on the res3 grid.

Why it needs query-dependent attention: the order of the shades is drawn independently of
colours, shapes and motion and only sets the brightness of the first frames, so from frame
``colour_frames`` on the pixels are the same whatever the shades (a test swaps them and
compares); and the tiny network's convolutions do not reach from the labelled frames back to
the first four (exactly zero gradient, tested). So a cell can only be labelled by retrieving,
from the first frames, the object with its own colour: a different place for every query.
Every clip shows each shade once, so what is the same for every query (the mean over the clip,
GCNet's global context) says nothing about any one object's shade: a query-independent map
labels at chance. (The previous version, six objects with shades drawn with repetition, let a
map shared by all queries reach about 47% by telling the clip's most common shade; the
dot-product model settled there and never became colour-selective.) Colour is the identity
because matching it is a dot product of 1x1 features (the hues lie 60 degrees apart on the
chroma hexagon), what an embedded-Gaussian or dot-product block computes directly. (We tried
the issue's first idea, the colour as the label and each object's grey level as its identity:
the same network stayed at chance for 150 steps of 16 clips; matching a scalar needs a
bump-shaped kernel, which a dot product of features learns slowly.)

The earlier task: "which colour travels?" (:func:`make_clip`, the ``synthetic_<seed>`` samples)
--------------------------------------------------------------------------------------------------
Every clip shows ``num_objects`` (default 4) flat objects, one of each colour of
:data:`CLASSES` (red, green, blue, yellow), each with a random shape (circle, square,
triangle or cross, see :data:`SHAPES`), over a cluttered background: a static blotchy
texture, static low-contrast outlines of the same shapes ("decoys") and per-frame flicker
(pixel noise, global brightness jitter, one-frame specks). One object, the *target*, travels
in a straight line across the frame (2.2-3.2 px per frame at 64 px, 34-48 px over the clip);
the others *jitter* (``wander``): they jump to a random point within 3.2 px of a slowly
drifting home position each frame, as far per frame as the target moves. The label is the
colour of the target: the object that ends farthest from where it started.

Why the task needs cross-frame association: every frame holds one object of each colour,
with shapes, sizes, positions and drawing order independent of the label, so a single frame
carries no information about the answer: the target is visually identical in kind to the
others. A pair of consecutive frames does not settle it either: a jittering object moves as
far from one frame to the next as the target does (2.9 px on average against 2.2-3.2 px), so
the size of a frame-to-frame change says nothing. What sets the target apart is that its
steps add up, in one direction, over the clip: it ends 34-48 px from its start, the others at
most 16 px. Seeing that means relating an object's positions in frames some distance apart,
a space-time dependency that a non-local block computes directly (an embedded-Gaussian block
can match an object across frames by its colour); the colours make "same object" easy to read
in an attention map.

Learnability: a tiny 3-D CNN (about 140k parameters, 3x3x3 kernels, global average pooling)
reaches 86 % on held-out clips after 150 steps of 24 clips and 100 % after 210 (chance 25 %;
4000 training clips, under 3 minutes on a 2-core CPU): colour is a 1x1-convolution feature, and a few stacked temporal kernels already see that
three or four successive target steps line up while jitter steps do not, so the convolutions
offer a local route and the non-local blocks a direct one. ``wander="orbit"`` makes the others
circle their home at the target's speed, locally as smooth as the target: only frames far
apart tell them apart (harder: the same net reaches 34 % in that time). With
``wander_radius=0`` the others merely drift and the task is "which colour moves", solvable
from two frames. (Shapes are deliberately not the label: in our tests a tiny 3-D CNN stayed at
chance for 1000 steps on "the shape of the moving object", even on a flat background.)

Conventions: frames are RGB uint8 (T, H, W, 3); pixel (row i, column j) has its centre at
(x=j, y=i) (OpenCV's convention), and ``tracks`` hold object centres in those units (floats:
objects are drawn with sub-pixel precision, without anti-aliasing). ``masks`` (T, H, W) hold
the id (0..K-1) of the object drawn on top at each pixel, -1 for background; objects keep one
drawing order for the whole clip, so crossings occlude consistently. Object pixels carry
their object's colour exactly; background pixels are kept within [BG_LO, BG_HI] on every
channel and every object colour has a channel outside it, so no background pixel equals an
object colour (before any video compression).

Preview: ``python -m nlviz.synthetic --out /tmp/clips --n 4`` writes H.264 mp4s and their
ground truth JSON; :func:`write_samples` writes the ones bundled in ``assets/samples``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CLASSES: tuple[str, ...] = ("red", "green", "blue", "yellow")
"""Colour classes; the label of a clip is the index here of the target's colour."""

COLOURS: np.ndarray = np.array([(255, 0, 0), (0, 200, 0), (0, 90, 255), (255, 220, 0)], dtype=np.uint8)
"""(len(CLASSES), 3) RGB colour of each class: saturated, each with a channel outside [BG_LO, BG_HI]."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""Object shapes: drawn at random, independent of the label (a nuisance, and help for the eye)."""

TASK_DESCRIPTION = (
    "Four objects, one red, green, blue and yellow, of random shapes, over a cluttered, flickering "
    "background: one travels in a straight line across the frame, the others jitter in place by as "
    "much per frame. Label: the colour of the traveller (the object that ends farthest from its start). "
    "No single frame, and no pair of consecutive frames, tells which one it is."
)

# Normalization of the model input, on the 0-255 scale, per RGB channel: (x - MEAN) / STD,
# i.e. (x / 255 - 0.5) / 0.25, so pixels span [-2, 2]. A ClipSpec(mean=MEAN, std=STD,
# short_side=size, crop_size=size, num_frames=frames, stride=1) reproduces to_tensor exactly.
MEAN: tuple[float, float, float] = (127.5, 127.5, 127.5)
STD: tuple[float, float, float] = (63.75, 63.75, 63.75)

# Background pixels stay within [BG_LO, BG_HI] on every channel; every object colour has a
# channel outside it, so no background pixel can equal an object's colour.
BG_LO, BG_HI = 40, 215

SAMPLES_FPS = 8  # frame rate of the written mp4s: 16 frames play in 2 s, slow enough to follow by eye
_SHIFT = 4  # OpenCV sub-pixel bits: coordinates are drawn at 1/16 px precision
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines the clip distribution. Lengths are fractions of ``size``
    (pixel values in the comments are for the default size 64), so another ``size`` gives
    the same task at another resolution."""

    frames: int = 16  # T: the tiny demo models take 16 frames (ClipSpec num_frames=16, stride 1)
    size: int = 64  # H = W in pixels: small enough to train on a CPU, large enough for 16x16 res3 maps
    num_objects: int = 4  # objects per clip, 2..4, of distinct colours; 4: every colour in every frame
    radius: tuple[float, float] = (0.065, 0.095)  # object half-extent range (4.2-6.1 px): 2-3 res3 cells (16x16) across
    travel_speed: tuple[float, float] = (0.035, 0.05)  # the target, per frame (2.2-3.2 px), straight, never bounces
    drift_speed: tuple[float, float] = (0.0, 0.01)  # the others' home drift per frame (0-0.6 px), bouncing off edges
    wander: str = "jitter"  # how the others move around home: "jitter" (a random jump each frame) or "orbit" (a circle)
    wander_radius: float = 0.05  # jitter: jumps land this close to home (3.2 px); orbit: the circle's radius
    decoys: int = 3  # static low-contrast shape outlines in the background: shapes that are not objects
    noise: int = 6  # per-pixel flicker, uniform in [-noise, noise] grey levels, new in every frame
    brightness_flicker: int = 4  # global per-frame brightness jitter, uniform in [-b, b] grey levels
    specks: int = 4  # one-frame random specks (2-3 px squares) per frame: motion that is not an object
    texture_cells: int = 6  # the static background texture is a random grid this coarse, smoothly upscaled

    def __post_init__(self) -> None:
        for name in ("radius", "travel_speed", "drift_speed"):  # lists from JSON -> tuples (hashable, comparable)
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2 (the task is about motion), got {self.frames}")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"size must be even and >= 16 (H.264 needs even sides), got {self.size}")
        if not 2 <= self.num_objects <= len(CLASSES):
            raise ValueError(f"num_objects must be in 2..{len(CLASSES)} (distinct colours), got {self.num_objects}")
        lo, hi = self.radius
        if not 0 < lo <= hi <= 0.25:
            raise ValueError(f"radius range must satisfy 0 < lo <= hi <= 0.25, got {self.radius}")
        if not (0 <= self.drift_speed[0] <= self.drift_speed[1] and 0 < self.travel_speed[0] <= self.travel_speed[1]):
            raise ValueError(f"speed ranges must be ordered and >= 0: {self.drift_speed}, {self.travel_speed}")
        steps = self.frames - 1
        room = (self.size - 1) / self.size - 2 * hi  # what is left for the centre to move in, per axis
        if self.travel_speed[1] * steps > room:
            raise ValueError(
                f"the target would leave the frame: travel_speed {self.travel_speed[1]} x {steps} steps > {room:.3f}"
            )
        if self.wander not in ("jitter", "orbit"):
            raise ValueError(f"wander must be 'jitter' or 'orbit', got {self.wander!r}")
        home_reach = self.drift_speed[1] * steps + 2 * self.wander_radius  # farthest a non-target can end
        if self.wander_radius < 0 or self.travel_speed[0] * steps <= home_reach:
            raise ValueError(
                "the target must end farthest from its start: need travel_speed[0] * (frames - 1) > "
                "drift_speed[1] * (frames - 1) + 2 * wander_radius (and wander_radius >= 0)"
            )
        if min(self.decoys, self.noise, self.brightness_flicker, self.specks) < 0 or self.texture_cells < 1:
            raise ValueError("decoys, noise, brightness_flicker, specks must be >= 0 and texture_cells >= 1")


@dataclass
class SyntheticClip:
    """One clip and its ground truth (T frames, K objects, H = W = size).

    - ``frames``: (T, H, W, 3) uint8 RGB.
    - ``masks``: (T, H, W) int8, id of the object on top at each pixel, -1 for background.
    - ``object_classes``: K indices into :data:`CLASSES`, the colour class of each object id (distinct).
    - ``label``: index into :data:`CLASSES`, the colour of the target.
    - ``target``: the object id of the target (``object_classes[target] == label``).
    - ``shapes``: K indices into :data:`SHAPES` (may repeat).
    - ``tracks``: (T, K, 2) float32 object centres (x, y) in pixels.
    - ``boxes``: (T, K, 4) float32 (x0, y0, x1, y1), each object's full extent (occlusion ignored).
    - ``colours``: (K, 3) uint8 RGB colour of each object (``COLOURS[object_classes]``).
    - ``radii``: (K,) float32 half-extent of each object in pixels.
    - ``draw_order``: K object ids, bottom first.
    """

    frames: np.ndarray
    masks: np.ndarray
    object_classes: list[int]
    label: int
    target: int
    shapes: list[int]
    tracks: np.ndarray
    boxes: np.ndarray
    colours: np.ndarray
    radii: np.ndarray
    draw_order: list[int]

    @property
    def label_name(self) -> str:
        return CLASSES[self.label]

    def ground_truth(self) -> dict:
        """JSON-ready ground truth (no pixels; masks are re-created by :func:`make_clip`)."""
        return {
            "label": self.label,
            "label_name": self.label_name,
            "classes": list(CLASSES),
            "target": self.target,
            "object_classes": list(self.object_classes),
            "object_class_names": [CLASSES[c] for c in self.object_classes],
            "shapes": [SHAPES[s] for s in self.shapes],
            "colours": self.colours.tolist(),
            "radii": np.round(self.radii, 3).tolist(),
            "draw_order": list(self.draw_order),
            "tracks": np.round(self.tracks, 3).tolist(),
            "boxes": np.round(self.boxes, 3).tolist(),
        }


# --- geometry --------------------------------------------------------------------------------


def _shape_polygon(cls: int, cx: float, cy: float, r: float) -> np.ndarray | None:
    """Vertices (n, 2) float of shape ``cls`` centred at (cx, cy) with half-extent r; None for the circle."""
    name = SHAPES[cls]
    if name == "circle":
        return None
    if name == "square":
        s = 0.88 * r  # about the circle's area
        pts = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif name == "triangle":
        # upright isosceles triangle filling the [-r, r] box: base at y = +r, apex at y = -r
        pts = [(0.0, -r), (r, r), (-r, r)]
    elif name == "cross":
        w = 0.4 * r  # half-width of the arms
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w),
               (-w, -w)]
    else:  # pragma: no cover - SHAPES and this function go together
        raise ValueError(name)
    return np.asarray(pts, dtype=np.float64) + (cx, cy)


def _half_extents(cls: int, r: float) -> tuple[float, float]:
    """(half width, half height) of the drawn shape: its box is centre +- these."""
    return (0.88 * r, 0.88 * r) if SHAPES[cls] == "square" else (r, r)


def _fixed(v) -> np.ndarray:
    return np.round(np.asarray(v, dtype=np.float64) * _ONE).astype(np.int32)


def _draw_shape(img: np.ndarray, cls: int, cx: float, cy: float, r: float, value, thickness: int = -1) -> None:
    """Draw shape ``cls`` into img in place (filled, or an outline of ``thickness`` px), no anti-aliasing."""
    poly = _shape_polygon(cls, cx, cy, r)
    if poly is None:
        centre = tuple(int(v) for v in _fixed((cx, cy)))
        cv2.circle(img, centre, int(_fixed(r)), value, thickness, cv2.LINE_8, _SHIFT)
    elif thickness < 0:
        cv2.fillPoly(img, [_fixed(poly)], value, cv2.LINE_8, _SHIFT)
    else:
        cv2.polylines(img, [_fixed(poly)], True, value, thickness, cv2.LINE_8, _SHIFT)


def _bounce(start: np.ndarray, velocity: np.ndarray, lo: np.ndarray, hi: np.ndarray, frames: int) -> np.ndarray:
    """Positions (frames, 2) of a point moving at constant velocity, reflected at [lo, hi] per axis."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    span = hi - lo
    free = start - lo + t * velocity  # unbounded coordinate, then folded into [0, span] (a triangle wave)
    folded = np.mod(free, 2 * span)
    return lo + np.where(folded > span, 2 * span - folded, folded)


def displacements(tracks: np.ndarray) -> np.ndarray:
    """How far each object ends from where it started: |c[T-1] - c[0]|. (T, K, 2) -> (K,)."""
    return np.linalg.norm(tracks[-1] - tracks[0], axis=-1)


# --- clips ---------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """(T, H, W, 3) uint8 background: static texture + decoy outlines, then per-frame flicker."""
    n, T = cfg.size, cfg.frames
    coarse = rng.uniform(BG_LO + 25, BG_HI - 25, size=(cfg.texture_cells, cfg.texture_cells, 3)).astype(np.float32)
    static = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)
    for _ in range(cfg.decoys):  # low-contrast outlines of object shapes that never move
        cls = int(rng.integers(len(SHAPES)))
        r = rng.uniform(*cfg.radius) * n
        cx, cy = rng.uniform(r, n - 1 - r, size=2)
        grey = float(rng.uniform(BG_LO + 20, BG_HI - 20))
        _draw_shape(static, cls, cx, cy, r, (grey, grey, grey), thickness=1)
    frames = np.empty((T, n, n, 3), dtype=np.int16)
    frames[:] = np.round(static).astype(np.int16)
    if cfg.noise:
        frames += rng.integers(-cfg.noise, cfg.noise + 1, size=(T, n, n, 1), dtype=np.int16)
    if cfg.brightness_flicker:
        b = cfg.brightness_flicker
        frames += rng.integers(-b, b + 1, size=(T, 1, 1, 1), dtype=np.int16)
    if cfg.specks:
        sides = rng.integers(2, 4, size=(T, cfg.specks))
        corners = rng.integers(0, n - 2, size=(T, cfg.specks, 2))
        tints = rng.integers(BG_LO, BG_HI + 1, size=(T, cfg.specks, 3), dtype=np.int16)
        for t in range(T):
            for (x, y), w, g in zip(corners[t], sides[t], tints[t]):
                frames[t, y : y + w, x : x + w] = g
    np.clip(frames, BG_LO, BG_HI, out=frames)
    return frames.astype(np.uint8)


def make_clip(seed: int, config: SyntheticConfig = SyntheticConfig()) -> SyntheticClip:
    """One clip, a pure function of (seed, config): numpy ``Generator(PCG64(seed))``, no global state.

    Returns a :class:`SyntheticClip` with frames (T, H, W, 3) uint8, masks (T, H, W) int8 and
    the ground truth (see there).
    """
    cfg = config
    rng = np.random.Generator(np.random.PCG64(seed))
    n, T, K = cfg.size, cfg.frames, cfg.num_objects
    label = int(rng.integers(len(CLASSES)))
    others = [c for c in rng.permutation(len(CLASSES)).tolist() if c != label][: K - 1]
    classes = others + [label]
    classes = [classes[i] for i in rng.permutation(K)]  # colour of object ids 0..K-1, the label's at a random id
    target = classes.index(label)
    shapes = rng.integers(len(SHAPES), size=K).tolist()
    radii = rng.uniform(*cfg.radius, size=K) * n

    tracks = np.empty((T, K, 2), dtype=np.float64)
    boxes = np.empty((T, K, 4), dtype=np.float64)
    for k in range(K):
        half = np.asarray(_half_extents(shapes[k], radii[k]))
        lo, hi = half, (n - 1) - half  # the centre keeps the whole shape inside the frame
        angle = rng.uniform(0, 2 * math.pi)
        direction = np.array([math.cos(angle), math.sin(angle)])
        if k == target:  # a straight line from a start chosen so that it never reaches an edge
            velocity = rng.uniform(*cfg.travel_speed) * n * direction
            travel = velocity * (T - 1)
            start = rng.uniform(lo + np.maximum(-travel, 0), hi - np.maximum(travel, 0))
            tracks[:, k] = start + np.arange(T)[:, None] * velocity
        else:  # a slowly drifting home (bouncing off the edges) and a fresh random jump around it each frame
            velocity = rng.uniform(*cfg.drift_speed) * n * direction
            home = _bounce(rng.uniform(lo, hi), velocity, lo, hi, T)
            if cfg.wander == "jitter":  # uniform in the disc of radius wander_radius
                r = cfg.wander_radius * n * np.sqrt(rng.random(T))
                phi = rng.uniform(0, 2 * math.pi, size=T)
            else:  # orbit at the target's speeds: locally as straight and as fast as the target
                r = np.full(T, cfg.wander_radius * n)
                omega = rng.uniform(*cfg.travel_speed) * n / max(r[0], 1e-9) * rng.choice((-1, 1))
                phi = rng.uniform(0, 2 * math.pi) + omega * np.arange(T)
            jumps = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
            tracks[:, k] = _bounce(home + jumps, np.zeros(2), lo, hi, T)  # fold jumps past an edge back inside
        boxes[:, k, :2] = tracks[:, k] - half
        boxes[:, k, 2:] = tracks[:, k] + half
    colours = COLOURS[classes]
    draw_order = rng.permutation(K).tolist()

    frames = _background(rng, cfg)
    ids = np.zeros((T, n, n), dtype=np.uint8)  # object id + 1, 0 for background
    for k in draw_order:  # bottom first: a later object overwrites the earlier ones
        # the same rasterization call draws the mask and the colour, so they cover the same pixels
        colour = tuple(int(c) for c in colours[k])
        template = _shape_polygon(shapes[k], 0.0, 0.0, radii[k])
        if template is None:
            centres, r = _fixed(tracks[:, k]), int(_fixed(radii[k]))
            for t in range(T):
                centre = (int(centres[t, 0]), int(centres[t, 1]))
                cv2.circle(ids[t], centre, r, k + 1, -1, cv2.LINE_8, _SHIFT)
                cv2.circle(frames[t], centre, r, colour, -1, cv2.LINE_8, _SHIFT)
        else:
            polys = _fixed(template[None] + tracks[:, k, None, :])  # (T, V, 2) fixed-point vertices
            for t in range(T):
                cv2.fillPoly(ids[t], [polys[t]], k + 1, cv2.LINE_8, _SHIFT)
                cv2.fillPoly(frames[t], [polys[t]], colour, cv2.LINE_8, _SHIFT)
    masks = ids.view(np.int8) - np.int8(1)

    assert int(np.argmax(displacements(tracks))) == target, "config must make the target end farthest from its start"
    return SyntheticClip(
        frames=frames,
        masks=masks,
        object_classes=classes,
        label=label,
        target=target,
        shapes=shapes,
        tracks=tracks.astype(np.float32),
        boxes=boxes.astype(np.float32),
        colours=colours,
        radii=radii.astype(np.float32),
        draw_order=draw_order,
    )


def make_dataset(
    n: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` clips with seeds ``seed, seed + 1, ..., seed + n - 1`` (clip i is ``make_clip(seed + i)``).

    Returns (clips (n, T, H, W, 3) uint8, labels (n,) int64, masks (n, T, H, W) int8).
    About 1 ms per default clip; 2000 default clips take 400 MB (clips) + 130 MB (masks).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    T, s = config.frames, config.size
    clips = np.empty((n, T, s, s, 3), dtype=np.uint8)
    masks = np.empty((n, T, s, s), dtype=np.int8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        clip = make_clip(seed + i, config)
        clips[i], masks[i], labels[i] = clip.frames, clip.masks, clip.label
    return clips, labels, masks


def to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames (T, H, W, 3) or (N, T, H, W, 3) -> float32 (N, 3, T, H, W), (x - MEAN) / STD.

    The same arithmetic as the video loader with ``ClipSpec(mean=MEAN, std=STD)``.
    """
    x = torch.as_tensor(frames)
    if x.dim() == 4:
        x = x.unsqueeze(0)
    if x.dim() != 5 or x.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3) or (N, T, H, W, 3), got shape {tuple(x.shape)}")
    x = x.permute(0, 4, 1, 2, 3).contiguous().to(torch.float32)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1, 1)
    return (x - mean) / std


# --- the identity-propagation task (the demo models' task) ------------------------------------

TRACK_CLASSES: tuple[str, ...] = ("background", "dark", "dim", "light", "bright")
"""Per-cell classes of the identity-propagation task: 0 is background, 1.. the shade an object
showed in the first frames (its brightness: dark, dim, light, bright; see TrackConfig.shades)."""

HUES: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "magenta")
"""Object colours (their identity): one per object, kept for the whole clip."""

IDENTITY_CLASSES: tuple[str, ...] = ("background", *HUES)
"""What :attr:`TrackClip.identities` labels a pixel with: background or its object's colour."""

# Zero-mean chroma directions (the three channels sum to 0), one per hue of HUES, 60 degrees apart on
# the chroma hexagon: adding one to a grey level L tints it and leaves the mean of R, G, B at L.
CHROMA: np.ndarray = np.array([(2, -1, -1), (1, 1, -2), (-1, 2, -1), (-2, 1, 1), (-1, -1, 2), (1, -2, 1)],
                              dtype=np.int16)

TRACK_TASK_DESCRIPTION = (
    "Four objects of random shapes, each of a different colour (four of red, yellow, green, cyan, blue, "
    "magenta), move fast across a dark background, crossing and occluding each other. In the first four "
    "frames each object shows a different shade (dark, dim, light and bright, one each, in random order); "
    "from the fifth frame on every object has the same medium brightness, keeping its colour. Label every "
    "cell of the last six frames with the shade its object showed at the start (or background). The order "
    "of the shades is drawn independently of everything else, so no frame after the fourth says which "
    "shade an object had, and every clip shows each shade once, so nothing that is the same for the whole "
    "clip says it either; no convolution of the network reaches back from the last six frames to the "
    "first four: a cell can only be labelled by attending to the same object (the same colour) in the "
    "first frames."
)


@dataclass(frozen=True)
class TrackConfig:
    """The identity-propagation clip distribution. Lengths are fractions of ``size`` (pixels in
    the comments at the default 64)."""

    frames: int = 16  # T, as the tiny demo models take
    size: int = 64  # H = W
    num_objects: int = 4  # K <= len(palette): one colour each, distinct (the identity)
    palette: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # indices into HUES the objects' colours are drawn from
    colour_frames: int = 4  # frames 0..colour_frames-1 show the shades: the first two key time slices of res3
    label_from: int = 10  # first labelled frame: beyond the convolutions' temporal reach of frames 0-3
    radius: tuple[float, float] = (0.13, 0.17)  # object half-extent (8.3-10.9 px): 4-5 res3 cells across
    speed: tuple[float, float] = (0.025, 0.045)  # per frame (1.6-2.9 px): 24-43 px over the clip, bouncing
    shades: tuple[int, ...] = (65, 108, 150, 192)  # brightness (mean of R, G, B) of classes 1..: the label
    # the objects' shades are distinct (drawn without replacement): with K = 4 every clip shows each shade
    # once, and nothing shared by all queries of a clip tells one object's shade (False: drawn with repetition)
    distinct_shades: bool = True
    brightness: int = 128  # every object's brightness after the colour frames
    chroma: int = 30  # pixel = brightness + chroma * CHROMA[hue]: channels within +-60 of the brightness
    background: tuple[int, int] = (8, 20)  # background grey range (a smooth static texture), below every object
    noise: int = 3  # per-pixel flicker in [-noise, noise], new each frame (objects and background)

    def __post_init__(self) -> None:
        for name in ("radius", "speed", "shades", "background", "palette"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(set(self.palette)) != len(self.palette) or not set(self.palette) <= set(range(len(HUES))):
            raise ValueError(f"palette must be distinct indices into HUES (0..{len(HUES) - 1}), got {self.palette}")
        if not 2 <= self.num_objects <= len(self.palette):
            raise ValueError(f"num_objects must be in 2..{len(self.palette)} (the palette's size), got {self.num_objects}")
        if len(self.shades) != len(TRACK_CLASSES) - 1 or len(set(self.shades)) != len(self.shades):
            raise ValueError(f"shades must be {len(TRACK_CLASSES) - 1} distinct brightnesses, one per class")
        if self.distinct_shades and self.num_objects > len(self.shades):
            raise ValueError(f"distinct shades need num_objects <= {len(self.shades)}, got {self.num_objects}")
        if not 1 <= self.colour_frames < self.label_from < self.frames:
            raise ValueError("need 1 <= colour_frames < label_from < frames")
        if self.size < 16 or self.size % 4:
            raise ValueError(f"size must be a multiple of 4 and >= 16, got {self.size}")
        levels = (*self.shades, self.brightness)
        lo, hi = min(levels) - 2 * self.chroma - self.noise, max(levels) + 2 * self.chroma + self.noise
        if lo < 0 or hi > 255 or self.background[1] + self.noise >= min(levels) - self.noise:
            raise ValueError("brightness +- 2 chroma must stay in 0..255 and above the background")


@dataclass
class TrackClip:
    """One identity-propagation clip (T frames, K objects, H = W = size).

    - ``frames`` (T, H, W, 3) uint8 RGB; ``masks`` (T, H, W) int8 object id on top, -1 background.
    - ``classes`` (T, H, W) int8: the class (index into :data:`TRACK_CLASSES`) of every pixel, 0 background.
    - ``object_classes``: K shade classes (1..) of the object ids (may repeat); ``hues``: K indices
      into :data:`HUES`, distinct.
    - ``shapes``: K indices into :data:`SHAPES`; ``radii`` (K,); ``tracks`` (T, K, 2) centres (x, y);
      ``draw_order``: bottom first.
    """

    frames: np.ndarray
    masks: np.ndarray
    classes: np.ndarray
    object_classes: list[int]
    hues: list[int]
    shapes: list[int]
    radii: np.ndarray
    tracks: np.ndarray
    draw_order: list[int]

    @property
    def identities(self) -> np.ndarray:
        """(T, H, W) int8: the identity class (index into :data:`IDENTITY_CLASSES`) of every pixel:
        0 background, 1 + the HUES index of the object on top."""
        lut = np.zeros(len(self.hues) + 1, dtype=np.int8)
        lut[1:] = np.asarray(self.hues) + 1
        return lut[self.masks + 1]

    def ground_truth(self, config: TrackConfig) -> dict:
        """JSON-ready ground truth (masks are re-created by :func:`make_track_clip`)."""
        return {
            "classes": list(TRACK_CLASSES),
            "object_classes": list(self.object_classes),
            "object_class_names": [TRACK_CLASSES[c] for c in self.object_classes],
            "hues": [HUES[h] for h in self.hues],
            "shapes": [SHAPES[s] for s in self.shapes],
            "radii": np.round(self.radii, 3).tolist(),
            "draw_order": list(self.draw_order),
            "tracks": np.round(self.tracks, 3).tolist(),
            "colour_frames": config.colour_frames,
            "label_from": config.label_from,
            # per frame, per object: pixels on top (occlusion counted), so a query can be put on a visible object
            "visible_pixels": [[int((m == k).sum()) for k in range(len(self.hues))] for m in self.masks],
            "centroids": [[_centroid(m == k) for k in range(len(self.hues))] for m in self.masks],
        }


def _centroid(on: np.ndarray) -> list[float] | None:
    """(x, y) pixel of ``on`` nearest its centroid (so it lies on the object), or None if empty."""
    ys, xs = np.nonzero(on)
    if not len(ys):
        return None
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return [float(xs[i]), float(ys[i])]


def make_track_clip(seed: int, config: TrackConfig = TrackConfig(), *, shades: Sequence[int] | None = None) -> TrackClip:
    """One identity-propagation clip, a pure function of (seed, config) (``Generator(PCG64(seed))``).

    Shades (classes 1.., with repetition) are drawn independently of the colours (a random
    permutation of HUES) and of shapes, sizes, positions and motions, and they only set the
    brightness of the first ``colour_frames`` frames: from then on nothing in the pixels depends
    on an object's shade. ``shades`` (K classes 1..) replaces the drawn shades and changes nothing
    else: the same clip with other labels (what the tests use to check that claim).
    """
    cfg = config
    rng = np.random.Generator(np.random.PCG64(seed))
    n, T, K = cfg.size, cfg.frames, cfg.num_objects
    n_shades = len(TRACK_CLASSES) - 1
    if cfg.distinct_shades:
        object_classes = (rng.permutation(n_shades)[:K] + 1).tolist()
    else:
        object_classes = (rng.integers(n_shades, size=K) + 1).tolist()
    if shades is not None:
        if len(shades) != K or not all(1 <= c <= n_shades for c in shades):
            raise ValueError(f"shades must be {K} classes in 1..{n_shades}, got {shades}")
        object_classes = [int(c) for c in shades]
    hues = rng.permutation(np.asarray(cfg.palette))[:K].tolist()
    shapes = rng.integers(len(SHAPES), size=K).tolist()
    radii = rng.uniform(*cfg.radius, size=K) * n
    tracks = np.empty((T, K, 2), dtype=np.float64)
    starts: list[np.ndarray] = []
    for k in range(K):
        half = np.asarray(_half_extents(shapes[k], radii[k]))
        lo, hi = half, (n - 1) - half
        # a start apart from the objects placed so far (so every colour shows in the colour frames):
        # the candidate of 64 whose worst overlap with them is least, the first one without overlap
        best, best_gap = None, -np.inf
        for _ in range(64):
            cand = rng.uniform(lo, hi)
            gap = min((np.linalg.norm(cand - starts[j]) - 0.85 * (radii[k] + radii[j]) for j in range(k)),
                      default=np.inf)
            if gap > best_gap:
                best, best_gap = cand, gap
            if gap >= 0:
                break
        starts.append(best)
        angle = rng.uniform(0, 2 * math.pi)
        velocity = rng.uniform(*cfg.speed) * n * np.array([math.cos(angle), math.sin(angle)])
        tracks[:, k] = _bounce(best, velocity, lo, hi, T)
    draw_order = rng.permutation(K).tolist()

    coarse = rng.uniform(*cfg.background, size=(4, 4)).astype(np.float32)
    static = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)
    static = np.clip(np.round(static), *cfg.background).astype(np.int16)
    ids = np.zeros((T, n, n), dtype=np.uint8)  # object id + 1, 0 for background
    for k in draw_order:  # bottom first; one rasterization per frame gives the mask, the pixels follow from it
        template = _shape_polygon(shapes[k], 0.0, 0.0, radii[k])
        for t in range(T):
            layer = np.zeros((n, n), dtype=np.uint8)
            if template is None:
                c = _fixed(tracks[t, k])
                cv2.circle(layer, (int(c[0]), int(c[1])), int(_fixed(radii[k])), 1, -1, cv2.LINE_8, _SHIFT)
            else:
                cv2.fillPoly(layer, [_fixed(template + tracks[t, k])], 1, cv2.LINE_8, _SHIFT)
            ids[t][layer.astype(bool)] = k + 1
    masks = ids.view(np.int8) - np.int8(1)
    # per id + 1 (0: background): brightness in the colour frames (the shade) and after, and the tint
    level_first = np.zeros(K + 1, dtype=np.int16)
    level_first[1:] = np.asarray(cfg.shades, dtype=np.int16)[np.asarray(object_classes) - 1]
    level_later = np.zeros(K + 1, dtype=np.int16)
    level_later[1:] = cfg.brightness
    tint = np.zeros((K + 1, 3), dtype=np.int16)
    tint[1:] = cfg.chroma * CHROMA[hues]
    c = cfg.colour_frames
    level = np.concatenate([level_first[ids[:c]], level_later[ids[c:]]])  # (T, H, W)
    grey = np.where(ids > 0, level, static[None])
    if cfg.noise:
        grey = grey + rng.integers(-cfg.noise, cfg.noise + 1, size=grey.shape, dtype=np.int16)
    frames = np.clip(grey[..., None] + tint[ids], 0, 255).astype(np.uint8)
    lut = np.zeros(K + 1, dtype=np.int8)
    lut[1:] = object_classes
    return TrackClip(frames=frames, masks=masks, classes=lut[ids], object_classes=object_classes, hues=hues,
                     shapes=shapes, radii=radii.astype(np.float32), tracks=tracks.astype(np.float32),
                     draw_order=draw_order)


def make_track_dataset(
    n: int, seed: int = 0, config: TrackConfig = TrackConfig(), *, identities: bool = False
) -> tuple[np.ndarray, ...]:
    """``n`` clips ``make_track_clip(seed + i)``: (clips (n, T, H, W, 3) uint8, classes (n, T, H, W) int8,
    masks (n, T, H, W) int8), and with ``identities`` their identity classes (n, T, H, W) int8
    (:attr:`TrackClip.identities`)."""
    T, s = config.frames, config.size
    clips = np.empty((n, T, s, s, 3), dtype=np.uint8)
    classes = np.empty((n, T, s, s), dtype=np.int8)
    masks = np.empty((n, T, s, s), dtype=np.int8)
    ids = np.empty((n, T, s, s), dtype=np.int8) if identities else None
    for i in range(n):
        clip = make_track_clip(seed + i, config)
        clips[i], classes[i], masks[i] = clip.frames, clip.classes, clip.masks
        if ids is not None:
            ids[i] = clip.identities
    return (clips, classes, masks) if ids is None else (clips, classes, masks, ids)


def cell_labels(classes: np.ndarray | torch.Tensor, grid: tuple[int, int, int],
                num_classes: int = len(TRACK_CLASSES)) -> torch.Tensor:
    """Per-pixel classes (N, T, H, W) in 0..num_classes-1 -> the majority class of each cell of a
    (T', H', W') grid, (N, T', H', W') int64 (ties go to the lower class, background first)."""
    c = torch.as_tensor(np.asarray(classes), dtype=torch.long)
    n, t, h, w = c.shape
    gt, gh, gw = grid
    if t % gt or h % gh or w % gw:
        raise ValueError(f"grid {grid} does not divide the clip {(t, h, w)}")
    onehot = F.one_hot(c, num_classes).permute(0, 4, 1, 2, 3).float()  # (N, classes, T, H, W)
    counts = F.avg_pool3d(onehot, (t // gt, h // gh, w // gw))
    return counts.argmax(dim=1)


# --- sample videos ---------------------------------------------------------------------------


def sample_seeds(n: int, config: SyntheticConfig = SyntheticConfig()) -> list[int]:
    """The smallest seeds whose labels run through the classes in order (0, 1, 2, 3, 0, ...)."""
    seeds, seed = [], 0
    while len(seeds) < n:
        if make_clip(seed, config).label == len(seeds) % len(CLASSES):
            seeds.append(seed)
        seed += 1
    return seeds


# Samples are written with nlviz.video.write_mp4 (frames first, then the path, like every writer of
# nlviz) at crf 12: the native resolution is kept (no upscaling), so a model spec with
# short_side = crop_size = size loads them untouched up to H.264 loss: decoded pixels differ by
# about 5 grey levels on average, mostly from the 4:2:0 chroma subsampling, which blurs the colour
# along object edges by a pixel (a lower crf hardly helps); object interiors keep their colour.
# A 16-frame 64 px clip takes about 30 KB.
SAMPLES_CRF = 12


def write_samples(
    out_dir: str | Path, seeds: Sequence[int] | None = None, config: SyntheticConfig = SyntheticConfig()
) -> list[Path]:
    """Write ``synthetic_<seed>.mp4`` + ``synthetic_<seed>.json`` (ground truth) per seed into out_dir.

    ``seeds=None``: one clip per class (:func:`sample_seeds`). The JSON holds the seed and config,
    so ``make_clip(seed, SyntheticConfig(**config))`` re-creates the exact frames and masks.
    Returns the mp4 paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = sample_seeds(len(CLASSES), config) if seeds is None else list(seeds)
    paths = []
    for seed in seeds:
        clip = make_clip(seed, config)
        paths.append(_write_sample(out_dir / f"synthetic_{seed}.mp4", clip.frames, "nlviz.synthetic.make_clip",
                                   seed, config, TASK_DESCRIPTION, clip.ground_truth()))
    return paths


def _write_sample(path: Path, frames: np.ndarray, source: str, seed: int, config, task: str,
                  ground_truth: dict) -> Path:
    """One bundled sample: the clip as H.264 mp4 and its ground truth as JSON beside it."""
    from .video import write_mp4

    mp4 = write_mp4(frames, path, SAMPLES_FPS, crf=SAMPLES_CRF)
    meta = {
        "source": source,
        "seed": seed,
        "config": asdict(config),
        "task": task,
        "fps": SAMPLES_FPS,
        "frames": config.frames,
        "size": config.size,
        "coordinates": "pixels; pixel (row i, col j) has its centre at (x=j, y=i)",
        "mean": list(MEAN),
        "std": list(STD),
        **ground_truth,
    }
    mp4.with_suffix(".json").write_text(json.dumps(meta) + "\n")
    return mp4


TRACK_SAMPLE_PREFIX = "synthetic_tracks_"  # bundled identity-propagation samples: synthetic_tracks_<seed>.mp4 + .json


def track_sample_seeds(n: int, config: TrackConfig = TrackConfig(), min_pixels: int = 60) -> list[int]:
    """The smallest seeds whose every object shows at least ``min_pixels`` pixels (on top) in the
    first and the last frame: good clips to click on."""
    seeds, seed = [], 0
    while len(seeds) < n:
        clip = make_track_clip(seed, config)
        first = [(clip.masks[0] == k).sum() for k in range(config.num_objects)]
        last = [(clip.masks[-1] == k).sum() for k in range(config.num_objects)]
        if min(first) >= min_pixels and min(last) >= min_pixels:
            seeds.append(seed)
        seed += 1
    return seeds


def write_track_samples(out_dir: str | Path, seeds: Sequence[int] | None = None,
                        config: TrackConfig = TrackConfig()) -> list[Path]:
    """Write ``synthetic_tracks_<seed>.mp4`` + ``.json`` (ground truth) per seed into out_dir.

    The JSON holds the seed and config (``make_track_clip(seed, TrackConfig(**config))`` re-creates
    the frames and masks), the colours and grey levels of the objects, their tracks, and per frame
    each object's visible pixel count and a visible pixel near its centroid (for placing a query).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = track_sample_seeds(3, config) if seeds is None else list(seeds)
    paths = []
    for seed in seeds:
        clip = make_track_clip(seed, config)
        paths.append(_write_sample(out_dir / f"{TRACK_SAMPLE_PREFIX}{seed}.mp4", clip.frames,
                                   "nlviz.synthetic.make_track_clip", seed, config, TRACK_TASK_DESCRIPTION,
                                   clip.ground_truth(config)))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlviz.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for synthetic_<seed>.mp4/.json")
    parser.add_argument("--n", type=int, default=len(CLASSES), help="number of clips (one per class in turn)")
    parser.add_argument("--seeds", type=int, nargs="*", help="explicit clip seeds (instead of --n)")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds else sample_seeds(args.n)
    for path in write_samples(args.out, seeds):
        gt = json.loads(path.with_suffix(".json").read_text())
        print(f"{path} ({path.stat().st_size // 1024} KB): target = {gt['label_name']} {gt['shapes'][gt['target']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
