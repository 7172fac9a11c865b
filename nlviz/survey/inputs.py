"""What to survey: clips from paths, directories and list files; each clip's seed."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from ..samples import VIDEO_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst", ".list", ".csv")


class InputError(ValueError):
    """An input that names no clip (missing path, empty directory)."""


@dataclass(frozen=True)
class ClipRef:
    """One clip of the survey: ``clip`` its absolute path (the key of its rows), ``name`` the file name."""

    clip: str
    name: str


def list_clips(inputs, *, limit: int | None = None) -> list[ClipRef]:
    """Clips of ``inputs`` (paths, directories searched recursively for videos, list files with one
    path per line, relative to the list's folder, '#' comments), in order, each once."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    out, seen = [], set()

    def add(p: Path) -> None:
        key = str(p.expanduser().resolve())
        if key not in seen:
            seen.add(key)
            out.append(ClipRef(key, p.name))

    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise InputError(f"{p}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this directory")
            for f in found:
                add(f)
        elif p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            for line in p.read_text().splitlines():
                line = line.split("#", 1)[0].strip().split(",")[0].strip()
                if line:
                    q = Path(line).expanduser()
                    add(q if q.is_absolute() else p.parent / q)
        else:
            add(p)  # a missing or broken file still gets its row, with the error
    if limit is not None:
        out = out[:limit]
    if not out:
        raise InputError("no clips to survey")
    return out


def clip_seed(seed: int, name: str) -> int:
    """The seed of one clip's query sample: from the run's seed and the clip's file name, so a clip
    gets the same queries in every run, on either engine, wherever the dataset lives."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


__all__ = ["ClipRef", "InputError", "clip_seed", "list_clips"]
