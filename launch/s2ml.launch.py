"""
Launch the s2ml depth-completion node with config/s2ml.yaml and a camera preset.

Examples::

    ros2 launch s2ml_ros s2ml.launch.py camera:=realsense checkpoint:=/path/s2ml_tiny.safetensors
    ros2 launch s2ml_ros s2ml.launch.py camera:=orbbec device:=cuda
    ros2 launch s2ml_ros s2ml.launch.py camera:=generic color_topic:=/cam/rgb
        depth_topic:=/cam/depth_registered info_topic:=/cam/rgb_info   (one line)

The camera driver is not started here: start it with depth registered to color (RealSense
``align_depth.enable:=true enable_sync:=true``, Orbbec ``depth_registration:=true``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from s2ml_ros.camera_presets import CAMERA_PRESETS, remappings_for

ARGUMENTS = (
    ('camera', 'realsense', 'Camera preset: ' + ', '.join(CAMERA_PRESETS)),
    ('camera_namespace', 'default', "Namespace of the camera topics; 'default' = the preset's"),
    ('color_topic', '', 'Color image topic (overrides the preset)'),
    ('depth_topic', '', 'Depth image topic, registered to color (overrides the preset)'),
    ('info_topic', '', 'Color CameraInfo topic (overrides the preset)'),
    ('checkpoint', '', 'Checkpoint .safetensors; empty = value in the params file'),
    ('device', '', 'auto, cpu, cuda or cuda:N; empty = value in the params file'),
    ('params_file', '', 'Node parameters; empty = the installed config/s2ml.yaml'),
    ('namespace', '', 'Namespace of the node (its output topics)'),
    ('node_name', 's2ml_node', 'Name of the node'),
    ('use_sim_time', 'false', 'Use /clock (bag playback with --clock)'),
    ('log_level', 'info', 'Node log level'),
    ('fastdds_large_data', 'false',
     'Set FASTDDS_DEFAULT_PROFILES_FILE to the shipped large-data profile for this node; '
     'export it for the whole graph instead when the camera runs in another launch'),
)


def _setup(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    share = get_package_share_directory('s2ml_ros')
    params_file = arg('params_file') or os.path.join(share, 'config', 's2ml.yaml')
    namespace = arg('camera_namespace')
    remappings = remappings_for(arg('camera'), None if namespace == 'default' else namespace,
                                arg('color_topic'), arg('depth_topic'), arg('info_topic'))
    overrides = {'use_sim_time': arg('use_sim_time').lower() in ('true', '1', 'yes')}
    for name in ('checkpoint', 'device'):
        if arg(name):
            overrides[name] = arg(name)
    node = Node(package='s2ml_ros', executable='s2ml_node', name=arg('node_name'),
                namespace=arg('namespace'), output='screen', emulate_tty=True,
                parameters=[params_file, overrides], remappings=remappings,
                arguments=['--ros-args', '--log-level', arg('log_level')])
    return [node]


def generate_launch_description():
    """Declare the arguments and build the node once they are known."""
    share = get_package_share_directory('s2ml_ros')
    actions = [DeclareLaunchArgument(name, default_value=default, description=description)
               for name, default, description in ARGUMENTS]
    actions.append(SetEnvironmentVariable(
        'FASTDDS_DEFAULT_PROFILES_FILE',
        os.path.join(share, 'config', 'fastdds_large_data.xml'),
        condition=IfCondition(LaunchConfiguration('fastdds_large_data'))))
    actions.append(OpaqueFunction(function=_setup))
    return LaunchDescription(actions)
