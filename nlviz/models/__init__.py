"""Backbones with non-local blocks and the registry that names them."""

from .registry import build, get_config, list_models, register
from .resnet3d import Bottleneck, NonLocalConfig, ResNet3d, ResNet3dConfig, count_parameters

__all__ = [
    "Bottleneck",
    "NonLocalConfig",
    "ResNet3d",
    "ResNet3dConfig",
    "build",
    "count_parameters",
    "get_config",
    "list_models",
    "register",
]
