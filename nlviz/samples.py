"""The sample videos bundled in ``assets/samples/``: names, paths, credits.

A sample is any video or image file there; a JSON file with the same stem may hold its ground
truth (synthetic clips) and ``CREDITS.md`` the licences of real footage. The app lists them
by name (the file stem), so a shareable link can name a sample.
"""

from __future__ import annotations

import json
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif")


def bundled_samples(directory: Path = SAMPLES_DIR) -> dict[str, Path]:
    """{name: path} of the bundled sample videos, real footage first, then synthetic clips."""
    if not directory.is_dir():
        return {}
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    files.sort(key=_order)
    return {p.stem: p for p in files}


def _order(p: Path) -> tuple[int, bool]:
    """Real footage first, then the demo task's clips (synthetic_tracks_*, DEMO_SAMPLE first), then the
    older synthetic_* clips: the first synthetic sample is DEMO_SAMPLE."""
    group = 1 if p.stem.startswith(TRACK_PREFIX) else 2 if p.stem.startswith("synthetic") else 0
    return group, p.stem != DEMO_SAMPLE


TRACK_PREFIX = "synthetic_tracks_"  # nlviz.synthetic.TRACK_SAMPLE_PREFIX (not imported: this module stays light)
DEMO_SAMPLE = "synthetic_tracks_1"
"""The sample Explore opens on with the demo models: a clip of the demo models' task
(identity propagation, :func:`nlviz.synthetic.make_track_clip`)."""


def ground_truth(name: str, directory: Path = SAMPLES_DIR) -> dict | None:
    """The ground-truth JSON next to bundled sample ``name``, or None if it has none."""
    path = directory / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def default_query(sample_name: str, directory: Path = SAMPLES_DIR, *, min_pixels: int = 100
                  ) -> tuple[int, float, float] | None:
    """A good first query for a sample of the demo task: (frame, x, y) in displayed-frame pixels.

    The last frame (where every object has the same brightness), on an object that shows well both
    there and in the first frame (where its shade is visible): of the objects with at least
    ``min_pixels`` pixels on top in both, the one that moved farthest between them (the most telling
    click: its attention must follow it across the frame); else the best-visible one. The point is
    that object's visible pixel nearest its centroid, at the pixel's centre (+0.5: displayed
    coordinates run from 0 to W, pixel j covering [j, j + 1)). None for samples without that ground
    truth (real footage, the older synthetic_<seed> clips).
    """
    gt = ground_truth(sample_name, directory)
    if not gt or "visible_pixels" not in gt or "centroids" not in gt:
        return None
    visible, centroids = gt["visible_pixels"], gt["centroids"]
    last = len(visible) - 1
    shown = {k: min(visible[0][k], visible[last][k]) for k in range(len(visible[0]))}
    good = [k for k, v in shown.items() if v >= min_pixels and centroids[0][k] and centroids[last][k]]
    if good:
        def moved(k: int) -> float:
            (x0, y0), (x1, y1) = centroids[0][k], centroids[last][k]
            return (x1 - x0) ** 2 + (y1 - y0) ** 2

        best = max(good, key=moved)
    else:
        best = max(shown, key=lambda k: (shown[k], -k))
    point = centroids[last][best]
    if point is None or shown[best] == 0:
        return None
    x, y = point
    return last, float(x) + 0.5, float(y) + 0.5


def sample_path(name: str) -> Path:
    """Path of the bundled sample ``name``; KeyError listing the samples otherwise."""
    samples = bundled_samples()
    if name not in samples:
        raise KeyError(f"no bundled sample named {name!r}; samples: {', '.join(samples) or 'none'}")
    return samples[name]


def credits(directory: Path = SAMPLES_DIR) -> str:
    """The credits and licences of the bundled footage (CREDITS.md), or ''."""
    path = directory / "CREDITS.md"
    return path.read_text() if path.exists() else ""
