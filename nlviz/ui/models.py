"""Choosing a model in the app: bundled demo models, zoo downloads, local checkpoints.

A model is named by a string everywhere in the app (cache keys, URLs, view specs):
- a zoo name (``demo.embedded_gaussian``, ``i3d_nl5_r50.kinetics400_mmaction2_dot_product``);
- ``file:<path>`` for a checkpoint on disk (typed in, or uploaded and saved under the cache,
  in a file named by its hash so the same upload is stored once);
- a zoo name with probe options (``i3d_inception.kinetics400_probe@tau=0.2``, see
  :func:`nlviz.zoo.variant_name`): the sidebar's probe settings. Such a model is built from the
  loaded base model with :meth:`~nlviz.models.InceptionI3d.with_probe` (same weight tensors).
Loaded models are shared by all browser sessions (``st.cache_resource``) and never mutated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from .. import zoo
from ..resolve import FILE_PREFIX  # how a checkpoint path is spelled as a model name (one definition)
from ..spec import ClipSpec

DEFAULT_MODEL = "demo.embedded_gaussian"  # the paper's default instantiation, always bundled
REAL_MODEL = "i3d_inception.kinetics400_probe"  # the default once its weights are on disk: real footage
CHECKPOINT_TYPES = ["pth", "pt", "pyth", "pkl", "ckpt", "safetensors"]


@dataclass(frozen=True)
class ModelInfo:
    """What the pages show about a model before (or after) it is loaded."""

    name: str
    label: str  # short, for select boxes and captions
    source: str  # "demo", a zoo source, or "local file"
    pairwise: str | None
    spec: ClipSpec
    license: str = ""
    notes: str = ""
    probe: bool = False  # feature-similarity probes, not trained non-local blocks

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"

    @property
    def kind(self) -> str:
        """What computes its attention, in a few words: the pairwise function, or the probe."""
        return "feature-similarity probe, softmax(cos / τ)" if self.probe else self.pairwise or "no non-local block"


def default_model() -> str:
    """The model a new session opens on: DeepMind's I3D with the probe when its weights are on disk
    (it means something on real footage), else the bundled embedded-Gaussian demo model."""
    return REAL_MODEL if zoo.is_cached(REAL_MODEL) else DEFAULT_MODEL


def is_file(name: str) -> bool:
    return name.startswith(FILE_PREFIX)


def _file_stamp(name: str) -> str:
    """Changes when the file behind a ``file:`` name changes (so caches reload it); '' for zoo names."""
    if not is_file(name):
        return ""
    try:
        st_ = Path(name[len(FILE_PREFIX):]).stat()
    except OSError:
        return "missing"
    return f"{st_.st_mtime_ns}-{st_.st_size}"


@st.cache_resource(max_entries=4, show_spinner=False)
def _load(name: str, stamp: str):
    from ..resolve import load

    loaded = load(name)
    return loaded.with_(name=name) if is_file(name) else loaded  # the app's own spelling of a file name


@st.cache_resource(max_entries=8, show_spinner=False)
def _variant(name: str):
    """A zoo model with other probe options: a new model around the cached base model's weights."""
    from ..resolve import variant

    return variant(get_model(zoo.split_name(name)[0]), name)  # the shared base model is left as it is


def get_model(name: str):
    """The loaded model (:class:`nlviz.loaded.LoadedModel`) called ``name`` (zoo name, with or without
    probe options, or ``file:<path>``), loaded once and shared (read-only)."""
    if not is_file(name) and zoo.VARIANT_SEP in name:
        return _variant(name)
    return _load(name, _file_stamp(name))


def model_stamp(name: str) -> str:
    """Part of every cache key derived from the model: a rewritten local file is a new model."""
    return _file_stamp(name)


def model_info(name: str) -> ModelInfo:
    """Label, source, pairwise function and clip spec of ``name``; local files are loaded to learn them."""
    if is_file(name):
        model = get_model(name)
        from ..capture import attention_blocks

        kinds = {getattr(b, "pairwise", None) for b in attention_blocks(model.model).values()}
        pairwise = kinds.pop() if len(kinds) == 1 else (", ".join(sorted(map(str, kinds))) or None)
        return ModelInfo(name, f"file: {Path(name[len(FILE_PREFIX):]).name}", "local file", pairwise, model.spec)
    e = zoo.get(name)
    return ModelInfo(name, name, e.source, e.pairwise, e.spec, e.license, e.notes, zoo.has_probe_options(e))


