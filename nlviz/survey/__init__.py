"""Survey: attention statistics of every block over a whole dataset, in-process or on Ray.

    from nlviz.survey import SurveyConfig, run_survey, load_results
    cfg = SurveyConfig(models=("demo.embedded_gaussian", "demo.dot_product"), queries=64, seed=0)
    result = run_survey(["clips/"], cfg, "out/")                 # engine="local" (default) or "ray"
    df = load_results("out/")                                    # pandas: one row per clip x model x block [x head]

Per clip, model and block (and head, for blocks with heads) a row holds the mean attention distance
in space (model-input pixels) and time (frames), entropy / log(#keys), the mass by temporal offset
and the own-time-slice share, and GCNet's query dependence, over ``queries`` cells sampled on the
model's crop (seeded by ``seed`` and the clip's file name: the same cells on either engine); probes
are marked ``probe`` (see :mod:`nlviz.survey.stats`). Output layout and resumption:
:mod:`nlviz.survey.store`. Engines: :mod:`nlviz.survey.local`, :mod:`nlviz.survey.ray_engine`
(``pip install nlviz[ray]``). They compute the same numbers.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .inputs import ClipRef, InputError, clip_seed, list_clips
from .models import ModelLoadError, SurveyModel, load
from .stats import STAT_FIELDS, block_statistics, row_statistics
from .store import SCHEMA, done_units, part_files, read_rows, read_summary, write_summary
from .work import SurveyConfig


class SurveyError(ValueError):
    """A survey that cannot run: no clips, an unloadable model, Ray missing, another survey's output."""


@dataclass
class Progress:
    """Where a run stands: clips done of total, their rate and the time left (for bars and pages)."""

    done: int
    total: int
    errors: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def left(self) -> float:
        return (self.total - self.done) / self.rate if self.rate > 0 else math.inf

    def line(self, width: int = 24) -> str:
        filled = round(width * self.done / self.total) if self.total else width
        left = "?" if math.isinf(self.left) else _clock(self.left)
        err = f", {self.errors} failed" if self.errors else ""
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} clips{err}  "
                f"{self.rate:.2f} clips/s  {left} left")


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


_LAST_LINE = [0.0]


def _bar(p: Progress) -> None:
    """The progress line on stderr: redrawn in place on a terminal, else a line every 10 s (logs)."""
    last = p.done == p.total
    if sys.stderr.isatty():
        print("\r" + p.line(), end="\n" if last else "", file=sys.stderr, flush=True)
    elif last or p.done == 1 or time.monotonic() - _LAST_LINE[0] >= 10:
        _LAST_LINE[0] = time.monotonic()
        print(p.line(), file=sys.stderr, flush=True)


@dataclass
class SurveyResult:
    out: Path
    engine: str
    clips: int  # clips in the inputs
    surveyed: int  # clips run now
    skipped: int  # clips already in the output
    errors: int  # clips run now that got an error row
    seconds: float

    @property
    def clips_per_s(self) -> float:
        return self.surveyed / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (f"{self.out}: {self.surveyed} clip(s) surveyed ({self.engine}, {self.seconds:.1f} s, "
                f"{self.clips_per_s:.2f} clips/s), {self.skipped} already there, {self.errors} with errors; "
                f"rows in {self.out / 'rows'}, summary in {self.out / 'summary.json'}")


_SAME = ("queries", "seed", "num_frames", "stride")


def versions(engine: str) -> dict:
    import numpy
    import pyarrow
    import torch

    v = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
         "pyarrow": pyarrow.__version__}
    from .. import __version__

    v["nlviz"] = __version__
    if engine == "ray":
        import ray

        v["ray"] = ray.__version__
    return v


def aggregate(out) -> list[dict]:
    """Per (model, block, head): clips and the mean and standard deviation over clips of each
    statistic, read one part at a time (memory independent of the number of clips)."""
    import pyarrow.parquet as pq

    acc: dict[tuple, dict] = {}
    for p in part_files(out):
        t = pq.read_table(p, columns=["model", "block", "depth", "head", "probe", "error", *STAT_FIELDS]).to_pydict()
        for i in range(len(t["model"])):
            if t["error"][i] is not None:
                continue
            key = (t["model"][i], t["block"][i], t["head"][i])
            a = acc.setdefault(key, {"depth": t["depth"][i], "probe": t["probe"][i], "n": 0,
                                     **{f: [0.0, 0.0, 0] for f in STAT_FIELDS}})
            a["n"] += 1
            for f in STAT_FIELDS:
                v = t[f][i]
                if v is not None and not math.isnan(v):
                    a[f][0] += v
                    a[f][1] += v * v
                    a[f][2] += 1
    rows = []
    for (model, block, head), a in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[1]["depth"], kv[0][2] or 0)):
        r = {"model": model, "block": block, "head": head, "depth": a["depth"], "probe": a["probe"], "clips": a["n"]}
        for f in STAT_FIELDS:
            s, ss, n = a[f]
            mean = s / n if n else None
            r[f] = mean
            r[f + "_std"] = math.sqrt(max(ss / n - mean * mean, 0.0)) if n else None
        rows.append(r)
    return rows


