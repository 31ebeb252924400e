"""The pure core (model, pipeline, geometry, ...) must import no ROS module."""

import json
import subprocess
import sys

import pytest

ROS_MODULES = ('rclpy', 'sensor_msgs', 'std_msgs', 'builtin_interfaces', 'diagnostic_msgs',
               'rcl_interfaces', 'cv_bridge', 'message_filters', 'launch', 'launch_ros')

PURE_MODULES = [
    's2ml_ros', 's2ml_ros.model', 's2ml_ros.pipeline', 's2ml_ros.geometry', 's2ml_ros.metrics',
    's2ml_ros.baselines', 's2ml_ros.simulation', 's2ml_ros.bag_io', 's2ml_ros.bag_eval',
    's2ml_ros.offline_eval', 's2ml_ros.eval_report', 's2ml_ros.realsense_source',
    's2ml_ros.realsense_offline',
]


def _imported_after(module):
    code = (f'import importlib, json, sys; importlib.import_module({module!r}); '
            f'print(json.dumps(sorted(sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize('module', PURE_MODULES)
def test_pure_module_imports_no_ros(module):
    loaded = _imported_after(module)
    leaked = sorted(m for m in loaded if m.split('.')[0] in ROS_MODULES)
    assert not leaked, f'{module} imports ROS modules: {leaked}'


def test_package_import_is_light():
    loaded = _imported_after('s2ml_ros')
    assert 'torch' not in loaded and 'rclpy' not in loaded
