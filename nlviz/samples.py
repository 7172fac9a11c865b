"""The sample videos bundled in ``assets/samples/``: names, paths, credits.

A sample is any video or image file there; a JSON file with the same stem may hold its ground
truth (synthetic clips) and ``CREDITS.md`` the licences of real footage. The app lists them
by name (the file stem), so a shareable link can name a sample.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif")


def bundled_samples(directory: Path = SAMPLES_DIR) -> dict[str, Path]:
    """{name: path} of the bundled sample videos, real footage first, then synthetic clips."""
    if not directory.is_dir():
        return {}
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    files.sort(key=lambda p: p.stem.startswith("synthetic"))
    return {p.stem: p for p in files}


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
