"""The survey's output directory: Parquet parts of rows, and a JSON summary.

    OUT/rows/part-<time>-<n>.parquet   one row per clip x model x block [x head]; error rows per clip x model
    OUT/summary.json                   config, models, versions, seeds, counts, per-block means

Each part is written to a temporary name and renamed into place (atomic on one filesystem), so a
run killed at any moment leaves only whole parts; a clip x model is written in a single part, so
the units in the parts are exactly the finished ones (:func:`done_units`), and a resumed run skips
them. Read everything back with :func:`read_rows` (a pyarrow Table) or pandas'
``pd.read_parquet(OUT / "rows")``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROWS_DIR = "rows"
SUMMARY = "summary.json"

_INTS = pa.list_(pa.int32())
SCHEMA = pa.schema([
    ("clip", pa.string()),  # absolute path: the key of the clip's rows
    ("clip_name", pa.string()),
    ("model", pa.string()),
    ("block", pa.string()),
    ("depth", pa.int32()),  # position among the model's attention blocks, forward order
    ("stage", pa.string()),
    ("kind", pa.string()),  # nonlocal, probe, self_attention, ...
    ("probe", pa.bool_()),  # a parameter-free probe, not attention the network learnt
    ("pairwise", pa.string()),
    ("dims", pa.string()),
    ("signed", pa.bool_()),
    ("head", pa.int32()),  # null for blocks without heads
    ("heads", pa.int32()),
    ("query_shape", _INTS),
    ("key_shape", _INTS),
    ("input_shape", _INTS),
    ("seed", pa.int64()),  # the clip's query-sample seed
    ("queries", pa.int32()),  # rows averaged (sampled rows with mass)
    ("empty_rows", pa.int32()),
    ("n_keys", pa.int32()),
    ("dist_space_px", pa.float64()),
    ("dist_time_frames", pa.float64()),
    ("entropy_norm", pa.float64()),
    ("own_slice_share", pa.float64()),
    ("query_dependence", pa.float64()),
    ("offset_mass", pa.list_(pa.float64())),  # mass by temporal offset offset_min .. -offset_min (key slices)
    ("offset_min", pa.int32()),
    ("frames_per_slice", pa.float64()),
    ("seconds", pa.float64()),  # decode + forward + statistics of this clip for this model (not compared)
    ("error", pa.string()),  # null, or why the clip could not be surveyed (the other fields then null)
])
COLUMNS = SCHEMA.names


def to_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts; missing fields null) -> a Table of :data:`SCHEMA`."""
    return pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=SCHEMA)


def rows_dir(out: str | Path) -> Path:
    return Path(out) / ROWS_DIR


_COUNTER = [0]


def write_part(out: str | Path, table: pa.Table) -> Path | None:
    """Write ``table`` as a new part of ``out``: to a temporary file, then renamed into place."""
    if table.num_rows == 0:
        return None
    d = rows_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    _COUNTER[0] += 1
    name = f"part-{time.time_ns()}-{os.getpid()}-{_COUNTER[0]}.parquet"
    tmp = d / f".{name}.tmp"
    pq.write_table(table.cast(SCHEMA), tmp)
    os.replace(tmp, d / name)
    return d / name


def part_files(out: str | Path) -> list[Path]:
    d = rows_dir(out)
    return sorted(d.glob("part-*.parquet")) if d.is_dir() else []


def read_rows(out: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Every row written to ``out`` so far (empty Table of the schema when none)."""
    tables = [pq.read_table(p, columns=columns) for p in part_files(out)]
    if not tables:
        schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)


def done_units(out: str | Path, *, retry_errors: bool = False) -> set[tuple[str, str]]:
    """(clip, model) pairs already in ``out``; with ``retry_errors`` those with an error are not."""
    t = read_rows(out, ["clip", "model", "error"]).to_pydict()
    return {(c, m) for c, m, e in zip(t["clip"], t["model"], t["error"]) if not (retry_errors and e is not None)}


def write_summary(out: str | Path, summary: dict) -> Path:
    path = Path(out) / SUMMARY
    Path(out).mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_summary(out: str | Path) -> dict | None:
    path = Path(out) / SUMMARY
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


__all__ = ["COLUMNS", "SCHEMA", "done_units", "part_files", "read_rows", "read_summary", "rows_dir", "to_table",
           "write_part", "write_summary"]