def model_options(*, with_attention: bool = True) -> list[str]:
    """Zoo names the app can load now: bundled demo models first, then cached downloads.

    ``with_attention``: only models that have non-local blocks (the baseline has nothing to show).
    """
    entries = [e for e in zoo.list_entries() if e.pairwise or not with_attention]
    names = [e.name for e in entries if e.source == "demo"]
    names += [e.name for e in entries if e.source != "demo" and zoo.is_cached(e.name)]
    return names


def download_options(*, with_attention: bool = True) -> list[str]:
    """Zoo names that need a download before use."""
    return [e.name for e in zoo.list_entries() if (e.pairwise or not with_attention)
            and e.source != "demo" and not zoo.is_cached(e.name)]


def option_label(name: str) -> str:
    """How a model reads in a select box: bundled, cached, download needed (with size), local file."""
    if is_file(name):
        return f"{Path(name[len(FILE_PREFIX):]).name} (local file)"
    e = zoo.get(name)
    if e.source == "demo":
        return f"{name} (bundled)"
    if zoo.is_cached(name):
        return name
    size = f", {e.size_mb:.0f} MB" if e.size_mb else ""
    return f"{name} (download needed{size})"


def download_with_progress(name: str, where=None) -> bool:
    """Download zoo entry ``name`` with a progress bar in ``where`` (default: the sidebar).

    Returns True when the verified file is in the cache; shows a clear error otherwise.
    """
    from ..download import DownloadError

    where = where or st.sidebar
    entry = zoo.get(name)
    bar = where.progress(0.0, text=f"Downloading {entry.filename}...")

    def progress(done: int, total: int | None) -> None:
        if total:
            bar.progress(min(done / total, 1.0), text=f"Downloading {entry.filename}: "
                                                      f"{done / 1e6:.1f} / {total / 1e6:.1f} MB")
        else:
            bar.progress(0.0, text=f"Downloading {entry.filename}: {done / 1e6:.1f} MB")

    try:
        zoo.fetch(name, progress=progress)
    except DownloadError as e:
        bar.empty()
        where.error(f"Download of {name} failed: {e}")
        return False
    bar.progress(1.0, text=f"Downloaded and verified {entry.filename}.")
    return True


def _uploads_dir() -> Path:
    from ..download import cache_dir

    return cache_dir().parent / "uploads"


def save_upload(filename: str, data: bytes) -> Path:
    """Store an uploaded checkpoint under the cache, named by its content hash (stored once)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[-80:] or "checkpoint"
    path = _uploads_dir() / f"{digest}-{safe}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def try_local_checkpoint(path: str | Path, where=None) -> str | None:
    """Load a checkpoint file to check it (format auto-detected); its ``file:`` name, or None after
    showing why it cannot be used."""
    from ..checkpoints import CheckpointError
    from ..weights import WeightsError

    where = where or st.sidebar
    path = Path(path).expanduser()
    if not path.is_file():
        where.error(f"No such file: {path}")
        return None
    name = FILE_PREFIX + str(path.resolve())
    try:
        with st.spinner(f"Reading {path.name}..."):
            get_model(name)
    except (CheckpointError, WeightsError, FileNotFoundError, ValueError) as e:
        where.error(f"Cannot load {path.name}: {e}")
        return None
    except Exception as e:  # an unreadable file of an unexpected kind: say so, keep the app up
        where.error(f"Cannot load {path.name}: {type(e).__name__}: {e}")
        return None
    return name


def _local_checkpoint_box(key: str) -> str | None:
    """Sidebar expander: a checkpoint path or upload; returns the new model's name once it loads."""
    with st.sidebar.expander("Local checkpoint", expanded=False):
        st.caption("A Caffe2 pickle, PySlowFast or mmaction2 .pth, or an nlviz .safetensors file; "
                   "the format is detected from the content.")
        path = st.text_input("Path on the server", key=f"{key}_path", placeholder="~/checkpoints/i3d_nl.pth")
        up = st.file_uploader("or upload", type=CHECKPOINT_TYPES, key=f"{key}_file")
        source = None
        if up is not None:
            memo = st.session_state.setdefault(f"{key}_saved", {})
            if up.file_id not in memo:
                memo.clear()
                memo[up.file_id] = str(save_upload(up.name, up.getvalue()))
            source = memo[up.file_id]
        elif path.strip():
            source = path.strip()
        if source is None:
            return None
        return try_local_checkpoint(source, where=st)


