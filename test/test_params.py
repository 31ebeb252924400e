"""Unit tests of the node parameter rules (s2ml_ros.params)."""

from dataclasses import fields, replace

import pytest

from s2ml_ros.params import (NodeParams, PARAM_SPECS, ParameterError, params_from_mapping,
                             validate, with_changes)


def test_defaults_are_valid():
    assert validate(NodeParams()) == NodeParams()


def test_every_field_has_a_described_spec():
    for f in fields(NodeParams):
        assert PARAM_SPECS[f.name].description


@pytest.mark.parametrize('name,value,match', [
    ('max_depth_m', -1.0, r'max_depth_m=-1.0 is out of range \[0.01, 1000.0\]'),
    ('max_depth_m', float('nan'), 'out of range'),
    ('sync_queue_size', 0, r'sync_queue_size=0 is out of range \[1, 100\]'),
    ('precision', 'fp8', 'precision=.fp8. is not one of fp32, fp16, bf16'),
    ('device', 'gpu', 'device=.gpu. is not one of auto, cpu, cuda, cuda:N'),
    ('output_encoding', '8UC1', 'not one of 32FC1, 16UC1'),
    ('input_qos_reliability', 'sometimes', 'not one of best_effort, reliable'),
    ('cloud_decimation', 17, r'out of range \[1, 16\]'),
    ('colour_offset_x_px', 40, r'colour_offset_x_px=40 is out of range \[-32, 32\]'),
    ('colour_offset_y_px', 1.5, 'must be an integer'),
    ('keep_measured', 'yes', 'must be a bool'),
    ('sync_queue_size', 2.5, 'must be an integer'),
    ('checkpoint', 3, 'must be a string'),
])
def test_bad_values_name_value_and_accepted(name, value, match):
    with pytest.raises(ParameterError, match=match):
        params_from_mapping({name: value})


def test_min_must_be_below_max():
    with pytest.raises(ParameterError, match='min_depth_m=5.0 must be smaller than max_depth_m'):
        validate(replace(NodeParams(), min_depth_m=5.0, max_depth_m=4.0))


def test_integers_are_accepted_for_float_parameters():
    p = params_from_mapping({'max_depth_m': 8, 'sync_slop_s': 0})
    assert p.max_depth_m == 8.0 and isinstance(p.max_depth_m, float)


def test_unknown_name_is_rejected():
    with pytest.raises(ParameterError, match='unknown parameter.*max_range'):
        params_from_mapping({'max_range': 3.0})


def test_live_changes_apply_and_read_only_refuse():
    p = NodeParams()
    q = with_changes(p, {'max_depth_m': 4.0, 'publish_cloud': False, 'keep_measured': False})
    assert (q.max_depth_m, q.publish_cloud, q.keep_measured) == (4.0, False, False)
    with pytest.raises(ParameterError, match='checkpoint is read-only'):
        with_changes(p, {'checkpoint': '/x.safetensors'})
    # Setting a read-only parameter to its current value is not a change.
    assert with_changes(p, {'device': 'auto'}) == p
    with pytest.raises(ParameterError, match='out of range'):
        with_changes(p, {'max_rate_hz': -2.0})


def test_parameter_error_is_value_error():
    assert issubclass(ParameterError, ValueError)
