"""Checkpoints on the Hugging Face hub: fetching a snapshot, loading a local one, its clip and labels.

A zoo entry of this family (file format ``hf_hub``) names a hub repository; fetching it puts a
snapshot (``config.json``, the processor's settings and the weights, safetensors when the repo
has them) into nlviz's cache directory, ``<cache>/<owner>--<name>``, with
``huggingface_hub.snapshot_download``. Any directory holding ``config.json`` and the weights
(``save_pretrained`` output) loads the same way, with no network at all.

The clip a checkpoint expects comes from its own files: the frame count and input size from
``config.json``, resize, crop and normalization from ``preprocessor_config.json`` (or
``video_preprocessor_config.json``); the class names from ``config.id2label``. The temporal stride
is not stored in either: it is the entry's (the paper's sampling).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...download import DownloadError, OfflineError, cache_dir
from ...spec import ClipSpec
from .archs import ARCHS, HFVideoClassifier, arch_name, arch_of, class_names, spec_values

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
HUB = "https://huggingface.co"


class NotASnapshotError(ValueError):
    """A path that is not a transformers checkpoint directory of a supported video model."""


def snapshot_dirname(repo_id: str) -> str:
    """The cache directory name of a hub repository: ``owner--name``."""
    return repo_id.replace("/", "--")


def repo_id_of(url: str) -> str:
    """``owner/name`` of a ``https://huggingface.co/owner/name`` URL."""
    if not url.startswith(HUB + "/"):
        raise ValueError(f"not a Hugging Face hub URL: {url!r}")
    parts = url[len(HUB) + 1:].strip("/").split("/")
    if len(parts) < 2:
        raise ValueError(f"not a Hugging Face hub model URL: {url!r}")
    return "/".join(parts[:2])


def is_snapshot(path: str | Path) -> bool:
    """Whether ``path`` is a directory with a ``config.json`` and weights."""
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file() and any((p / f).is_file() for f in WEIGHT_FILES)


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_dir():
        raise NotASnapshotError(f"{p} is not a directory (a Hugging Face checkpoint is a directory with config.json)")
    try:
        return json.loads((p / "config.json").read_text())
    except FileNotFoundError:
        raise NotASnapshotError(f"{p} has no config.json: not a Hugging Face checkpoint directory") from None
    except (OSError, ValueError) as e:
        raise NotASnapshotError(f"{p}/config.json could not be read: {e}") from None


def processor_settings(path: str | Path) -> dict[str, Any]:
    """The image/video processor's settings saved with a checkpoint ({} when none are)."""
    for name in PROCESSOR_FILES:
        f = Path(path) / name
        if f.is_file():
            try:
                return json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise NotASnapshotError(f"{f} could not be read: {e}") from None
    return {}


def _edge(size: Any) -> int | None:
    if isinstance(size, (int, float)):
        return int(size)
    if isinstance(size, dict):
        for k in ("shortest_edge", "height", "width"):
            if k in size:
                return int(size[k])
    return None


def spec_from_settings(cfg: Any, settings: dict[str, Any], default: ClipSpec) -> ClipSpec:
    """The ClipSpec of a checkpoint: frames and size from its config, the rest from its processor.

    ``((x * rescale_factor - offset) - image_mean) / image_std`` on 0-255 pixels (ViViT's
    processor has ``offset``: x / 127.5 - 1 before normalizing) is ClipSpec's ``(x - mean) / std``
    with mean = (offset + image_mean) / rescale_factor and std = image_std / rescale_factor.
    """
    a = arch_of(cfg)
    side = getattr(cfg, a.size_field)
    side = int(side[0] if isinstance(side, (list, tuple)) else side)
    frames = int(getattr(cfg, a.frames_field))
    if cfg.model_type == "vjepa2":
        frames = default.num_frames  # frames_per_clip is the pretraining clip; the classifier's is the entry's
    crop = _edge(settings.get("crop_size")) if settings.get("do_center_crop", True) else None
    crop = crop or side
    short = _edge(settings.get("size")) or round(default.short_side * crop / default.crop_size)  # its ratio
    if cfg.model_type == "vjepa2" and "size" not in settings:
        short = int(crop * 256 / 224)  # its processor resizes to crop * 256 / 224 when no size is saved
    changes: dict[str, Any] = dict(num_frames=frames, crop_size=crop, short_side=max(short, crop))
    if settings:
        rescale = float(settings.get("rescale_factor", 1 / 255)) if settings.get("do_rescale", True) else 1.0
        offset = 1.0 if settings.get("offset", False) and settings.get("do_rescale", True) else 0.0
        if settings.get("do_normalize", True) and "image_mean" in settings:
            mean, std = settings["image_mean"], settings["image_std"]
            mean = [mean] * 3 if isinstance(mean, (int, float)) else mean
            std = [std] * 3 if isinstance(std, (int, float)) else std
        else:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        changes["mean"], changes["std"] = spec_values(mean, std, rescale=rescale, offset=offset)
    return replace(default, **changes)


