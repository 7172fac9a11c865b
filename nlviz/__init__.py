"""nlviz: see what the non-local blocks of a video network attend to.

Library for Wang, Girshick, Gupta, He, "Non-local Neural Networks" (CVPR 2018): the block,
C2D/I3D backbones, hook-based attention capture, video input and rendering. The Streamlit
app (``app.py``, ``pages/``) is a thin layer over it; the library never imports streamlit
(except :mod:`nlviz.ui`).
"""

from .capture import BlockCapture, Capture, CaptureError, OutOfGridError, capture_attention, record
from .checkpoints import CheckpointError, load_model
from .nonlocal_block import NonLocalBlock
from .spec import ClipSpec

__version__ = "0.1.0"

__all__ = [
    "BlockCapture",
    "Capture",
    "CaptureError",
    "CheckpointError",
    "ClipSpec",
    "NonLocalBlock",
    "OutOfGridError",
    "capture_attention",
    "load_model",
    "record",
]