def run_survey(inputs, config: SurveyConfig, out, *, engine: str = "local", device: str | None = None,
               ray_address: str | None = None, workers: int | None = None, num_cpus: int | None = None,
               threads: int | None = None, limit: int | None = None, retry_errors: bool = False,
               progress: str | Callable[[Progress], None] | None = None, flush_every: int = 8) -> SurveyResult:
    """Survey the clips of ``inputs`` with ``config``'s models into ``out`` (see the module docstring).

    ``progress``: "bar" (a line on stderr), a callback given a :class:`Progress` after every clip, or
    None. Clips already in ``out`` are skipped; an ``out`` written with other settings (queries, seed,
    frames, stride) is refused. Raises :class:`SurveyError` for what cannot run.
    """
    from ..device import choose

    if engine not in ("local", "ray"):
        raise SurveyError(f"unknown engine {engine!r}; expected local or ray")
    if not config.models:
        raise SurveyError("no models to survey")
    out = Path(out)
    try:
        clips = list_clips(inputs, limit=limit)
    except InputError as e:
        raise SurveyError(str(e)) from None
    prior = read_summary(out)
    if prior is not None:
        differ = [k for k in _SAME if prior.get("config", {}).get(k) != config.as_dict()[k]]
        if differ:
            said = "; ".join(f"{k}: {prior['config'].get(k)} there, {config.as_dict()[k]} asked" for k in differ)
            raise SurveyError(f"{out} holds a survey with other settings ({said}); use another output folder")
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SurveyError("the ray engine needs Ray: pip install 'nlviz[ray]'") from None
    dev = choose(device)
    try:
        models = [load(n) for n in dict.fromkeys(config.models)]
    except ModelLoadError as e:
        raise SurveyError(str(e)) from None
    done = done_units(out, retry_errors=retry_errors)
    todo = {c.clip: [m.name for m in models if (c.clip, m.name) not in done] for c in clips}
    run = [c for c in clips if todo[c.clip]]
    summary = {
        "status": "running", "engine": engine, "device": str(dev), "config": config.as_dict(),
        "sampling": {"crop": "center", "num_frames": config.num_frames, "stride": config.stride,
                     "queries_per_block": config.queries, "query_seed": "clip_seed(seed, clip file name)"},
        "models": [{"name": m.name, "family": m.family, "spec": _spec_dict(m.spec)} for m in models],
        "versions": versions(engine), "clips": len(clips), "output": str(out / "rows"),
    }
    write_summary(out, summary)
    state = {"done": 0, "errors": 0}
    start = time.perf_counter()
    sink = _bar if progress == "bar" else progress

    def on_clip(rows: list[dict]) -> None:
        state["done"] += 1
        state["errors"] += any(r.get("error") for r in rows)
        if sink:
            sink(Progress(state["done"], len(run), state["errors"], time.perf_counter() - start))

    if engine == "local":
        from .local import run_local

        if models and run:
            run_local(run, todo, models, config, out, dev, on_clip, flush_every=flush_every)
    else:
        from .ray_engine import run_ray

        if run:
            run_ray(run, todo, models, config, out, dev, on_clip, address=ray_address, workers=workers,
                    num_cpus=num_cpus, threads=threads, flush_every=flush_every)
    seconds = time.perf_counter() - start
    del models
    summary.update(status="complete", seconds=seconds, surveyed=state["done"], errors=state["errors"],
                   skipped=len(clips) - len(run), blocks=aggregate(out))
    write_summary(out, summary)
    return SurveyResult(out, engine, len(clips), state["done"], len(clips) - len(run), state["errors"], seconds)


def _spec_dict(spec) -> dict:
    from dataclasses import asdict

    d = asdict(spec)
    d.pop("extra", None)
    return d


def load_results(out, *, errors: bool = False):
    """The rows of a survey as a pandas DataFrame (one row per clip x model x block [x head]); error
    rows only with ``errors`` (and never for a clip x model that also has results, after a retry)."""
    df = read_rows(out).to_pandas()
    bad = df["error"].notna()
    if errors:
        ok = set(zip(df.loc[~bad, "clip"], df.loc[~bad, "model"]))
        import numpy as np

        superseded = np.array([(c, m) in ok for c, m in zip(df["clip"], df["model"])], dtype=bool)
        return df[~bad.to_numpy() | ~superseded].reset_index(drop=True)
    return df[~bad].reset_index(drop=True)


__all__ = ["SCHEMA", "ClipRef", "Progress", "SurveyConfig", "SurveyError", "SurveyModel", "SurveyResult",
           "aggregate", "block_statistics", "clip_seed", "list_clips", "load", "load_results", "read_rows",
           "read_summary", "row_statistics", "run_survey"]