def load_dir(path: str | Path, *, spec: ClipSpec | None = None, attn_implementation: str | None = None,
             arch: str | None = None) -> HFVideoClassifier:
    """A ready model (eval mode) from a checkpoint directory, with no network.

    ``spec``: the entry's ClipSpec (its stride and, for V-JEPA 2, its clip length are used);
    the rest is read from the directory. ``attn_implementation``: None keeps transformers'
    default (SDPA where the class has it).
    """
    import transformers

    path = Path(path).expanduser()
    raw = read_config(path)
    model_type = raw.get("model_type")
    try:
        cfg = transformers.AutoConfig.for_model(model_type) if model_type else None
    except ValueError:
        cfg = None
    if cfg is None:
        raise NotASnapshotError(f"{path}: config.json names model type {model_type!r}, not a transformers model")
    try:
        name = arch or arch_name(cfg)
    except KeyError as e:
        raise NotASnapshotError(f"{path}: {e.args[0]}") from None
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise NotASnapshotError(f"{path} has config.json but no weights ({' or '.join(WEIGHT_FILES[::2])})")
    cls = ARCHS[name].cls()
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    hf = cls.from_pretrained(str(path), local_files_only=True, **kwargs).eval()
    default = spec or ARCHS[name].spec
    model_spec = spec_from_settings(hf.config, processor_settings(path), default)
    model_spec = replace(model_spec, extra={**dict(default.extra), "hf_snapshot": str(path)})
    return HFVideoClassifier(hf, arch=name, spec=model_spec, class_names=class_names(hf.config)).eval()


def fetch_snapshot(repo_id: str, dest: str | Path | None = None, *, revision: str | None = None,
                   endpoint: str | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Download hub repository ``repo_id`` into ``dest`` (default ``<nlviz cache>/<owner>--<name>``).

    Only what loading needs: the JSON files and one copy of the weights (safetensors when the repo
    has them). A snapshot already there is returned without any network. Raises
    :class:`nlviz.download.OfflineError` when the hub cannot be reached, :class:`DownloadError`
    for anything else that leaves no usable snapshot.
    """
    dest = Path(dest).expanduser() if dest is not None else cache_dir() / snapshot_dirname(repo_id)
    if is_snapshot(dest):
        return dest
    try:
        import huggingface_hub as hub
        from huggingface_hub import errors
    except ImportError as e:  # pragma: no cover - transformers depends on it
        raise DownloadError("huggingface_hub is missing: pip install 'nlviz[transformers]'") from e
    say = log or (lambda _msg: None)
    offline_hint = (
        f"could not reach the Hugging Face hub to fetch {repo_id}: with a network, run `nlviz download` "
        f"for it; offline, pass a local checkpoint directory (config.json and weights, e.g. "
        f"save_pretrained output) instead"
    )
    try:
        say(f"listing {repo_id} on the hub")
        files = hub.HfApi(endpoint=endpoint).list_repo_files(repo_id, revision=revision)
        weights = [f for f in files if f.endswith(".safetensors") or f == "model.safetensors.index.json"]
        if not weights:
            weights = [f for f in files if f.startswith("pytorch_model") and (f.endswith(".bin") or f.endswith(".json"))]
        if not weights:
            raise DownloadError(f"{repo_id} on the hub has no model weights (safetensors or pytorch_model.bin)")
        say(f"downloading {len(weights)} weight file(s) and the configs of {repo_id}")
        hub.snapshot_download(repo_id, revision=revision, local_dir=str(dest), endpoint=endpoint,
                              allow_patterns=["*.json", *weights])
    except DownloadError:
        raise
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as e:
        raise OfflineError(f"{offline_hint} ({e.__class__.__name__})") from e
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.GatedRepoError) as e:
        raise DownloadError(f"the hub has no accessible model {repo_id}: {e}") from e
    except OSError as e:  # connection errors of the HTTP client are OSErrors underneath
        raise OfflineError(f"{offline_hint} ({e})") from e
    except Exception as e:  # the HTTP client's own errors (httpx.ConnectError, ...)
        if "connect" in type(e).__name__.lower() or "timeout" in type(e).__name__.lower():
            raise OfflineError(f"{offline_hint} ({e})") from e
        raise DownloadError(f"fetching {repo_id} from the hub failed: {e}") from e
    if not is_snapshot(dest):
        raise DownloadError(f"the snapshot of {repo_id} in {dest} is incomplete (no config.json or weights)")
    return dest


__all__ = ["NotASnapshotError", "fetch_snapshot", "is_snapshot", "load_dir", "processor_settings",
           "repo_id_of", "snapshot_dirname", "spec_from_settings"]
