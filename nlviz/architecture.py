"""A model's non-local blocks as a table: where they sit, their channels and their grids.

    rows = block_table(model, capture)   # capture: optional, from one forward pass on a clip

Without a capture only the static facts are known (channels, pairwise function, subsampling);
with one, each row also holds the query and key grids the block saw on that clip.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .capture import Capture, attention_blocks


def _grid(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def block_table(model: nn.Module, capture: Capture | None = None) -> list[dict[str, Any]]:
    """One row per attention block of ``model``, in forward order."""
    rows = []
    for name, block in attention_blocks(model).items():
        c_in = getattr(block, "in_channels", None)
        c_mid = getattr(block, "inter_channels", None)
        row: dict[str, Any] = {
            "block": name,
            "pairwise": getattr(block, "pairwise", "?"),
            "dims": getattr(block, "dims", "?"),
            "channels": f"{c_in} -> {c_mid} -> {c_in}" if c_in and c_mid else "?",
            "subsample": "1x2x2 max pool" if getattr(block, "subsample", False) else "none",
            "params": sum(p.numel() for p in block.parameters()),
        }
        if capture is not None and name in capture.blocks:
            b = capture[name]
            row["queries (TxHxW)"] = _grid(b.query_shape)
            row["keys (TxHxW)"] = _grid(b.key_shape)
        rows.append(row)
    return rows
