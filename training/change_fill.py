"""
Copy a checkpoint with other settings of its parameter-free initial fill D_0 or output limits.

``initial_fill``, ``fill_iterations``, ``fill_solver``, ``fill_guide``,
``depth_scale_cap_m``, ``far_change_cap`` and the ``large_hole_*`` fade have no weights, so
trained weights can run on another setting without retraining (measure it: the cascade learned
to refine the fill it was trained on). The copy records the change and the source file's
SHA-256 in its provenance. Example, from the repository root::

    python -m training.change_fill runs/my_run/best.safetensors my_sor.safetensors \
        --fill-solver sor
"""

import argparse
import dataclasses
from pathlib import Path
import sys
from typing import Any, List, Mapping, Optional

from s2ml_ros.model import (CheckpointError, ConfigError, load_checkpoint, S2ML, S2MLConfig,
                            save_checkpoint)
from s2ml_ros.model.config import (FILL_GUIDES, FILL_SOLVERS, INITIAL_FILLS,
                                   PARAMETER_FREE_FIELDS)


def _check_names(changes: Mapping[str, Any]) -> None:
    unknown = sorted(set(changes) - set(PARAMETER_FREE_FIELDS))
    if unknown:
        raise ConfigError(f'only {list(PARAMETER_FREE_FIELDS)} can change without retraining, '
                          f'got {unknown}')


def check_settings(changes: Mapping[str, Any]) -> None:
    """
    Check settings meant for trained weights before there are any (e.g. before training).

    :param changes: Field names and values.
    :raises ConfigError: For a field with weights behind it, or a value the model config
        refuses (checked against the default config).
    """
    _check_names(changes)
    S2MLConfig(**changes)


def with_settings(model: S2ML, **changes) -> S2ML:
    """
    Put the same weights under other parameter-free settings.

    :param model: A network.
    :param changes: New values of fields in
        :data:`s2ml_ros.model.config.PARAMETER_FREE_FIELDS`.
    :return: A new network with ``model``'s weights and the changed config.
    :raises ConfigError: For a field with weights behind it or an invalid value.
    """
    _check_names(changes)
    changed = S2ML(dataclasses.replace(model.config, **changes))
    changed.load_state_dict(model.state_dict())
    return changed


def change_fill(source: Path, destination: Path,
                extra_provenance: Optional[Mapping[str, Any]] = None, **changes) -> Path:
    """
    Write ``source``'s weights to ``destination`` with some fill settings changed.

    :param source: A checkpoint written by :func:`s2ml_ros.model.save_checkpoint`.
    :param destination: The copy (may not be ``source``).
    :param extra_provenance: Entries added to the copy's provenance (e.g. how the source was
        made).
    :param changes: New values of fields in
        :data:`s2ml_ros.model.config.PARAMETER_FREE_FIELDS`; None keeps the source's.
    :return: ``destination``.
    :raises CheckpointError: If ``source`` is unusable.
    :raises ConfigError: For an unknown field or an invalid value.
    """
    if Path(destination).resolve() == Path(source).resolve():
        raise ValueError(f'destination {destination} is the source checkpoint; write a copy')
    model, info = load_checkpoint(source)
    changed = with_settings(model, **{k: v for k, v in changes.items() if v is not None})
    config = changed.config
    provenance = dict(info.provenance)
    provenance['fill_changed'] = {
        'source_sha256': info.sha256,
        'from': {k: getattr(info.config, k) for k in PARAMETER_FREE_FIELDS},
        'to': {k: getattr(config, k) for k in PARAMETER_FREE_FIELDS},
    }
    provenance.pop('saved_at', None)
    provenance.update(extra_provenance or {})
    return save_checkpoint(destination, changed, provenance)


def main(argv: Optional[List[str]] = None) -> Path:
    """Command line entry point; exits with a message on bad input."""
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('source', type=Path, help='checkpoint to copy')
    p.add_argument('destination', type=Path, help='where to write the copy')
    p.add_argument('--initial-fill', choices=list(INITIAL_FILLS), default=None)
    p.add_argument('--fill-iterations', type=int, default=None)
    p.add_argument('--fill-solver', choices=list(FILL_SOLVERS), default=None)
    p.add_argument('--fill-guide', choices=list(FILL_GUIDES), default=None)
    p.add_argument('--depth-scale-cap', type=float, default=None, metavar='METERS',
                   help='depth_scale_cap_m (0 = off)')
    p.add_argument('--far-change-cap', type=float, default=None, metavar='SHARE',
                   help='far_change_cap (0 = off)')
    p.add_argument('--large-hole-change', type=float, default=None, metavar='SHARE',
                   help='large_hole_change: share of the change to D_0 kept in large hole '
                        'regions (1 = off)')
    p.add_argument('--large-hole-start', type=float, default=None, metavar='SHARE',
                   help='large_hole_start: region share of the frame where the fade starts')
    p.add_argument('--large-hole-end', type=float, default=None, metavar='SHARE',
                   help='large_hole_end: region share of the frame where it is complete')
    args = p.parse_args(argv)
    try:
        path = change_fill(args.source, args.destination, initial_fill=args.initial_fill,
                           fill_iterations=args.fill_iterations, fill_solver=args.fill_solver,
                           fill_guide=args.fill_guide,
                           depth_scale_cap_m=args.depth_scale_cap,
                           far_change_cap=args.far_change_cap,
                           large_hole_change=args.large_hole_change,
                           large_hole_start=args.large_hole_start,
                           large_hole_end=args.large_hole_end)
    except (CheckpointError, ConfigError, ValueError) as exc:
        raise SystemExit(f'error: {exc}') from exc
    print(f'wrote {path}')
    return path


if __name__ == '__main__':
    main(sys.argv[1:])
