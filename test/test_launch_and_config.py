"""Launch file, camera presets, parameter file, RViz layout and Fast DDS profile."""

import importlib.util
import xml.etree.ElementTree as ElementTree

from node_harness import REPO
import pytest
from s2ml_ros.camera_presets import CAMERA_PRESETS, PresetError, remappings_for
from s2ml_ros.params import NodeParams, params_from_mapping
import yaml

CONFIG = REPO / 'config'


def test_params_file_lists_every_parameter_with_valid_defaults():
    data = yaml.safe_load((CONFIG / 's2ml.yaml').read_text())
    values = data['/**']['ros__parameters']
    assert set(values) == set(NodeParams.__dataclass_fields__)
    assert params_from_mapping(values) == NodeParams()


def test_rviz_layout_shows_the_node_outputs_with_matching_qos():
    layout = yaml.safe_load((CONFIG / 's2ml.rviz').read_text())
    displays = {d['Name']: d for d in layout['Visualization Manager']['Displays']}
    cloud, depth = displays['Completed cloud'], displays['Completed depth']
    assert cloud['Class'] == 'rviz_default_plugins/PointCloud2'
    assert cloud['Topic']['Value'] == '/points'
    assert depth['Class'] == 'rviz_default_plugins/Image'
    assert depth['Topic']['Value'] == '/depth_completed/image'
    # The node publishes reliable by default: a reliable subscription connects.
    assert NodeParams().output_qos_reliability == 'reliable'
    for display in (cloud, depth):
        assert display['Topic']['Reliability Policy'] == 'Reliable'
        assert display['Topic']['Durability Policy'] == 'Volatile'


def test_fastdds_profile_is_the_default_participant_profile():
    root = ElementTree.parse(CONFIG / 'fastdds_large_data.xml').getroot()
    ns = {'p': 'http://www.eprosima.com'}
    participant = root.find('p:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    assert participant.find('p:rtps/p:useBuiltinTransports', ns).text == 'false'
    segments = [int(e.text) for e in root.iter('{http://www.eprosima.com}segment_size')]
    assert segments == [64 * 1024 * 1024]


def test_camera_presets_remap_to_registered_depth():
    assert remappings_for('realsense') == [
        ('rgb/image', '/camera/camera/color/image_raw'),
        ('depth/image', '/camera/camera/aligned_depth_to_color/image_raw'),
        ('rgb/camera_info', '/camera/camera/color/camera_info')]
    assert remappings_for('orbbec', '/cam')[1] == ('depth/image', '/cam/depth/image_raw')
    assert remappings_for('azure_kinect')[1] == ('depth/image', 'depth_to_rgb/image_raw')
    assert remappings_for('generic') == []
    assert remappings_for('generic', color='/x/rgb') == [('rgb/image', '/x/rgb')]
    assert set(CAMERA_PRESETS) == {'realsense', 'orbbec', 'azure_kinect', 'generic'}
    with pytest.raises(PresetError, match="'kinect'; accepted: realsense"):
        remappings_for('kinect')


def test_launch_file_builds_the_node():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI; this '
                        'test runs in a ROS 2 install with s2ml_ros built')
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    from launch_ros.actions import Node
    try:
        get_package_share_directory('s2ml_ros')
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        pytest.skip(f's2ml_ros is not installed in an ament prefix ({exc}); build it with colcon')
    spec = importlib.util.spec_from_file_location('s2ml_launch', REPO / 'launch' /
                                                  's2ml.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.entities
    declared = {e.name for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert {'camera', 'checkpoint', 'device', 'params_file'} <= declared
    context = LaunchContext()
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
    context.launch_configurations.update({'camera': 'orbbec', 'checkpoint': '/w/s2ml.safetensors'})
    opaque = [e for e in entities if isinstance(e, OpaqueFunction)][0]
    nodes = [a for a in opaque.execute(context) if isinstance(a, Node)]
    assert len(nodes) == 1
    remaps = getattr(nodes[0], '_Node__remappings', None)
    if remaps is not None:
        def text(value):
            return perform_substitutions(context, normalize_to_list_of_substitutions(value))
        performed = [(text(a), text(b)) for a, b in remaps]
        assert ('depth/image', '/camera/depth/image_raw') in performed
