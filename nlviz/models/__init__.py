"""Backbones with non-local blocks and the registry that names them."""

from .registry import build, get_config, list_models, register, register_builder
from .resnet3d import Bottleneck, NonLocalConfig, ResNet3d, ResNet3dConfig, count_parameters
from .inception_i3d import (
    PROBE_LABEL,
    PROBE_STAGES,
    FeatureSimilarityProbe,
    InceptionI3d,
    InceptionI3dConfig,
    build_inception_i3d,
    config as _inception_i3d_config,
)

# DeepMind's RGB Inception-v1 I3D (Kinetics-400); probes are added with stages=(...)
register_builder("i3d_inception", config=_inception_i3d_config, builder=build_inception_i3d)

__all__ = [
    "Bottleneck",
    "FeatureSimilarityProbe",
    "InceptionI3d",
    "InceptionI3dConfig",
    "PROBE_LABEL",
    "PROBE_STAGES",
    "NonLocalConfig",
    "ResNet3d",
    "ResNet3dConfig",
    "build",
    "count_parameters",
    "get_config",
    "list_models",
    "register",
    "register_builder",
]
