"""The Survey page's pieces: choosing or running a survey, and its plotly figures.

The numbers come from :mod:`nlviz.survey` (rows) and :mod:`nlviz.survey.tables` (summaries); this
module only reads widgets, shows progress and draws.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from .. import samples, zoo
from ..survey import SurveyConfig, SurveyError, load_results, read_summary, run_survey
from ..survey.store import part_files
from ..survey.tables import LABELS, offset_profiles, per_block

BUNDLED, FOLDER = "Run on the bundled samples", "Open a survey folder"
CHART_HEIGHT = 262
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def demo_models() -> list[str]:
    """The bundled demo models that have non-local blocks (the pairwise functions side by side)."""
    return [n for n in zoo.names("demo") if getattr(zoo.get(n), "pairwise", None)]


def bundled_clips(models: list[str]) -> list[Path]:
    """The bundled samples to survey: the synthetic clips for the demo models (trained on them; real
    footage means nothing to them), every sample otherwise."""
    found = samples.bundled_samples()
    if all(m.startswith("demo.") for m in models):
        return [p for n, p in found.items() if n.startswith("synthetic")] or list(found.values())
    return list(found.values())


def bundled_dir(models: list[str], queries: int, seed: int) -> Path:
    """Where a survey of the bundled samples with these settings lives (resumed, so a rerun is free)."""
    clips = sorted(p.name for p in bundled_clips(models))
    key = hashlib.sha256(repr((sorted(models), queries, seed, clips)).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "nlviz-survey" / key


def source() -> tuple[Path | None, bool]:
    """Sidebar: which survey to show. Returns (output folder or None, whether it must be run first)."""
    side = st.sidebar
    mode = side.radio("Survey", (BUNDLED, FOLDER), key="survey_mode",
                      help="A small survey of the bundled sample clips, run here with progress; or the output "
                           "folder of `nlviz survey ... --out DIR` (local or Ray).")
    if mode == FOLDER:
        text = side.text_input("Survey folder", key="survey_folder", placeholder="path/to/out",
                               help="The --out folder of `nlviz survey`: rows/*.parquet and summary.json")
        if not text:
            return None, False
        return Path(text).expanduser(), False
    options = [n for n in demo_models()] or zoo.names("demo")
    models = side.multiselect("Models", options, default=options, key="survey_models",
                              help="Several models in one chart compare their pairwise functions.")
    queries = side.number_input("Queries per clip and block", 2, 1024, 32, step=16, key="survey_queries")
    seed = side.number_input("Seed", 0, 2**31 - 1, 0, key="survey_seed")
    if not models:
        return None, False
    return bundled_dir(models, int(queries), int(seed)), True


def run_bundled(out: Path) -> bool:
    """Run (or finish) the bundled-samples survey into ``out`` with a progress bar; False on error."""
    ss = st.session_state
    models, queries, seed = ss["survey_models"], int(ss["survey_queries"]), int(ss["survey_seed"])
    clips = bundled_clips(models)
    summary = read_summary(out)
    if summary is not None and summary.get("status") == "complete" and summary.get("clips") == len(clips):
        return True
    bar = st.progress(0.0, text=f"Surveying {len(clips)} bundled clips with {len(models)} model(s)")

    def progress(p):
        bar.progress(p.done / max(p.total, 1), text=f"Surveying the bundled clips: {p.line(12)}")

    try:
        run_survey(clips, SurveyConfig(tuple(models), queries=queries, seed=seed), out, progress=progress)
    except SurveyError as e:
        bar.empty()
        st.error(f"The survey cannot run: {e}")
        return False
    bar.empty()
    return True


@st.cache_data(max_entries=8, show_spinner=False)
def _load(out: str, stamp: tuple):
    df = load_results(out)
    errors = load_results(out, errors=True)
    return df, int(errors["error"].notna().sum()), read_summary(out)


def results(out: Path):
    """(rows DataFrame, error rows, summary) of the survey in ``out``, or None with a message."""
    parts = part_files(out)
    if not parts:
        st.warning(f"No survey rows in {out}: expected {out / 'rows'}/part-*.parquet from `nlviz survey --out`.")
        return None
    stamp = tuple((p.name, p.stat().st_size) for p in parts)
    return _load(str(out), stamp)


def caption(df, errors: int, summary: dict | None) -> None:
    cfg = (summary or {}).get("config", {})
    models = list(dict.fromkeys(df["model"]))
    st.caption(f"**{df['clip'].nunique()} clips** × **{len(models)} models** ({', '.join(models)}) · "
               f"{cfg.get('queries', '?')} query cells per clip and block, seed {cfg.get('seed', '?')} · "
               f"bars: spread over clips (25th–75th percentile)"
               + (f" · {errors} clip × model rows failed (see the table)" if errors else "")
               + (" · probes: ◆, dotted" if df["probe"].any() else ""))


def _colour(models: list[str]) -> dict[str, str]:
    return {m: COLOURS[i % len(COLOURS)] for i, m in enumerate(models)}


def _layout(fig: go.Figure, title: str, y: str, *, legend: bool = False) -> go.Figure:
    """Compact charts without x-axis titles (the titles say what x is); models are told apart by
    colour, named once in :func:`legend_strip` above the charts."""
    fig.update_layout(title=dict(text=title, font=dict(size=14), x=0, xanchor="left", y=0.97),
                      height=CHART_HEIGHT, margin=dict(l=10, r=10, t=36, b=10), showlegend=legend,
                      legend=dict(orientation="h", y=-0.16, x=0, font=dict(size=11)))
    fig.update_yaxes(title=dict(text=y, font=dict(size=11)), rangemode="tozero")
    return fig


def _depth_axis(fig: go.Figure, table, **where) -> None:
    """x ticks at each block depth, named by the block when every model has the same block there."""
    ticks = sorted(table["depth"].unique())
    names = [table.loc[table["depth"] == d, "block"].unique() for d in ticks]
    text = [n[0] if len(n) == 1 else str(d) for d, n in zip(ticks, names)]
    fig.update_xaxes(tickvals=ticks, ticktext=text, **where)


def legend_strip(models: list[str], probes: set[str] = frozenset()) -> None:
    """One legend for every chart: a coloured mark per model."""
    colours = _colour(models)
    marks = " ".join(
        f"<span style='white-space:nowrap;margin-right:1.2em'><span style='color:{colours[m]};font-size:1.1em'>"
        f"{'◆' if m in probes else '●'}</span> {m}{' (probe)' if m in probes else ''}</span>" for m in models)
    st.html(f"<div style='font-size:0.85rem;line-height:1.3'>{marks}</div>")


def distance_figure(table, field: str, title: str, unit: str, heads=None) -> go.Figure:
    """Mean attention distance against block depth, a line per model, bars over clips; with ``heads``
    (:func:`per_block` with heads) a faint dot per head, as in ViT's Fig. 7."""
    fig = go.Figure()
    colours = _colour(list(dict.fromkeys(table["model"])))
    if heads is not None:
        for model, g in heads[heads["head"] >= 0].groupby("model", sort=False):
            fig.add_trace(go.Scatter(x=g["depth"], y=g[field], mode="markers", showlegend=False,
                                     marker=dict(color=colours[model], size=5, opacity=0.35),
                                     customdata=g[["block", "head"]].to_numpy(),
                                     hovertemplate="%{customdata[0]} head %{customdata[1]}: %{y:.2f} " + unit
                                                   + "<extra>" + model + "</extra>"))
    for model, g in table.groupby("model", sort=False):
        probe = bool(g["probe"].any())
        fig.add_trace(go.Scatter(
            x=g["depth"], y=g[field], mode="lines+markers", name=model + (" (probe)" if probe else ""),
            line=dict(color=colours[model], dash="dot" if probe else "solid"),
            marker=dict(symbol="diamond" if probe else "circle", size=8),
            error_y=dict(type="data", symmetric=False, array=g[field + "_q75"] - g[field],
                         arrayminus=g[field] - g[field + "_q25"], thickness=1.2, width=4),
            customdata=g[["block", "clips"]].to_numpy(),
            hovertemplate="%{customdata[0]}: %{y:.2f} " + unit + " (%{customdata[1]} clips)<extra>" + model + "</extra>"))
    _depth_axis(fig, table)
    return _layout(fig, title, unit)


