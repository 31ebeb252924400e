"""package.xml must declare, by rosdep key, every third-party module the package imports."""

import ast
from pathlib import Path
import sys
import xml.etree.ElementTree as ET

REPO = Path(__file__).resolve().parents[1]
# Import name -> rosdep key that provides it on a ROS install.
ROSDEP_KEYS = {
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'torch': 'python3-torch',
    'safetensors': 'python3-safetensors-pip', 'yaml': 'python3-yaml', 'scipy': 'python3-scipy',
    'matplotlib': 'python3-matplotlib', 'tqdm': 'python3-tqdm',
    'rosbags': 'python3-rosbags-pip', 'pyrealsense2': 'librealsense2',
    'rclpy': 'rclpy', 'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs',
    'diagnostic_msgs': 'diagnostic_msgs', 'rcl_interfaces': 'rcl_interfaces',
    'ament_index_python': 'ament_index_python', 'launch': 'launch', 'launch_ros': 'launch_ros',
}
# Optional helper for machines without a system libusb (pip set-up only).
NOT_ROSDEP = {'libusb_package'}


def _imported_top_level(paths):
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split('.')[0])
    return names


def test_every_runtime_import_has_an_exec_depend():
    manifest = ET.parse(REPO / 'package.xml').getroot()
    assert manifest.get('format') == '3'
    declared = {e.text for e in manifest.iter('exec_depend')} | \
        {e.text for e in manifest.iter('depend')}
    sources = list((REPO / 's2ml_ros').rglob('*.py')) + list((REPO / 'launch').glob('*.py'))
    third_party = {name for name in _imported_top_level(sources)
                   if name not in sys.stdlib_module_names and name != 's2ml_ros'}
    unknown = sorted(third_party - set(ROSDEP_KEYS) - NOT_ROSDEP)
    assert not unknown, f'imports without a known rosdep key: {unknown}'
    missing = sorted(ROSDEP_KEYS[n] for n in third_party - NOT_ROSDEP
                     if ROSDEP_KEYS[n] not in declared)
    assert not missing, f'package.xml lacks exec_depend {missing}'


def test_package_metadata_agrees_with_setup_py():
    manifest = ET.parse(REPO / 'package.xml').getroot()
    setup = (REPO / 'setup.py').read_text()
    assert manifest.findtext('name') == 's2ml_ros'
    assert f"version='{manifest.findtext('version')}'" in setup
    assert manifest.find('export/build_type').text == 'ament_python'
