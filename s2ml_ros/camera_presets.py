"""
Topic remappings that connect the node to common RGB-D drivers (used by the launch file).

Pure Python; no ROS. Every preset feeds the node color, depth *registered to color* and the
color CameraInfo, which is what the node expects (see s2ml_ros.completion).

- ``realsense``: realsense-ros 4.x with ``align_depth.enable:=true`` (and preferably
  ``enable_sync:=true``, which gives color and depth identical stamps); default namespace
  ``/camera/camera``.
- ``orbbec``: OrbbecSDK_ROS2 with ``depth_registration:=true``; default namespace ``/camera``.
- ``azure_kinect``: Azure_Kinect_ROS_Driver (``depth_to_rgb`` is depth registered to color; its
  ``depth_unit`` may be 16UC1 mm or 32FC1 m, both accepted); default namespace ``''``.
- ``generic``: the node's own names, optionally overridden topic by topic.
"""

from typing import Dict, List, Optional, Tuple

# preset -> (default namespace, color image, depth image, color camera info), relative to it.
CAMERA_PRESETS: Dict[str, Tuple[str, str, str, str]] = {
    'realsense': ('/camera/camera', 'color/image_raw', 'aligned_depth_to_color/image_raw',
                  'color/camera_info'),
    'orbbec': ('/camera', 'color/image_raw', 'depth/image_raw', 'color/camera_info'),
    'azure_kinect': ('', 'rgb/image_raw', 'depth_to_rgb/image_raw', 'rgb/camera_info'),
    'generic': ('', 'rgb/image', 'depth/image', 'rgb/camera_info'),
}
NODE_INPUTS = ('rgb/image', 'depth/image', 'rgb/camera_info')


class PresetError(ValueError):
    """Raised for an unknown camera preset."""


def _join(namespace: str, topic: str) -> str:
    if topic.startswith('/') or not namespace:
        return topic
    return namespace.rstrip('/') + '/' + topic


def remappings_for(preset: str, namespace: Optional[str] = None, color: str = '',
                   depth: str = '', info: str = '') -> List[Tuple[str, str]]:
    """
    Remappings from the node's input names to a driver's topics.

    :param preset: One of :data:`CAMERA_PRESETS`.
    :param namespace: Camera namespace; None = the preset's default.
    :param color: Overrides the color image topic ('' = preset).
    :param depth: Overrides the depth image topic ('' = preset).
    :param info: Overrides the camera info topic ('' = preset).
    :return: [(node topic, driver topic)] for rgb/image, depth/image and rgb/camera_info; a
        pair whose two names are equal is left out.
    :raises PresetError: For an unknown preset.
    """
    if preset not in CAMERA_PRESETS:
        raise PresetError(
            f'unknown camera preset {preset!r}; accepted: {", ".join(CAMERA_PRESETS)}')
    default_ns, *topics = CAMERA_PRESETS[preset]
    ns = default_ns if namespace is None else namespace
    chosen = [override or _join(ns, topic)
              for override, topic in zip((color, depth, info), topics)]
    return [(src, dst) for src, dst in zip(NODE_INPUTS, chosen) if src != dst]
