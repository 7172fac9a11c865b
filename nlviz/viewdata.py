"""The bytes the browser's attention view receives: one documented binary layout, both ways.

The Explore and Compare pages draw attention in the browser (:mod:`nlviz.ui.attention_view`):
hovering a pixel computes that query's row there, from the block's factors, with no request to
the server. Once per (analysis, block) the page sends one bytes object, laid out as::

    offset 0   b"NLVZ"                 magic
    offset 4   uint32 little-endian    layout version (VERSION)
    offset 8   uint32 little-endian    length L of the JSON header, in bytes
    offset 12  L bytes                 the header, UTF-8 JSON (below)
    then       zero padding to a multiple of 8, then the sections, each starting at a multiple of 8

The header says what the view is and where each section lies: ``sections[name] = {"offset",
"length", "dtype", "shape"}``, offsets counted from the start of the bytes. Sections:

- ``atlas`` (dtype "jpeg"): every displayed frame, ``atlas.columns`` tiles a row, each tile
  ``atlas.tile`` = [w, h] pixels (the frames downscaled, or enlarged by repetition);
- ``theta`` (float32, (N_q, C)): the block's queries, one query cell a row, cells in (T, H, W)
  order; ``phi`` (float32, (N_k, C)): its keys, likewise in (T', H', W') order. Rows of the
  affinity are then contiguous dot products;
- for the concatenation pairwise function, instead: ``q_term`` (float32, (N_q,)) = theta . w_q
  and ``k_term`` (float32, (N_k,)) = phi . w_k, the two halves of w_f . [theta_i, phi_j]
  (:func:`nlviz.nonlocal_block.affinity` computes the same two terms);
- for multi-head token attention (:class:`nlviz.capture_tokens.TokenCapture`; header
  ``attention`` "tokens" and ``tokens`` = {heads, head_dim, query_extra, key_extra, extra_label,
  rule}): ``theta`` (float32, (N_q, heads * d)) the grid queries, each row head after head;
  ``phi`` (float32, (E_k + N_k, heads * d)) every key token, the extra ones (a class token,
  padding) first. Rule "mvit_rel_pos" adds ``rel_t`` / ``rel_h`` / ``rel_w`` (float32, (query
  size, key size, d) per axis: MViT v2's decomposed relative position tables); rule
  "swin_window" adds ``key_token`` (int32, (padded T*H*W,)): the key token of each padded
  position, ``rel_table`` (float32, (L, heads)) and ``rel_index`` (int32, (M, M)): the window's
  relative position bias of in-window query i on key j is rel_table[rel_index[i, j], head] (the
  module's table and index, cut to the window's volume as torchvision cuts it), with the window,
  shift and padded grid in ``tokens``. A row is each head's softmax over all key
  tokens, averaged over the heads the page picks (the control's ``heads``), the extra tokens'
  share reported beside the map;
- ``lut_seq`` and ``lut_div`` (uint8, (256, 3)): the colour maps, inferno for [0, max] scales and
  blue-white-red for scales symmetric around 0 (signed f/N rows with negative values), exactly the
  tables :func:`nlviz.render.colorize` indexes.

A block whose factors exceed :data:`BUDGET_BYTES` is sent without them (``mode`` "server"):
the browser then shows the row Python computes for the pinned query, and says so. The JS
reader is ``unpack`` in ``nlviz/ui/attention_view.js``; :func:`unpack` here is its Python twin
(tests read back what was written). Everything in the header that comes from users or
checkpoints (names, labels) is only ever put into the page as text.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from .capture import BlockCapture

MAGIC = b"NLVZ"
VERSION = 1
BUDGET_BYTES = 16 * 1024 * 1024  # factors per (analysis, block), float32
ALIGN = 8
TILE_WIDTH = 224  # atlas tile width: frames are shown 160-230 px wide; the canvas keeps this resolution
JPEG_QUALITY = 88


class ViewDataError(ValueError):
    """The bytes are not a view payload of this layout version."""


def _is_tokens(b) -> bool:
    return hasattr(b, "num_heads") and hasattr(b, "q") and hasattr(b, "k")


def _token_rule(b) -> str | None:
    """The browser's name for a token block's rule, or None when the browser cannot compute it."""
    from .capture_tokens import AttentionRule

    rule = b.rule
    if type(rule) is AttentionRule:
        return "global"
    name = type(rule).__name__
    if name == "MViTRelPosRule":
        return "mvit_rel_pos"
    if name == "SwinWindowRule":
        return "swin_window"
    return None


def _swin_bias(b) -> tuple[np.ndarray, np.ndarray]:
    """The window bias as torchvision stores it: its table (L, heads) and the (M, M) index into it
    (the module's index cut to the window's volume, as ``_get_relative_position_bias`` cuts it)."""
    vol = int(np.prod(b.rule.window))
    table = b.rule.table.detach().float().cpu().numpy()
    index = b.rule.index[:vol, :vol].cpu().numpy().astype(np.int32)
    return np.ascontiguousarray(table), np.ascontiguousarray(index)


def _token_extra_bytes(b) -> int:
    rule = _token_rule(b)
    if rule == "mvit_rel_pos":
        return int(b.rule.nbytes)
    if rule == "swin_window":
        m = int(np.prod(b.rule.window))
        return 4 * (int(np.prod(b.rule.padded)) + m * m + int(b.rule.table.numel()))
    return 0


def browser_supported(b) -> bool:
    """Whether the browser knows how to compute this block's rows (every non-local block does;
    token blocks with a rule it implements)."""
    return not _is_tokens(b) or (_token_rule(b) is not None and b.batch_size == 1)


def factor_bytes(b: BlockCapture) -> int:
    """Bytes the browser needs for this block's factors (float32), before packing."""
    nq, nk = int(np.prod(b.query_shape)), int(np.prod(b.key_shape))
    if _is_tokens(b):
        c = b.num_heads * b.channels
        return 4 * c * (nq + nk + b.key_extra) + _token_extra_bytes(b)
    if b.pairwise == "concatenation":
        return 4 * (nq + nk)
    return 4 * b.theta.shape[1] * (nq + nk)