def model_picker(*, key: str = "model", default: str | None = None, allow_download: bool = True) -> str | None:
    """Sidebar model choice: bundled demo models, cached zoo models, zoo models to download, local files.

    Returns the name of a model that is ready to load, or None (nothing usable chosen yet; the
    sidebar then says why: a download to start, a failed download, a bad checkpoint).
    """
    ss = st.session_state
    box = st.sidebar.container()
    local = ss.setdefault(f"{key}_local", [])
    new = _local_checkpoint_box(key)
    if new is not None and new not in local:
        local.append(new)
        ss[key] = new
    options = model_options() + local + (download_options() if allow_download else [])
    if not options:
        box.error("No model is available: the bundled demo weights are missing from assets/models/.")
        return None
    default = default or default_model()
    if ss.get(key) not in options:
        ss[key] = default if default in options else options[0]
    name = box.selectbox("Model", options, format_func=option_label, key=key,
                         help="Bundled demo models are trained by nlviz on synthetic clips. Zoo models "
                              "(published Kinetics checkpoints) are downloaded once into the cache.")
    if is_file(name):
        return name
    if zoo.is_cached(name):
        return probe_settings(name, key=key) if zoo.has_probe_options(zoo.get(name)) else name
    entry = zoo.get(name)
    box.info(f"{name} is not downloaded yet ({entry.size_mb or '?'} MB from {entry.source}). "
             + (f"Licence: {entry.license}." if entry.license else ""))
    if box.button(f"Download {name}", key=f"{key}_download", type="primary"):
        if download_with_progress(name, where=box):
            st.rerun()
    st.info("Download the chosen model in the sidebar, or pick a bundled one.")
    return None


PROBE_KEYS = ("stages", "tau", "centre", "key_pool")  # widgets of probe_settings: f"{key}_probe_{option}"


def probe_settings(name: str, *, key: str = "model") -> str:
    """Sidebar settings of a model's feature-similarity probes; the name of the model they give.

    The defaults are the zoo entry's; a change gives another model name
    (``<entry>@<options>``), so every cache keyed by the name keeps its settings apart.
    """
    from ..models.inception_i3d import MIXED_NAMES

    defaults = zoo.get(name).build_kwargs()
    ss = st.session_state
    k = {opt: f"{key}_probe_{opt}" for opt in PROBE_KEYS}
    ss.setdefault(k["stages"], list(defaults["stages"]))
    ss.setdefault(k["tau"], float(defaults["tau"]))
    ss.setdefault(k["centre"], bool(defaults["centre"]))
    ss.setdefault(k["key_pool"], bool(defaults["key_pool"]))
    for opt in PROBE_KEYS:  # keep them across runs and pages that do not draw them
        ss[k[opt]] = ss[k[opt]]
    with st.sidebar.expander("Probe settings", expanded=False):
        st.caption("The probe is parameter-free: softmax over every space-time position of "
                   "cos(feature of the query, feature of the key) / τ, after the chosen Inception modules.")
        stages = st.multiselect("Stages", MIXED_NAMES, key=k["stages"],
                                help="Inception modules whose output the probe attends over: Mixed_3b/3c 28x28 "
                                     "cells at 224 px, Mixed_4b-4f 14x14, Mixed_5b/5c 7x7.")
        tau = st.number_input("Temperature τ", min_value=0.01, max_value=2.0, step=0.01, format="%.2f",
                              key=k["tau"], help="Smaller: sharper maps (only the most similar positions). "
                                                 "Cosines lie in [-1, 1], so τ = 1 is nearly uniform.")
        centre = st.toggle("Mean-centre the features", key=k["centre"],
                           help="Subtract the clip's mean feature first: what every position shares no longer "
                                "makes all cosines high.")
        key_pool = st.toggle("Pool the keys 1x2x2", key=k["key_pool"],
                             help="Max-pool the keys as the non-local blocks' subsampling does (4x fewer keys).")
    if not stages:
        st.sidebar.warning("Pick at least one stage; the default stages are used meanwhile.")
        stages = list(defaults["stages"])
    order = [s for s in MIXED_NAMES if s in stages]  # forward order, whatever the order picked
    return zoo.variant_name(name, stages=tuple(order), tau=round(float(tau), 4), centre=bool(centre),
                            key_pool=bool(key_pool))


