"""Streamlit pieces shared by the app's pages: cached loaders, pickers, the views, figures.

The only part of nlviz that imports streamlit. Caching follows two rules:
- models are resources shared by every browser session (``st.cache_resource``), keyed by
  their zoo name, and never mutated (no ``.to()``, no ``.train()``, no hooks left behind);
- per-video work (decode + one forward pass with capture) is cached by the string key
  (model name, video hash, sampling), bounded, and holds CPU tensors and numpy only.
A click then only computes rows (:func:`nlviz.explore.query_view`).

Where things are: :mod:`.analysis` (video, sampling, the cached analysis), :mod:`.query` (the
query's state, pickers and switches), :mod:`.views` (what a query shows), :mod:`.page` (navigation,
captions, help), :mod:`.models` (choosing a model), :mod:`.compare` (the Compare page),
:mod:`.url` (the view in the address), :mod:`.view_component` (the hover view's components).
The pages use them through this package's names.
"""

from __future__ import annotations

from .analysis import (MAX_UPLOAD_MB, VideoChoice, analysis_or_error, get_analysis, model_spec, sample_query,
                       sampling_controls, video_picker, view_key)
from .models import (DEFAULT_MODEL, REAL_MODEL, ModelInfo, architecture, default_model, download_options,
                     get_model, model_info, model_options, model_picker, model_stamp, zoo_downloads, zoo_table)
from .page import ABOUT, MENU_ITEMS, PAGES, caption_for, default_video_for, how_to_read, nav
from .query import (CLICK_KEY, DISPLAY_WIDTH, OVERLAY_STYLES, VIEW_ENV, VIEW_KEY, Query, block_picker,
                    direction_toggle, hide_own_toggle, interactive_toggle, overlay_style, query_frame, query_inputs,
                    query_state)
from .url import restore_view, write_view
from .views import (TOPK_MAX, all_blocks, attention_numbers, attention_strip, attention_view, colorbar_caption,
                    export_buttons, predictions, query_view_or_error, reverse_strip, reverse_view_or_error,
                    topk_arrows)

__all__ = [
    "ABOUT", "CLICK_KEY", "DEFAULT_MODEL", "DISPLAY_WIDTH", "MAX_UPLOAD_MB", "MENU_ITEMS", "OVERLAY_STYLES", "PAGES",
    "REAL_MODEL", "TOPK_MAX", "VIEW_ENV", "VIEW_KEY", "ModelInfo", "Query", "VideoChoice", "all_blocks",
    "analysis_or_error", "architecture", "attention_numbers", "attention_strip", "attention_view", "block_picker",
    "caption_for", "colorbar_caption", "default_model", "default_video_for", "direction_toggle", "download_options",
    "export_buttons", "get_analysis", "get_model", "hide_own_toggle", "how_to_read", "interactive_toggle",
    "model_info", "model_options", "model_picker", "model_spec", "model_stamp", "nav", "overlay_style",
    "predictions", "query_frame", "query_inputs", "query_state", "query_view_or_error", "restore_view",
    "reverse_strip", "reverse_view_or_error", "sample_query", "sampling_controls", "topk_arrows", "video_picker", "view_key",
    "write_view", "zoo_downloads", "zoo_table",
]