def offset_figure(profiles) -> go.Figure:
    """Mass by temporal offset (key time minus query time, frames), a line per model x block: colour
    the model, dash the block's depth (named in the chart's own legend)."""
    fig = go.Figure()
    colours = _colour(list(dict.fromkeys(profiles["model"])))
    dashes = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
    for (model, block), g in profiles.groupby(["model", "block"], sort=False):
        depth = int(g["depth"].iloc[0])
        fig.add_trace(go.Scatter(x=g["frames"], y=g["mass"], mode="lines+markers", showlegend=False,
                                 line=dict(color=colours[model], dash=dashes[depth % len(dashes)], width=1.6),
                                 marker=dict(size=4),
                                 hovertemplate="offset %{x:+g} frames: %{y:.3f}<extra>" + f"{model} · {block}</extra>"))
    for depth, g in profiles.groupby("depth"):
        names = g["block"].unique()
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color="#555", dash=dashes[depth % len(dashes)]),
                                 name=names[0] if len(names) == 1 else f"depth {depth}"))
    fig.update_xaxes(zeroline=True, zerolinecolor="#bbb")
    return _layout(fig, "Where in time: mass by offset, key − query time (frames)", "mass", legend=True)


def entropy_dependence_figure(table) -> go.Figure:
    """Entropy / log(#keys) and query dependence per block, a line per model, side by side."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("entropy / log(#keys)", "query dependence (GCNet)"))
    colours = _colour(list(dict.fromkeys(table["model"])))
    for model, g in table.groupby("model", sort=False):
        for col, field in ((1, "entropy_norm"), (2, "query_dependence")):
            fig.add_trace(go.Scatter(
                x=g["depth"], y=g[field], mode="lines+markers", name=model,
                line=dict(color=colours[model]),
                error_y=dict(type="data", symmetric=False, array=g[field + "_q75"] - g[field],
                             arrayminus=g[field] - g[field + "_q25"], thickness=1.2, width=4),
                customdata=g[["block"]].to_numpy(),
                hovertemplate="%{customdata[0]}: %{y:.3f}<extra>" + model + "</extra>"), row=1, col=col)
    fig.update_annotations(font_size=13)
    _depth_axis(fig, table)
    fig.update_yaxes(range=[0, 1.05])
    fig = _layout(fig, "", "")
    fig.update_layout(margin=dict(l=10, r=10, t=26, b=10))
    return fig


def charts(df) -> None:
    """The four views, two by two, sized to sit on one 1440x900 screen."""
    table, profiles = per_block(df), offset_profiles(df)
    heads = per_block(df, heads=True) if df["head"].notna().any() else None
    legend_strip(list(dict.fromkeys(df["model"])), set(df.loc[df["probe"], "model"]))
    cfg = {"displaylogo": False}
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(distance_figure(table, "dist_space_px", "How far in space: mean attention distance per block",
                                      "input px", heads), config=cfg, key="survey_space")
    right.plotly_chart(distance_figure(table, "dist_time_frames", "How far in time: mean attention distance per block",
                                       "frames", heads), config=cfg, key="survey_time")
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(offset_figure(profiles), config=cfg, key="survey_offsets")
    right.plotly_chart(entropy_dependence_figure(table), config=cfg, key="survey_entropy")


def block_table(df, out: Path) -> None:
    """The per-block numbers, and the rows as CSV."""
    table = per_block(df)
    cols = ["model", "block", "depth", "probe", "clips", *LABELS]
    with st.expander("Per-block numbers (means over clips)"):
        st.dataframe(table[cols].rename(columns=LABELS).round(3), hide_index=True, key="survey_table")
        st.caption(f"Rows: {out / 'rows'} (Parquet, one row per clip × model × block [× head]); "
                   f"summary: {out / 'summary.json'}.")


__all__ = ["BUNDLED", "FOLDER", "block_table", "bundled_clips", "bundled_dir", "caption", "charts", "demo_models", "distance_figure",
           "entropy_dependence_figure", "legend_strip", "offset_figure", "results", "run_bundled", "source"]
