"""The in-process engine (the default): clips one after another in this process, no Ray needed."""

from __future__ import annotations

import time

from .store import to_table, write_part
from .work import clip_rows


class Buffer:
    """Rows waiting to be written: flushed as one part every ``every`` clips or ``seconds``, so a killed
    run loses at most that much and the output does not become thousands of tiny files."""

    def __init__(self, out, every: int = 8, seconds: float = 30.0) -> None:
        self.out, self.every, self.seconds = out, every, seconds
        self.rows: list[dict] = []
        self.clips = 0
        self.since = time.monotonic()

    def add(self, rows: list[dict], clips: int = 1) -> None:
        self.rows.extend(rows)
        self.clips += clips
        if self.clips >= self.every or time.monotonic() - self.since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            write_part(self.out, to_table(self.rows))
        self.rows, self.clips, self.since = [], 0, time.monotonic()


def run_local(clips, todo: dict[str, list[str]], models, config, out, device, progress, *,
              flush_every: int = 8) -> None:
    """Survey ``clips`` (ClipRefs) for the models ``todo`` names per clip; ``progress(rows)`` per clip."""
    from ..device import on_device

    placed = [type(sm)(sm.name, on_device(sm.model, device), sm.spec, sm.family, sm.blocks) for sm in models]
    buffer = Buffer(out, flush_every)
    try:
        for ref in clips:
            rows = clip_rows(placed, todo[ref.clip], ref.clip, ref.name, config, device)
            buffer.add(rows)
            progress(rows)
    finally:
        buffer.flush()  # also on Ctrl-C: what was computed is kept


__all__ = ["Buffer", "run_local"]
