"""The survey's unit of work, the same for every engine: decode a clip, run each model, keep statistics.

:func:`decode` (a CPU step: the Ray engine runs it as tasks) turns a clip into the model input of one
spec group; :func:`model_rows` runs one model on it with capture and returns only the statistics
rows; the captured factors are dropped at once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .inputs import clip_seed
from .stats import block_geometry, block_statistics, sampled_cells


@dataclass(frozen=True)
class SurveyConfig:
    """What a survey computes (the engine and the device do not change the numbers)."""

    models: tuple[str, ...]
    queries: int | None = 64  # query cells sampled per clip and block; None: every query
    seed: int = 0
    num_frames: int | None = None  # None: each model's own clip length
    stride: int | None = None

    def sampling(self):
        from ..explore import Sampling

        return Sampling(num_frames=self.num_frames, stride=self.stride)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["models"] = list(self.models)
        return d


def spec_key(spec, config: SurveyConfig) -> tuple:
    """Models whose clips decode alike share one decode: the spec fields that shape the input."""
    return (spec.num_frames if config.num_frames is None else config.num_frames,
            spec.stride if config.stride is None else config.stride,
            spec.short_side, spec.crop_size, tuple(spec.mean), tuple(spec.std), spec.channel_order)


def decode(path: str, spec, config: SurveyConfig) -> np.ndarray:
    """(1, 3, T, H, W) float32 model input of the clip at ``path``; a VideoError when it cannot be read."""
    from ..video import load_clip

    clip = load_clip(path, spec=spec, **config.sampling().kwargs())
    return clip.input.numpy()


def error_row(clip: str, name: str, model: str, error: BaseException | str, seconds: float = 0.0) -> dict:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {"clip": clip, "clip_name": name, "model": model, "error": text or "error", "seconds": seconds}


@torch.no_grad()
def model_rows(sm, x: np.ndarray | torch.Tensor, clip: str, name: str, config: SurveyConfig,
               device: torch.device | str = "cpu") -> list[dict]:
    """Rows of one model (a :class:`~nlviz.survey.models.SurveyModel` on ``device``) on one decoded clip."""
    from ..capture import record

    t0 = time.perf_counter()
    x = torch.as_tensor(x).to(device)
    _, cap = record(sm.model, x)
    seed = clip_seed(config.seed, name)
    rows = []
    for depth, b in enumerate(cap):
        facts = sm.block_facts(b.name)
        cells = sampled_cells(b, config.queries, seed)
        for s in block_statistics(b, cells, block_geometry(b)):
            rows.append({
                "clip": clip, "clip_name": name, "model": sm.name, "block": b.name, "depth": facts.get("depth", depth),
                "stage": facts.get("stage"), "kind": facts.get("kind"), "probe": bool(facts.get("probe")),
                "pairwise": b.pairwise, "dims": b.dims, "signed": b.signed,
                "query_shape": list(b.query_shape), "key_shape": list(b.key_shape),
                "input_shape": list(b.input_shape), "seed": seed, **s,
            })
    del cap
    seconds = time.perf_counter() - t0
    for r in rows:
        r["seconds"] = seconds
    return rows


def clip_rows(models: list, todo: list[str], path: str, name: str, config: SurveyConfig,
              device: torch.device | str = "cpu") -> list[dict]:
    """Every row of one clip for the models named in ``todo`` (decoded once per spec group); a clip
    that cannot be decoded, or a model that fails on it, gets an error row instead."""
    from ..video import VideoError

    rows, decoded = [], {}
    for sm in models:
        if sm.name not in todo:
            continue
        key = spec_key(sm.spec, config)
        t0 = time.perf_counter()
        if key not in decoded:
            try:
                decoded[key] = decode(path, sm.spec, config)
            except (VideoError, OSError, ValueError) as e:
                decoded[key] = e
        x = decoded[key]
        if isinstance(x, BaseException):
            rows.append(error_row(path, name, sm.name, x, time.perf_counter() - t0))
            continue
        try:
            rows.extend(model_rows(sm, x, path, name, config, device))
        except (RuntimeError, ValueError) as e:  # a clip too short for the network, and the like
            rows.append(error_row(path, name, sm.name, e, time.perf_counter() - t0))
    return rows


__all__ = ["SurveyConfig", "clip_rows", "decode", "error_row", "model_rows", "spec_key"]
