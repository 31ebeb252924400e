"""
Parameters of the depth-completion node: one frozen dataclass, its specs and a pure validator.

No ROS imports. The node declares one ROS parameter per :data:`PARAM_SPECS` entry (description,
range or choices, read-only flag), reads them into :class:`NodeParams` with
:func:`params_from_mapping` and applies live changes with :func:`with_changes`, so every rule is
checked here and unit-tested without a ROS graph.
"""

from dataclasses import dataclass, fields, replace
import math
import re
from typing import Any, Dict, Mapping, Optional, Tuple

DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
PRECISIONS = ('fp32', 'fp16', 'bf16')
RELIABILITIES = ('best_effort', 'reliable', 'system_default')
DURABILITIES = ('volatile', 'transient_local', 'system_default')
OUTPUT_ENCODINGS = ('32FC1', '16UC1')
OUTPUT_SIZES = ('depth', 'color')


class ParameterError(ValueError):
    """Raised for a parameter value outside its accepted range or set."""


@dataclass(frozen=True)
class ParamSpec:
    """
    How one parameter is declared and checked.

    :param name: Parameter name (also the NodeParams field).
    :param description: One line for ``ros2 param describe`` and the README.
    :param read_only: True when a change needs a restart.
    :param value_range: (low, high) inclusive bounds for numbers, or None.
    :param choices: Accepted strings, or None.
    """

    name: str
    description: str
    read_only: bool = False
    value_range: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[str, ...]] = None


@dataclass(frozen=True)
class NodeParams:
    """Validated parameter values of the node; see :data:`PARAM_SPECS` for each meaning."""

    checkpoint: str = ''
    device: str = 'auto'
    precision: str = 'fp32'
    cpu_threads: int = 0
    exact_sync: bool = False
    sync_slop_s: float = 0.02
    sync_queue_size: int = 10
    output_size: str = 'depth'
    input_qos_reliability: str = 'best_effort'
    input_qos_depth: int = 5
    output_qos_reliability: str = 'reliable'
    output_qos_durability: str = 'volatile'
    output_qos_depth: int = 2
    diagnostics_period_s: float = 1.0
    depth_scale: float = 0.001
    min_depth_m: float = 0.0
    max_depth_m: float = 10.0
    keep_measured: bool = True
    flip_average: bool = False
    colour_offset_x_px: int = 0
    colour_offset_y_px: int = 0
    publish_cloud: bool = True
    cloud_rgb: bool = True
    cloud_decimation: int = 1
    publish_mask: bool = True
    output_encoding: str = '32FC1'
    max_rate_hz: float = 0.0


_SPECS = (
    ParamSpec('checkpoint', 'Path to a .safetensors checkpoint; empty = the packaged default '
              'weights', read_only=True),
    ParamSpec('device', 'Inference device: auto, cpu, cuda or cuda:N (auto = cuda when '
              'available)', read_only=True),
    ParamSpec('precision', 'Inference precision (fp16/bf16 use autocast on CUDA only)',
              read_only=True, choices=PRECISIONS),
    ParamSpec('cpu_threads', 'Threads for CPU inference; 0 = half the cores (at least 1), which '
              'avoids oversubscribing a machine shared with the camera driver and DDS',
              read_only=True, value_range=(0, 256)),
    ParamSpec('exact_sync', 'Match color and depth by identical header stamps instead of '
              'within sync_slop_s', read_only=True),
    ParamSpec('sync_slop_s', 'Largest color/depth stamp difference accepted as one frame, s',
              read_only=True, value_range=(0.0, 1.0)),
    ParamSpec('sync_queue_size', 'Messages kept per input while waiting for a partner',
              read_only=True, value_range=(1, 100)),
    ParamSpec('output_size', 'Output resolution: depth (depth image size) or color (color '
              'image size; depth is upsampled)', read_only=True, choices=OUTPUT_SIZES),
    ParamSpec('input_qos_reliability', 'Reliability of the input subscriptions (best_effort '
              'accepts reliable and best-effort drivers)', read_only=True, choices=RELIABILITIES),
    ParamSpec('input_qos_depth', 'History depth of the input subscriptions', read_only=True,
              value_range=(1, 100)),
    ParamSpec('output_qos_reliability', 'Reliability of the output publishers', read_only=True,
              choices=RELIABILITIES),
    ParamSpec('output_qos_durability', 'Durability of the output publishers', read_only=True,
              choices=DURABILITIES),
    ParamSpec('output_qos_depth', 'History depth of the output publishers', read_only=True,
              value_range=(1, 100)),
    ParamSpec('diagnostics_period_s', 'Period of the /diagnostics status, s', read_only=True,
              value_range=(0.1, 60.0)),
    ParamSpec('depth_scale', 'Meters per unit of 16UC1 input depth (0.001 = millimeters)',
              value_range=(1e-6, 1.0)),
    ParamSpec('min_depth_m', 'Input depth below this is treated as missing, m',
              value_range=(0.0, 100.0)),
    ParamSpec('max_depth_m', 'Input depth beyond this is missing and output beyond it is NaN, m',
              value_range=(0.01, 1000.0)),
    ParamSpec('keep_measured', 'Return measured pixels exactly as measured (else the network '
              'output everywhere)'),
    ParamSpec('flip_average', 'Also run each frame mirrored left-right and average the two '
              'depths (mirror-consistent, slightly lower error, twice the compute)'),
    ParamSpec('colour_offset_x_px', 'Move the color image this many pixels right (negative: '
              'left) before use, for a camera whose color sits off its registered depth '
              '(s2ml_colour_offset estimates it from a bag)', value_range=(-32, 32)),
    ParamSpec('colour_offset_y_px', 'Move the color image this many pixels down (negative: up) '
              'before use; see colour_offset_x_px', value_range=(-32, 32)),
    ParamSpec('publish_cloud', 'Publish the organized point cloud on points'),
    ParamSpec('cloud_rgb', 'Add the rgb field to the point cloud'),
    ParamSpec('cloud_decimation', 'Keep every n-th row and column in the point cloud',
              value_range=(1, 16)),
    ParamSpec('publish_mask', 'Publish the provenance mask (0 invalid, 128 completed, 255 '
              'measured)'),
    ParamSpec('output_encoding', 'Completed depth encoding: 32FC1 (m, NaN unknown) or 16UC1 '
              '(mm, 0 unknown)', choices=OUTPUT_ENCODINGS),
    ParamSpec('max_rate_hz', 'Process at most this many frames per second; 0 = as fast as '
              'possible', value_range=(0.0, 1000.0)),
)

