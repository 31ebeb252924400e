"""S2ML network: config, modules, builder and self-describing checkpoints."""

from pathlib import Path
from typing import Optional, Union

from .checkpoint import (CheckpointError, CheckpointInfo, load_checkpoint, read_checkpoint,
                         save_checkpoint)
from .config import ConfigError, get_config, S2ML_VARIANTS, S2MLConfig
from .s2ml import S2ML

__all__ = [
    'build_s2ml', 'CheckpointError', 'CheckpointInfo', 'ConfigError', 'DEFAULT_CHECKPOINT',
    'get_config', 'load_checkpoint', 'read_checkpoint', 'S2ML', 'S2ML_VARIANTS', 'S2MLConfig',
    'save_checkpoint',
]

# Default weights shipped inside the package (trained on the simulator; see README).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / 'weights' / 's2ml_tiny.safetensors'


def build_s2ml(variant: Union[str, S2MLConfig] = 'tiny',
               checkpoint: Optional[Union[str, Path]] = None) -> S2ML:
    """
    Build an S2ML model, ready for inference (eval mode, on the CPU).

    :param variant: A name from :data:`S2ML_VARIANTS` or a full :class:`S2MLConfig`.
    :param checkpoint: Optional checkpoint to load. Its own config must equal the requested one.
    :return: The model; randomly initialised when no checkpoint is given.
    :raises ConfigError: For an unknown variant.
    :raises CheckpointError: If the checkpoint is unusable or describes another architecture.
    """
    config = get_config(variant) if isinstance(variant, str) else variant
    if checkpoint is None:
        return S2ML(config).eval()
    model, info = load_checkpoint(checkpoint)
    if info.config != config:
        raise CheckpointError(
            f'checkpoint {checkpoint} holds variant {info.variant!r} ({info.config}), '
            f'not the requested {config.variant!r} ({config})')
    return model
