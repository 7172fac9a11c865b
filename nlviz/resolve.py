"""One resolver: a zoo name, a name with options or a checkpoint path -> a :class:`~nlviz.loaded.LoadedModel`.

    from nlviz.resolve import load
    lm = load("demo.embedded_gaussian")                                  # bundled: no network
    lm = load("i3d_nl5_r50.kinetics400_mmaction2_dot_product")          # fetched once into the cache
    lm = load("i3d_inception.kinetics400_probe@stages=Mixed_4f,tau=0.2") # options after "@"
    lm = load("my_checkpoint.pth")                                       # any checkpoint file
    lm = load("file:my_checkpoint.pth")                                  # the app's spelling of a path

The app, the command line, exports, view specs and the survey load through :func:`load`; the
zoo's ``zoo.load`` is this function. What happens:

1. a name is split into entry and options (:func:`nlviz.zoo.split_name`: unknown names get the
   closest known ones in the error, options are checked against the family's);
2. the entry's file is fetched (:func:`nlviz.zoo.fetch`: download, hash check, cache);
3. the entry's family turns it into a network (its ``load``), or, for published checkpoints of
   the ResNet-NL family, :func:`nlviz.checkpoints.load_file` converts it (format detection; the
   entry's architecture, graph and clip are checked against the file, so a checkpoint of another
   family says what it looks like);
4. the result carries the entry's clip spec (the publisher's preprocessing; for a checkpoint
   whose own files the family fetched, such as a hub snapshot, the spec those files give), the
   name, the family's block metadata and the provenance.

A path (or ``file:<path>``) skips 1-2: the file is converted and named ``file:<absolute path>``.
"""

from __future__ import annotations

import importlib

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .download import Progress
from .loaded import LoadedModel, Provenance

FILE_PREFIX = "file:"  # how the app and view specs spell a checkpoint path as a model name


def is_path(name: str | Path) -> bool:
    """Whether ``name`` names a checkpoint on disk (``file:<path>``, or an existing file or directory)
    rather than a zoo name."""
    text = str(name)
    return text.startswith(FILE_PREFIX) or Path(text).expanduser().exists()