PARAM_SPECS: Dict[str, ParamSpec] = {s.name: s for s in _SPECS}
_TYPES: Dict[str, type] = {f.name: type(f.default) for f in fields(NodeParams)}
assert set(PARAM_SPECS) == set(_TYPES), 'every NodeParams field needs a ParamSpec'


def param_type(name: str) -> type:
    """:return: The Python type (bool, int, float or str) of parameter ``name``."""
    return _TYPES[name]


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(f'parameter {name}={value!r} must be a bool (true/false)')
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ParameterError(f'parameter {name}={value!r} must be an integer')
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f'parameter {name}={value!r} must be a number')
        return float(value)
    if not isinstance(value, str):
        raise ParameterError(f'parameter {name}={value!r} must be a string')
    return value


def validate(params: NodeParams) -> NodeParams:
    """
    Check every value against its range or set and the cross-parameter rules.

    :param params: Values to check.
    :return: ``params`` unchanged.
    :raises ParameterError: Naming the first bad value and what is accepted.
    """
    for name, spec in PARAM_SPECS.items():
        value = _coerce(name, getattr(params, name))
        if spec.value_range is not None:
            lo, hi = spec.value_range
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ParameterError(f'parameter {name}={value!r} is out of range [{lo}, {hi}]')
        if spec.choices is not None and value not in spec.choices:
            raise ParameterError(
                f'parameter {name}={value!r} is not one of {", ".join(spec.choices)}')
    if not DEVICE_PATTERN.match(params.device):
        raise ParameterError(
            f'parameter device={params.device!r} is not one of auto, cpu, cuda, cuda:N')
    if params.min_depth_m >= params.max_depth_m:
        raise ParameterError(
            f'min_depth_m={params.min_depth_m} must be smaller than '
            f'max_depth_m={params.max_depth_m}')
    return params


def params_from_mapping(values: Mapping[str, Any]) -> NodeParams:
    """
    Build and validate parameters from a name -> value mapping (missing names keep defaults).

    :param values: Parameter values, e.g. read from the node or a YAML file.
    :return: Validated parameters.
    :raises ParameterError: For an unknown name or a bad value.
    """
    unknown = sorted(set(values) - set(PARAM_SPECS))
    if unknown:
        raise ParameterError(
            f'unknown parameter(s) {", ".join(unknown)}; known: {", ".join(PARAM_SPECS)}')
    return validate(NodeParams(**{k: _coerce(k, v) for k, v in values.items()}))


def with_changes(params: NodeParams, changes: Mapping[str, Any]) -> NodeParams:
    """
    Apply live changes, refusing read-only parameters.

    :param params: Current values.
    :param changes: Names and new values (names must be known).
    :return: New validated parameters.
    :raises ParameterError: For a read-only or unknown name, or a bad value.
    """
    for name, value in changes.items():
        if name not in PARAM_SPECS:
            raise ParameterError(f'unknown parameter {name!r}')
        if PARAM_SPECS[name].read_only and _coerce(name, value) != getattr(params, name):
            raise ParameterError(
                f'parameter {name} is read-only (current value {getattr(params, name)!r}); '
                'restart the node to change it')
    return validate(replace(params, **{k: _coerce(k, v) for k, v in changes.items()}))