def restore_probe_settings(name: str, *, key: str = "model") -> str:
    """For a model name with probe options (a shared link): put them into the settings' widgets;
    returns the entry's plain name (what the model picker lists)."""
    base, options = zoo.split_name(name)
    if options:
        defaults = zoo.get(base).build_kwargs()
        merged = {**{opt: defaults[opt] for opt in PROBE_KEYS}, **options}
        ss = st.session_state
        ss[f"{key}_probe_stages"] = list(merged["stages"])
        ss[f"{key}_probe_tau"] = float(merged["tau"])
        ss[f"{key}_probe_centre"] = bool(merged["centre"])
        ss[f"{key}_probe_key_pool"] = bool(merged["key_pool"])
    return base


def zoo_table() -> None:
    """The model zoo as a table: source, pairwise function, clip, reported top-1, size, licence, cache."""
    names = {"top1": "top-1 (%)", "size_mb": "size (MB)", "license": "licence", "clip": "clip (frames x stride)"}
    rows = [{names.get(k, k): v for k, v in row.items()} for row in zoo.table()]
    st.subheader("Model zoo")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"cached": st.column_config.CheckboxColumn("on disk")})
    st.caption("Reported top-1: the publisher's figure on Kinetics-400 validation (demo models: accuracy on "
               "their synthetic test clips). Bundled demo models are always on disk; the others are "
               "downloaded once into the cache. `nlviz zoo -v` prints URLs, checksums and citations.")


def zoo_downloads(*, key: str = "zoo_download") -> None:
    """Download zoo checkpoints from the page, with progress."""
    missing = download_options(with_attention=False)
    if not missing:
        st.caption("Every zoo checkpoint is on disk.")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = c1.selectbox("Download a checkpoint", missing, format_func=option_label, key=f"{key}_name")
    entry = zoo.get(name)
    if c2.button("Download", key=key, type="primary"):
        if download_with_progress(name, where=st):
            st.rerun()
    st.caption(f"From {entry.url}. Licence: {entry.license}.")


@st.cache_resource(max_entries=8, show_spinner=False)
def _stats(model_name: str, model_stamp_: str, video_id: str, sampling, queries: int | None, _analysis):
    from ..stats import capture_stats

    return capture_stats(_analysis.capture, queries=queries)


def architecture(model_name: str, video, sampling, analysis) -> None:
    """The model's non-local blocks: channels and grids on this clip, and statistics over a seeded
    sample of queries (every query on request)."""
    from ..architecture import block_table
    from ..stats import DEFAULT_QUERIES, sampling_note

    model = get_model(model_name)
    rows = block_table(model, analysis.capture)
    if not rows:
        st.info(f"{model_info(model_name).label} has no non-local block: nothing attends to anything.")
        return
    every = st.toggle("Statistics over every query (slow on real networks)", key="stats_all_queries",
                      help=f"Off: {DEFAULT_QUERIES} query cells per block, drawn with a fixed seed (the first "
                           "view stays fast). On: every query of every block, exact.")
    queries = None if every else DEFAULT_QUERIES
    with st.spinner("Computing the attention of every query..." if every else
                    f"Computing the attention of {DEFAULT_QUERIES} queries per block..."):
        stats = _stats(model_name, model_stamp(model_name), video.video_id, sampling, queries, analysis)
    for row in rows:
        s = stats.get(row["block"])
        if s is not None:
            row.update({k: v for k, v in s.as_row().items() if k not in ("block", "pairwise", "dims", "channels")
                        and not k.startswith(("queries (", "keys"))})
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(
        f"{sampling_note(stats)} "
        "**distance**: how far from the query its attention lands, weighted by the weights (model-input "
        "pixels and frames between cell centres). **entropy**: spread of a query's attention (max = uniform "
        "over all keys). **query dependence (cosine, GCNet)**: the mean cosine distance between the maps of "
        "two different queries, the measure of Cao et al. (GCNet, 2019), who found it near 0 for trained "
        "non-local blocks: 0 when every query attends to the same map, 1 when queries attend to disjoint "
        "keys. **query dependence**: the mean total-variation distance between a query's map and the mean "
        "map; also 0 when every query sees the same map (n disjoint maps give 1 - 1/n), but it counts mass "
        "that moves, where the cosine measure counts overlap. **own-slice share**: mass in the query's own "
        "key time slice. Dot product and concatenation weights are signed: their statistics use |weight| "
        "normalized per query.")
