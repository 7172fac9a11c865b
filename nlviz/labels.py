"""Class names of the label sets the models use (``ClipSpec.labels``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

LABELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "labels"


@lru_cache(maxsize=8)
def _read(name: str) -> tuple[str, ...] | None:
    if name == "synthetic":
        from .synthetic import CLASSES

        return tuple(CLASSES)
    path = LABELS_DIR / f"{name}.txt"
    if not path.exists():
        return None
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def label_names(name: str | None) -> list[str] | None:
    """Class names in class-index order for label set ``name`` (e.g. "kinetics400"); None if unknown."""
    if not name:
        return None
    names = _read(name)
    return list(names) if names is not None else None