def fits_budget(b: BlockCapture, budget: int | None = None) -> bool:
    """Whether the browser can compute this block's rows itself within ``budget`` bytes (default
    :data:`BUDGET_BYTES`)."""
    return browser_supported(b) and factor_bytes(b) <= (BUDGET_BYTES if budget is None else budget)


def _lut(signed: bool) -> np.ndarray:
    from .render import ValueRange, colorize

    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float64)[None, :]
    scale = ValueRange(0.0, 1.0, "RdBu_r" if signed else "inferno", signed)
    return np.ascontiguousarray(colorize(ramp, scale)[0])  # (256, 3): exactly the indices colorize uses


def atlas(frames: np.ndarray, tile_width: int = TILE_WIDTH, quality: int = JPEG_QUALITY) -> tuple[bytes, dict]:
    """The displayed frames (T, H, W, 3) as one JPEG of tiles: (bytes, {"columns", "tile", "count"})."""
    from .explore import thumbnails

    small, _ = thumbnails(frames, tile_width)
    t, h, w = small.shape[:3]
    cols = min(t, 8)
    rows = -(-t // cols)
    sheet = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k in range(t):
        r, c = divmod(k, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = small[k]
    ok, buf = cv2.imencode(".jpg", sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ViewDataError("could not encode the frames as JPEG")
    return buf.tobytes(), {"columns": cols, "tile": [w, h], "count": t}


def _slices(b: BlockCapture, geometry) -> list[dict]:
    """Per key time slice: the displayed frames it covers and the displayed rectangle of its grid."""
    tk, hk, wk = b.key_shape
    out = []
    for t in range(tk):
        first, last = b.key_box((t, 0, 0)), b.key_box((t, hk - 1, wk - 1))
        frames, rect = geometry.input_box_to_frames(first[0], first[1], first[2], last[3], first[4], last[5])
        out.append({"frames": [int(k) for k in frames], "rect": [float(v) for v in rect]})
    return out


def _geometry(geometry) -> dict:
    return {
        "frame_size": list(geometry.frame_size),
        "scale": list(geometry.scale),
        "crop_offset": list(geometry.crop_offset),
        "input_size": list(geometry.input_size),
        "num_frames": int(geometry.num_frames),
        "crop_rect": [float(v) for v in geometry.crop_rect()],
    }


def _query_major(t) -> np.ndarray:
    """(1, C, T, H, W) tensor -> (T*H*W, C) float32, C contiguous."""
    a = t[0].detach().float().cpu().numpy()
    return np.ascontiguousarray(a.reshape(a.shape[0], -1).T, dtype=np.float32)


def pack(b: BlockCapture, clip, *, labels: dict | None = None, budget: int | None = None,
         frames_jpeg: tuple[bytes, dict] | None = None) -> bytes:
    """The payload for one block of one analysis (``clip``: :class:`nlviz.video.Clip`).

    ``labels``: short texts the view shows (model, block, video), put into the page as text only.
    ``frames_jpeg``: a precomputed :func:`atlas` (the same for every block of a clip).
    ``budget``: bytes of factors the browser may get (default :data:`BUDGET_BYTES`); over it, none.
    """
    budget = BUDGET_BYTES if budget is None else int(budget)
    if b.batch_size != 1:
        raise ViewDataError(f"the browser view shows one clip; block {b.name} holds a batch of {b.batch_size}")
    sheet, sheet_info = frames_jpeg if frames_jpeg is not None else atlas(clip.frames)
    arrays: dict[str, np.ndarray] = {"lut_seq": _lut(False), "lut_div": _lut(True)}
    mode = "browser" if fits_budget(b, budget) else "server"
    tokens = _token_header(b) if _is_tokens(b) else None
    if mode == "browser" and tokens is not None:
        arrays.update(_token_arrays(b, tokens["rule"]))
    elif mode == "browser":
        if b.pairwise == "concatenation":
            c = b.theta.shape[1]
            wf = b.concat_weight.detach().float().cpu().numpy()
            arrays["q_term"] = (_query_major(b.theta) @ wf[:c]).astype(np.float32)
            arrays["k_term"] = (_query_major(b.phi) @ wf[c:]).astype(np.float32)
        else:
            arrays["theta"] = _query_major(b.theta)
            arrays["phi"] = _query_major(b.phi)
    header = {
        "version": VERSION,
        "mode": mode,
        "block": b.name,
        "pairwise": b.pairwise,
        "dims": b.dims,
        "scale": float(b.scale),
        "time_groups": int(b.time_groups),
        "signed": bool(b.signed),
        "channels": int(b.channels),
        "attention": "tokens" if tokens is not None else "nonlocal",
        "tokens": tokens,
        "query_shape": list(b.query_shape),
        "key_shape": list(b.key_shape),
        "input_shape": list(b.input_shape),
        "geometry": _geometry(clip.geometry),
        "slices": _slices(b, clip.geometry),
        "source_frames": [int(i) for i in clip.indices],
        "factor_bytes": factor_bytes(b),
        "budget_bytes": int(budget),
        "atlas": sheet_info,
        "labels": {k: str(v) for k, v in (labels or {}).items()},
        "sections": {},
    }
    blobs: list[tuple[str, bytes, str, list[int]]] = [("atlas", sheet, "jpeg", [len(sheet)])]
    blobs += [(name, a.tobytes(), str(a.dtype), list(a.shape)) for name, a in arrays.items()]

    def layout(head_len: int) -> tuple[int, dict]:
        pos = _pad(12 + head_len)
        sections = {}
        for name, data, dtype, shape in blobs:
            sections[name] = {"offset": pos, "length": len(data), "dtype": dtype, "shape": shape}
            pos = _pad(pos + len(data))
        return pos, sections

    # the header holds the offsets, which depend on its own length: iterate until it is stable
    text = json.dumps(header).encode()
    while True:
        total, header["sections"] = layout(len(text))
        new = json.dumps(header).encode()
        if len(new) == len(text):
            text = new
            break
        text = new
    out = bytearray(total)
    out[0:12] = MAGIC + struct.pack("<II", VERSION, len(text))
    out[12:12 + len(text)] = text
    for name, data, _, _ in blobs:
        off = header["sections"][name]["offset"]
        out[off:off + len(data)] = data
    return bytes(out)


def _token_header(b) -> dict:
    head = {"heads": int(b.num_heads), "head_dim": int(b.channels), "query_extra": int(b.query_extra),
            "key_extra": int(b.key_extra), "extra_label": b.extra_label, "rule": _token_rule(b) or "unsupported",
            "kind": b.kind}
    if head["rule"] == "swin_window":
        head.update(window=[int(v) for v in b.rule.window], shift=[int(v) for v in b.rule.shift],
                    padded=[int(v) for v in b.rule.padded], shifted=bool(b.rule.shifted))
    return head


def _token_arrays(b, rule: str) -> dict[str, np.ndarray]:
    """theta (N_q, heads*d) of the grid queries, phi (E_k + N_k, heads*d) of every key token, and the rule's tables."""

    def rows(t, start: int) -> np.ndarray:  # (1, heads, N, d) -> (N - start, heads * d)
        a = t[0, :, start:].detach().float().cpu().numpy()
        return np.ascontiguousarray(a.transpose(1, 0, 2).reshape(a.shape[1], -1), dtype=np.float32)

    out = {"theta": rows(b.q, b.query_extra), "phi": rows(b.k, 0)}
    if rule == "mvit_rel_pos":
        for axis in ("t", "h", "w"):
            out[f"rel_{axis}"] = np.ascontiguousarray(getattr(b.rule, f"r_{axis}").float().cpu().numpy())
    elif rule == "swin_window":
        out["key_token"] = b.rule.key_token.numpy().astype(np.int32)
        out["rel_table"], out["rel_index"] = _swin_bias(b)
    return out


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class ViewData:
    """A payload read back: its header and its arrays (numpy views on the bytes)."""

    header: dict
    arrays: dict[str, np.ndarray]
    atlas_jpeg: bytes


def unpack(data: bytes) -> ViewData:
    """Read a payload written by :func:`pack` (the Python twin of the browser's reader)."""
    if len(data) < 12 or data[:4] != MAGIC:
        raise ViewDataError("not an nlviz view payload (bad magic)")
    version, head_len = struct.unpack("<II", data[4:12])
    if version != VERSION:
        raise ViewDataError(f"view payload version {version}; this nlviz reads version {VERSION}")
    header = json.loads(data[12:12 + head_len].decode())
    arrays, sheet = {}, b""
    for name, s in header["sections"].items():
        off, length = s["offset"], s["length"]
        if off % ALIGN or off + length > len(data):
            raise ViewDataError(f"section {name} is misplaced (offset {off}, length {length})")
        if s["dtype"] == "jpeg":
            sheet = data[off:off + length]
        else:
            arrays[name] = np.frombuffer(data, dtype=s["dtype"], count=int(np.prod(s["shape"])),
                                         offset=off).reshape(s["shape"])
    return ViewData(header, arrays, sheet)


__all__ = ["BUDGET_BYTES", "ViewData", "ViewDataError", "atlas", "browser_supported", "factor_bytes", "fits_budget",
           "pack", "unpack"]
