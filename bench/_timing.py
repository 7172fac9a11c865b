"""Shared pieces of the benchmarks: a median timer and forward passes with and without capture.

The scripts run as ``python bench/NAME.py``, so this folder is on ``sys.path`` and they import
this module as ``_timing``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from nlviz import Capture, capture_attention


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward(model: torch.nn.Module, clip: torch.Tensor) -> Callable[[], None]:
    """A no-grad forward pass of ``model`` on ``clip``, as a callable to time."""

    def run() -> None:
        with torch.no_grad():
            model(clip)

    return run


def captured_forward(model: torch.nn.Module, clip: torch.Tensor) -> tuple[Callable[[], None], list[Capture]]:
    """A no-grad forward pass with attention capture, and a list that holds its latest capture."""
    caps: list[Capture] = []

    def run() -> None:
        with torch.no_grad(), capture_attention(model) as cap:
            model(clip)
        caps[:] = [cap]

    return run, caps
