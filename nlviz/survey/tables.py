"""Survey rows summarised for plots and tables (pandas; no Streamlit, no plotting).

    df = load_results(out)
    per_block(df)        # per model x block [x head]: depth, clips, mean / std / quartiles of each statistic
    offset_profiles(df)  # per model x block: mean mass by temporal offset, in frames
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import STAT_FIELDS

LABELS = {
    "dist_space_px": "mean attention distance, space (input px)",
    "dist_time_frames": "mean attention distance, time (frames)",
    "entropy_norm": "entropy / log(#keys)",
    "own_slice_share": "mass in the query's own time slice",
    "query_dependence": "query dependence (GCNet, cosine)",
}


def per_block(df: pd.DataFrame, *, heads: bool = False) -> pd.DataFrame:
    """One row per model x block (x head with ``heads``), in depth order: ``clips`` and, for each
    statistic, its mean, std, 25th and 75th percentile over clips (heads averaged unless ``heads``)."""
    if df.empty:
        return pd.DataFrame(columns=["model", "block", "depth", "probe", "clips"])
    keys = ["model", "block", "head"] if heads else ["model", "block"]
    df = df.copy()
    df["head"] = df["head"].fillna(-1)
    if not heads:  # one value per clip and block: the mean over heads
        df = df.groupby(["model", "block", "clip"], sort=False).agg(
            {**{f: "mean" for f in STAT_FIELDS}, "depth": "first", "probe": "first", "stage": "first"}).reset_index()
    g = df.groupby(keys, sort=False)
    out = g.agg(depth=("depth", "first"), probe=("probe", "first"), stage=("stage", "first"),
                clips=("clip", "nunique")).reset_index()
    for f in STAT_FIELDS:
        s = g[f]
        out[f] = s.mean().to_numpy()
        out[f + "_std"] = s.std(ddof=0).fillna(0).to_numpy()
        out[f + "_q25"] = s.quantile(0.25).to_numpy()
        out[f + "_q75"] = s.quantile(0.75).to_numpy()
    order = {m: i for i, m in enumerate(dict.fromkeys(df["model"]))}  # the survey's order of models
    out["_order"] = out["model"].map(order)
    out = out.sort_values(["_order", "depth", *(["head"] if heads else [])]).drop(columns="_order")
    return out.reset_index(drop=True)


def offset_profiles(df: pd.DataFrame) -> pd.DataFrame:
    """Long table: model, block, depth, offset (key slices), frames (offset in input frames), mass
    (mean over clips and heads of the mass at that offset)."""
    rows = []
    for (model, block), g in df.groupby(["model", "block"], sort=False):
        masses = np.array([list(m) for m in g["offset_mass"]], dtype=float)
        mean = np.nanmean(masses, axis=0)
        lo = int(g["offset_min"].iloc[0])
        fps = float(g["frames_per_slice"].iloc[0])
        for i, m in enumerate(mean):
            rows.append({"model": model, "block": block, "depth": int(g["depth"].iloc[0]), "offset": lo + i,
                         "frames": (lo + i) * fps, "mass": float(m)})
    return pd.DataFrame(rows, columns=["model", "block", "depth", "offset", "frames", "mass"])


__all__ = ["LABELS", "offset_profiles", "per_block"]
