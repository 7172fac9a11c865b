"""nlviz: see what the non-local blocks of a video network attend to.

Library for Wang, Girshick, Gupta, He, "Non-local Neural Networks" (CVPR 2018): the block,
C2D/I3D backbones, hook-based attention capture, video input and rendering. The Streamlit
app (``app.py``, ``pages/``) is a thin layer over it; the library never imports streamlit
(except :mod:`nlviz.ui`).

The names below are imported on first use (PEP 562), so ``import nlviz`` itself does not load
torch: the ``nlviz`` command line answers ``--help`` without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "BlockCapture": "capture",
    "Capture": "capture",
    "CaptureError": "capture",
    "OutOfGridError": "capture",
    "capture_attention": "capture",
    "record": "capture",
    "CheckpointError": "checkpoints",
    "LoadedModel": "loaded",
    "load": "resolve",
    "NonLocalBlock": "nonlocal_block",
    "ClipSpec": "spec",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .capture import BlockCapture, Capture, CaptureError, OutOfGridError, capture_attention, record
    from .checkpoints import CheckpointError
    from .loaded import LoadedModel
    from .resolve import load
    from .nonlocal_block import NonLocalBlock
    from .spec import ClipSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nlviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
