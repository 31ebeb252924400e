"""
Self-describing S2ML checkpoints in safetensors format.

A checkpoint is one ``.safetensors`` file: the model tensors plus string metadata holding the
format tag, the variant, the full :class:`S2MLConfig` (JSON) and the training provenance (JSON).
Loading rebuilds the model from the file alone and never unpickles anything.
"""

from dataclasses import dataclass, field
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from safetensors import safe_open, SafetensorError
from safetensors.torch import save
import torch

from .config import ConfigError, S2MLConfig
from .s2ml import S2ML

FORMAT_TAG = 's2ml_ros.checkpoint.v1'
PathLike = Union[str, os.PathLike]

# Prefixes that DistributedDataParallel and torch.compile add to parameter names.
_WRAPPER_PREFIXES = ('module.', '_orig_mod.')


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not match the model it describes."""


@dataclass(frozen=True)
class CheckpointInfo:
    """
    What a loaded checkpoint says about itself.

    :param path: File it was read from.
    :param sha256: SHA-256 of the file's bytes (hex).
    :param variant: Variant name from the config.
    :param config: The model config.
    :param provenance: Training provenance (dataset, seed, command, steps, ...).
    """

    path: str
    sha256: str
    variant: str
    config: S2MLConfig
    provenance: Dict[str, Any] = field(default_factory=dict)


def file_sha256(path: PathLike) -> str:
    """:return: Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Strip DDP / torch.compile name prefixes so any wrapped model saves the same keys."""
    cleaned = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        cleaned[key] = value
    return cleaned


def save_checkpoint(path: PathLike, model: torch.nn.Module,
                    provenance: Optional[Mapping[str, Any]] = None) -> Path:
    """
    Write ``model`` (an :class:`S2ML`, possibly DDP- or compile-wrapped) to a safetensors file.

    The file is written to a temporary name and renamed, so a crash never leaves a truncated
    checkpoint under the final name.

    :param path: Destination, conventionally ``*.safetensors``.
    :param model: The model.
    :param provenance: JSON-serialisable facts about how it was trained.
    :return: The path written.
    """
    core = model
    while hasattr(core, 'module') or hasattr(core, '_orig_mod'):
        core = getattr(core, 'module', None) or getattr(core, '_orig_mod')
    if not isinstance(core, S2ML):
        raise TypeError(f'expected an S2ML model, got {type(core).__name__}')
    tensors = {k: v.detach().to('cpu').contiguous()
               for k, v in clean_state_dict(core.state_dict()).items()}
    record = dict(provenance or {})
    record.setdefault('saved_at', datetime.datetime.now(datetime.timezone.utc).isoformat())
    metadata = {
        'format': FORMAT_TAG,
        'variant': core.config.variant,
        'config': json.dumps(core.config.to_dict(), sort_keys=True),
        'provenance': json.dumps(record, sort_keys=True, default=str),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.partial')
    # Written through a plain open() rather than safetensors' save_file, which creates files
    # only their owner can read: the node often runs as another user than the trainer, so the
    # file gets the permissions the umask gives any new file.
    tmp.write_bytes(save(tensors, metadata=metadata))
    os.replace(tmp, path)
    return path


def read_checkpoint(path: PathLike) -> Tuple[Dict[str, torch.Tensor], CheckpointInfo]:
    """
    Read and validate a checkpoint's tensors and metadata without building a model.

    :raises CheckpointError: Naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} does not exist or is not a file')
    try:
        with safe_open(str(path), framework='pt', device='cpu') as reader:
            metadata = reader.metadata() or {}
            tensors = {key: reader.get_tensor(key) for key in reader.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f'checkpoint {path} is not a readable safetensors file (truncated or corrupted?): '
            f'{exc}') from exc
    if metadata.get('format') != FORMAT_TAG:
        raise CheckpointError(
            f'checkpoint {path} has format {metadata.get("format")!r}, expected {FORMAT_TAG!r} '
            f'(was it written by s2ml_ros.model.save_checkpoint?)')
    try:
        values = json.loads(metadata['config'])
        # Checkpoints written before the initial fill existed ran the cascade on zeros, before
        # fill_iterations existed on 5 sweeps, before fill_solver existed on Jacobi sweeps,
        # before fill_guide existed on grey affinities; the dataclass defaults must not
        # silently give them a fill they were not trained with.
        if isinstance(values, dict):
            values.setdefault('initial_fill', 'zeros')
            values.setdefault('fill_iterations', 5)
            values.setdefault('fill_solver', 'jacobi')
            values.setdefault('fill_guide', 'gray')
        config = S2MLConfig.from_dict(values)
        provenance = json.loads(metadata.get('provenance', '{}'))
    except (KeyError, json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise CheckpointError(f'checkpoint {path} carries an invalid model config: {exc}') \
            from exc
    info = CheckpointInfo(path=str(path), sha256=file_sha256(path), variant=config.variant,
                          config=config, provenance=provenance)
    return tensors, info


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[S2ML, CheckpointInfo]:
    """
    Rebuild the model a checkpoint describes and load its weights.

    :param path: A file written by :func:`save_checkpoint`.
    :param device: Where to put the model.
    :return: (model in eval mode, checkpoint info).
    :raises CheckpointError: If the file is missing, unreadable, or its tensors do not match its
        own config (missing, unexpected or mis-shaped tensors are listed).
    """
    tensors, info = read_checkpoint(path)
    model = S2ML(info.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mis_shaped = sorted(f'{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}'
                        for k, v in expected.items()
                        if k in tensors and tensors[k].shape != v.shape)
    if missing or unexpected or mis_shaped:
        problems = []
        for label, items in (('missing', missing), ('unexpected', unexpected),
                             ('wrong shape', mis_shaped)):
            if items:
                shown = ', '.join(items[:5]) + (' ...' if len(items) > 5 else '')
                problems.append(f'{len(items)} {label} tensor(s): {shown}')
        raise CheckpointError(
            f'checkpoint {path} does not match its own {info.variant!r} config: '
            + '; '.join(problems))
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), info
