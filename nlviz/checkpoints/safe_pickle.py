"""A pickle reader that builds numpy arrays, numbers, strings and containers, and nothing else.

The official Caffe2 non-local checkpoints (video-nonlocal-net) are Python-2 pickles of
``{"blobs": {name: ndarray}}``. Unpickling can call any importable function: a crafted
``.pkl`` runs code the moment ``pickle.load`` reads it. Checkpoints are data, never code, so
this module's unpickler resolves only the globals numpy arrays need and refuses every other
one *before* anything is called, with an :class:`UnsafeCheckpointError` naming it:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (the array
  skeleton), ``numpy.ndarray``, ``numpy.dtype``, ``...multiarray.scalar`` (numpy scalars such as
  a float32 learning rate), ``...numeric._frombuffer`` (protocol-5 arrays);
- ``_codecs.encode`` restricted to latin-1, which protocol-2 pickles written by Python 3 use
  for raw bytes;
- ``collections.OrderedDict`` and the builtins ``set``, ``frozenset``, ``bytearray``, ``complex``.

Python-2 ``str`` data (an array's raw bytes) is decoded as latin-1 by default, the one
encoding that maps every byte to one character, which numpy turns back into the same bytes.
Persistent ids (torch's legacy tensor storage) are refused too: torch files go through
``torch.load(weights_only=True)`` instead (see :func:`nlviz.checkpoints.read_checkpoint`).

``only=`` narrows the allowlist further for a file whose content is known: e.g. DeepMind's I3D
checkpoint needs just ``_reconstruct``, ``ndarray`` and ``dtype``
(:data:`nlviz.checkpoints.deepmind_i3d.NUMPY_ARRAY_GLOBALS`).
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
from pathlib import Path
from collections.abc import Iterable
from typing import IO, Any

from .common import CheckpointError, UnsafeCheckpointError


def numpy_core(submodule: str):
    """numpy._core.<submodule> (numpy 2) or numpy.core.<submodule> (numpy 1), without deprecation noise."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """_codecs.encode as pickles use it for bytes: only latin-1 text to bytes."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafeCheckpointError(
            f"refused _codecs.encode({type(obj).__name__}, {encoding!r}): checkpoints only use it for latin-1 bytes"
        )
    return obj.encode("latin-1", errors)


def _allowed() -> dict[tuple[str, str], Any]:
    import numpy as np

    multiarray = numpy_core("multiarray")
    numeric = numpy_core("numeric")
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        if hasattr(numeric, "_frombuffer"):
            table[(mod, "_frombuffer")] = numeric._frombuffer
    for mod in ("builtins", "__builtin__"):
        for name, obj in (("set", set), ("frozenset", frozenset), ("bytearray", bytearray), ("complex", complex)):
            table[(mod, name)] = obj
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` knows only the globals listed in the module docstring."""

    def __init__(
        self,
        file: IO[bytes],
        *,
        encoding: str = "latin1",
        source: str = "the checkpoint",
        only: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = _allowed()
        if only is not None:  # a subset of the allowlist, never more
            wanted = set(only)
            self._allowed = {k: v for k, v in self._allowed.items() if k in wanted}
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refused to load {self._source}: it asks for the Python object {module}.{name}, which a "
                "checkpoint of weights never needs; unpickling it could run code (nothing was executed). "
                "nlviz reads only numpy arrays, numbers, strings and containers from pickles."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(
            f"refused to load {self._source}: it refers to external storage (a pickle persistent id), "
            "as torch files do; open torch files with torch.load(weights_only=True)"
        )


def loads(
    data: bytes, *, encoding: str = "latin1", source: str = "the checkpoint",
    only: Iterable[tuple[str, str]] | None = None,
) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return load(io.BytesIO(data), encoding=encoding, source=source, only=only)


def load(
    file: str | Path | IO[bytes], *, encoding: str = "latin1", source: str | None = None,
    only: Iterable[tuple[str, str]] | None = None,
) -> Any:
    """Unpickle the first object of a file (path or binary file object) with :class:`RestrictedUnpickler`.

    ``only``: (module, name) pairs, a subset of the allowlist, to allow instead of all of it.
    Raises :class:`UnsafeCheckpointError` for a global outside the allowlist and
    :class:`CheckpointError` for anything that is not a readable pickle.
    """
    if isinstance(file, (str, Path)):
        with open(file, "rb") as f:
            return load(f, encoding=encoding, source=source or str(file), only=only)
    label = source or getattr(file, "name", "the checkpoint")
    try:
        return RestrictedUnpickler(file, encoding=encoding, source=str(label), only=only).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, OverflowError) as e:
        raise CheckpointError(f"{label} is not a readable pickle: {type(e).__name__}: {e}") from e


__all__ = ["RestrictedUnpickler", "load", "loads"]