def load(
    name: str | Path,
    *,
    arch: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    spec: Any = None,
    entry: Any = None,
    pairwise: str | None = None,
    progress: Progress | None = None,
    dest_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> LoadedModel:
    """The loaded model (eval mode) that ``name`` stands for (see the module docstring).

    For a checkpoint path, ``arch``, ``overrides``, ``spec``, ``entry`` and ``pairwise`` say what
    the file should be (as :func:`nlviz.checkpoints.convert_checkpoint` takes them); zoo names
    bring their own. ``progress``/``log``/``dest_dir`` are for the fetch (:func:`nlviz.zoo.fetch`).
    Raises FileNotFoundError for a name that is neither a file nor a zoo name (the message lists
    the closest zoo names), :class:`~nlviz.checkpoints.CheckpointError` for a file that cannot be
    converted, :class:`~nlviz.download.DownloadError` when fetching fails.
    """
    from . import zoo

    text = str(name)
    if is_path(name):
        path = Path(text[len(FILE_PREFIX):] if text.startswith(FILE_PREFIX) else text).expanduser()
        if path.is_dir():
            return _load_dir(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint file")
        return _load_file(path, arch=arch, overrides=overrides, spec=spec, entry=entry, pairwise=pairwise)
    try:
        base, options = zoo.split_name(text)
    except KeyError as e:
        raise FileNotFoundError(f"{text}: no such file, and not a zoo name ({e.args[0]})") from None
    entry = zoo.get(base)
    path = zoo.fetch(entry.name, progress=progress, dest_dir=dest_dir, log=log)
    from .models import family_of

    family = family_of(entry.arch)
    if family.load is not None:
        loaded = LoadedModel.of(family.load(entry, path, options), arch=entry.arch)
    else:
        loaded = _load_file(path, arch=entry.arch, overrides=entry.build_kwargs(), spec=entry.spec, entry=entry)
        if not isinstance(loaded, LoadedModel):  # a format loader that returns the bare network
            loaded = LoadedModel.of(loaded, arch=entry.arch)
    # the clip the model expects: the entry's (the publisher's preprocessing, which a converted file
    # does not say), except where the family fetched the checkpoint's own files (a hub snapshot's
    # config and processor settings say it themselves)
    spec = loaded.spec if family.fetch is not None else (
        replace(entry.spec, extra=dict(loaded.spec.extra)) if loaded.spec != entry.spec else entry.spec)
    return loaded.with_(
        name=zoo.variant_name(text),
        spec=spec,
        entry=entry,
        options=dict(options),
        provenance=Provenance(entry.source, path, loaded.provenance.checkpoint_format, entry.license,
                              entry.citation, entry.notes),
    )


def _checkpoints():
    """The checkpoint formats package (looked up in sys.modules at call time, like any import)."""
    return importlib.import_module(f"{__package__}.checkpoints")


def checkpoint_keys(path: Path) -> list[str]:
    """The tensor names of a checkpoint file (those of its state dict when it nests one); [] when unreadable."""
    ckpt = _checkpoints()
    try:
        if ckpt._is_safetensors(path):
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        obj = ckpt.read_checkpoint(path)
    except Exception:  # noqa: BLE001 - a hint only: the loader's own error is what the user gets
        return []
    for nested in ("state_dict", "model_state", "model", "blobs", "params"):
        if isinstance(obj, Mapping) and isinstance(obj.get(nested), Mapping):
            obj = obj[nested]
            break
    return [str(k) for k in obj] if isinstance(obj, Mapping) else []


def family_hint(path: Path, expected: str | None = None) -> str:
    """'it looks like a checkpoint of the <family> family' when the file's tensor names say so, else ''."""
    from .models import families

    keys = checkpoint_keys(path)
    if not keys:
        return ""
    owners = [f for f in families() if f.owns_keys is not None and f.owns_keys(keys)]
    owners = [f for f in owners if f.name != expected]  # the family it was loaded as says nothing new
    if not owners:
        return ""
    fam = owners[0]
    names = [e.name for e in fam.entries()][:2]
    see = f" (e.g. zoo {', '.join(names)})" if names else ""
    return f"it looks like a checkpoint of the {fam.name} family: {fam.title}{see}"


def _load_file(path: Path, **hints: Any) -> LoadedModel:
    ckpt = _checkpoints()
    from .weights import WeightsError

    try:
        loaded = ckpt.load_file(path, **hints)
    except (ckpt.UnknownFormatError, ckpt.CheckpointMismatchError, WeightsError) as e:
        expected = None
        if hints.get("arch"):
            from .models import family_of

            expected = family_of(hints["arch"]).name
        hint = family_hint(path, expected)
        if not hint:
            raise
        raise type(e)(f"{e}; {hint}") from e
    return loaded.with_(name=f"{FILE_PREFIX}{path.resolve()}") if isinstance(loaded, LoadedModel) else loaded


def _load_dir(path: Path) -> LoadedModel:
    """A checkpoint directory (a saved hub snapshot): the first family that recognises it."""
    from .models import families, missing_families

    for family in families():
        if family.open_dir is None:
            continue
        model = family.open_dir(path)
        if model is not None:
            return LoadedModel.of(model, name=f"{FILE_PREFIX}{path.resolve()}", provenance=Provenance("file", path))
    extra = missing_families()
    hint = f" (families not installed: {', '.join(sorted(set(extra.values())))})" if extra else ""
    raise FileNotFoundError(f"{path} is a directory that no model family recognises as a checkpoint{hint}")


def variant(base: LoadedModel, name: str) -> LoadedModel:
    """The model named ``name`` (the base's entry with other options) built around ``base``'s weight
    tensors when its family can (no second read of the file); else loaded."""
    from . import zoo

    entry_name, options = zoo.split_name(name)
    if base.entry is None or base.entry.name != entry_name or base.family.with_options is None:
        return load(name)
    model = base.family.with_options(base.model, options)
    return base.with_(model=model, name=zoo.variant_name(name), options=dict(options),
                      build_overrides={**base.build_overrides, **options})


__all__ = ["FILE_PREFIX", "is_path", "load", "variant"]
