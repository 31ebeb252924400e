"""
Procedural RGB-D simulation: indoor scenes with exact depth and raw-depth sensor models.

Pure numpy/scipy/cv2 (no ROS, no torch), shared by training, evaluation and the live demo.
"""

from s2ml_ros.simulation.camera import check_share, RgbdFrame, SimulatedRgbdCamera
from s2ml_ros.simulation.scene import (
    Label, look_at, Material, Primitive, render_scene, RenderedView, Scene, Surface)
from s2ml_ros.simulation.sensor import (
    second_view_visibility, SENSOR_PRESETS, SensorError, SensorModel, view_cosine)

__all__ = [
    'check_share', 'Label', 'look_at', 'Material', 'Primitive', 'render_scene', 'RenderedView',
    'RgbdFrame', 'Scene', 'SENSOR_PRESETS', 'SensorError', 'SensorModel', 'SimulatedRgbdCamera',
    'Surface', 'second_view_visibility', 'view_cosine',
]
