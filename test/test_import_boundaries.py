"""
Import boundaries: the pure core imports no ROS module; message code imports no torch.

Each module is imported in a fresh interpreter and the loaded module names are checked.
"""

import json
import subprocess
import sys

import pytest

ROS_MODULES = ('rclpy', 'sensor_msgs', 'std_msgs', 'builtin_interfaces', 'diagnostic_msgs',
               'rcl_interfaces', 'cv_bridge', 'message_filters', 'launch', 'launch_ros')

# Model, inference, geometry, metrics, simulation and offline tools: no ROS at all.
PURE_MODULES = [
    's2ml_ros', 's2ml_ros.model', 's2ml_ros.pipeline', 's2ml_ros.geometry', 's2ml_ros.metrics',
    's2ml_ros.baselines', 's2ml_ros.simulation', 's2ml_ros.bag_io', 's2ml_ros.bag_eval',
    's2ml_ros.offline_eval', 's2ml_ros.eval_report', 's2ml_ros.realsense_source',
    's2ml_ros.realsense_offline', 's2ml_ros.colour_offset_tool',
]
# The node's building blocks: neither ROS nor torch, so they are cheap to test and reuse.
NODE_CORE_MODULES = [
    's2ml_ros.conversions', 's2ml_ros.sync', 's2ml_ros.params', 's2ml_ros.pointcloud',
    's2ml_ros.frame_slot', 's2ml_ros.completion', 's2ml_ros.node_stats',
    's2ml_ros.camera_presets', 's2ml_ros.registration',
]


def _imported_after(module):
    code = (f'import importlib, json, sys; importlib.import_module({module!r}); '
            f'print(json.dumps(sorted(sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                         text=True).stdout
    return {name.split('.')[0] for name in json.loads(out.strip().splitlines()[-1])}


@pytest.mark.parametrize('module', PURE_MODULES + NODE_CORE_MODULES)
def test_module_imports_no_ros(module):
    leaked = sorted(_imported_after(module) & set(ROS_MODULES))
    assert not leaked, f'{module} imports ROS modules: {leaked}'


@pytest.mark.parametrize('module', ['s2ml_ros'] + NODE_CORE_MODULES)
def test_module_imports_no_torch(module):
    assert 'torch' not in _imported_after(module), f'{module} imports torch'
