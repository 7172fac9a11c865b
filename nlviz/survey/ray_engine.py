"""The Ray engine: a streaming Ray Data pipeline, on a local Ray or a cluster.

    from_items(clip x spec group)  ->  map(decode)               CPU tasks, one clip each
                                   ->  map_batches(ModelStage)   actor pool, each actor loads the models once
                                                                 (num_gpus=1 per actor with device cuda)
                                   ->  iter_batches on the driver: only the statistics rows travel back,
                                       written by the driver as Parquet parts (the same writer as the local
                                       engine: atomic parts, resumable; no shared filesystem needed)

Nothing is materialized: decoded clips live in the object store only between the two stages.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa

from .local import Buffer
from .store import to_table
from .work import SurveyConfig, error_row, model_rows, spec_key


def _decode_row(row: dict, specs: dict, config: dict) -> dict:
    """Ray Data map: one (clip, spec group) -> its model input as bytes, or the decode error."""
    from ..video import VideoError
    from .work import decode

    cfg = SurveyConfig(**{**config, "models": tuple(config["models"])})
    out = {"clip": row["clip"], "name": row["name"], "models": row["models"], "x": None, "shape": None, "error": None}
    try:
        x = decode(row["clip"], specs[row["group"]], cfg)
        out["x"], out["shape"] = x.tobytes(), list(x.shape)
    except (VideoError, OSError, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    return out


class ModelStage:
    """Ray Data actor: loads every surveyed model once, then turns decoded clips into statistics rows."""

    def __init__(self, names: list[str], config: dict, device: str, threads: int | None) -> None:
        import torch

        from ..device import choose, on_device
        from .models import load

        if threads:
            torch.set_num_threads(int(threads))
        self.device = choose(device)
        self.config = SurveyConfig(**{**config, "models": tuple(config["models"])})
        self.models = {}
        for n in names:
            sm = load(n)
            self.models[n] = type(sm)(sm.name, on_device(sm.model, self.device), sm.spec, sm.family, sm.blocks)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for r in batch.to_pylist():
            for name in json.loads(r["models"]):
                if r["error"] is not None:
                    rows.append(error_row(r["clip"], r["name"], name, r["error"]))
                    continue
                x = np.frombuffer(r["x"], dtype=np.float32).reshape(r["shape"])
                try:
                    rows.extend(model_rows(self.models[name], x, r["clip"], r["name"], self.config, self.device))
                except (RuntimeError, ValueError) as e:
                    rows.append(error_row(r["clip"], r["name"], name, e))
        return to_table(rows)


def decode_memory(specs: dict, config: SurveyConfig) -> int:
    """Bytes a decode task reserves: the sampled frames, resized, and the float input, with room to
    spare. Stating it also keeps Ray Data from fusing the decode tasks into the model actors (it fuses
    stages of equal resources), so decoding overlaps the forward passes instead of preceding them."""
    biggest = max((config.num_frames or s.num_frames) * max(s.short_side, s.crop_size) ** 2 * 3
                  for s in specs.values())
    return 512 * 2**20 + 8 * biggest  # a worker with torch imported holds ~400 MiB
def ray_init(address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at ``address`` or start a local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    return True


def run_ray(clips, todo: dict[str, list[str]], models, config: SurveyConfig, out, device, progress, *,
            address: str | None = None, workers: int | None = None, num_cpus: int | None = None,
            threads: int | None = None, flush_every: int = 8) -> None:
    """Survey ``clips`` on Ray (see the module docstring); ``progress(rows)`` once per finished clip."""
    import ray

    started = ray_init(address, num_cpus)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours counts clips
        cuda = str(device).startswith("cuda")
        resources = ray.cluster_resources()
        if workers is None:
            workers = max(1, int(resources.get("GPU", 0))) if cuda else max(1, int(resources.get("CPU", 1)) // 2)
        if threads is None and not address:  # a local Ray: share this machine's cores between the actors
            threads = max(1, int(resources.get("CPU", 1)) // workers)
        groups, specs = {}, {}
        for sm in models:
            key = spec_key(sm.spec, config)
            g = groups.setdefault(key, len(groups))
            specs[g] = sm.spec
        model_group = {sm.name: groups[spec_key(sm.spec, config)] for sm in models}
        items, remaining = [], {}
        for ref in clips:
            by_group: dict[int, list[str]] = {}
            for name in todo[ref.clip]:
                by_group.setdefault(model_group[name], []).append(name)
            remaining[ref.clip] = len(by_group)
            for g, names in sorted(by_group.items()):
                items.append({"clip": ref.clip, "name": ref.name, "group": g, "models": json.dumps(names)})
        if not items:
            return
        cfg = config.as_dict()
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map(_decode_row, fn_kwargs={"specs": specs, "config": cfg}, num_cpus=1,
                    memory=decode_memory(specs, config))
        ds = ds.map_batches(ModelStage, fn_constructor_args=([sm.name for sm in models], cfg, str(device), threads),
                            batch_size=1, batch_format="pyarrow", num_cpus=1, num_gpus=1 if cuda else 0,
                            compute=ray.data.ActorPoolStrategy(size=workers))
        buffer = Buffer(out, flush_every)
        pending: dict[str, list[dict]] = {}
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = batch.to_pylist()
                buffer.add(rows, clips=0)
                for clip in dict.fromkeys(r["clip"] for r in rows):
                    pending.setdefault(clip, []).extend(r for r in rows if r["clip"] == clip)
                    remaining[clip] -= 1
                    if remaining[clip] == 0:
                        buffer.clips += 1
                        progress(pending.pop(clip))
                if buffer.clips >= buffer.every:
                    buffer.flush()
        finally:
            buffer.flush()
    finally:
        if started:
            ray.shutdown()


__all__ = ["ModelStage", "ray_init", "run_ray"]
