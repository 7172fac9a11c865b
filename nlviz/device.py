"""Where forward passes run: CUDA when a GPU is present, else the CPU; ``NLVIZ_DEVICE`` forces one.

    choose()            # torch.device("cuda") when available, else cpu (NLVIZ_DEVICE=cpu|cuda|auto overrides)
    choose("cuda")      # DeviceError on a machine without a usable GPU
    on_device(model, device)   # the model itself when it is there already, else a cached copy there

Shared models (the app keeps one per name for every browser session) are never moved: a model
asked for on another device is copied there once and the copy is cached for as long as the
original lives, so a session still running the CPU original is not disturbed.
"""

from __future__ import annotations

import os
import threading
import weakref

import torch
from torch import nn

ENV = "NLVIZ_DEVICE"
CHOICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """A device that cannot be used here (cuda without a GPU, an unknown name)."""


def choose(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``requested`` if given, else the ``NLVIZ_DEVICE`` environment variable,
    else "auto" (cuda when ``torch.cuda.is_available()``, else cpu). "cuda:1" and the like are accepted."""
    if isinstance(requested, torch.device):
        text = str(requested)
    else:
        text = (requested or os.environ.get(ENV) or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            source = f" (from {ENV})" if not requested else ""
            raise DeviceError(f"device {text!r}{source} asked for, but no CUDA GPU is available here; "
                              f"use cpu or auto")
        return torch.device(text)
    raise DeviceError(f"unknown device {text!r}{'' if requested else f' in {ENV}'}; expected one of {', '.join(CHOICES)}")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (cpu for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


_COPIES: "weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Module]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def on_device(model: nn.Module, device: torch.device | str) -> nn.Module:
    """``model`` when it already lives on ``device``; else a copy moved there, made once per
    (model, device) and kept while the model lives. The original is left untouched."""
    device = torch.device(device)
    here = model_device(model)
    if here.type == device.type and (device.index is None or here.index == device.index):
        return model
    key = str(device)
    with _LOCK:
        copies = _COPIES.setdefault(model, {})
        if key not in copies:
            import copy

            copies[key] = copy.deepcopy(model).to(device)
        return copies[key]


__all__ = ["CHOICES", "ENV", "DeviceError", "choose", "model_device", "on_device"]
