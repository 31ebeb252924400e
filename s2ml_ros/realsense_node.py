"""
RealSense camera (or recording) to ROS 2 without the realsense-ros driver.

A thin adapter around :class:`s2ml_ros.realsense_source.RealSenseSource`: a reader thread takes
aligned framesets and publishes them with the topics and conventions the completion node
subscribes to, in the node's namespace:

- ``rgb/image``: sensor_msgs/Image, rgb8;
- ``depth/image``: sensor_msgs/Image, 16UC1 in millimetres (fixed 1 mm unit as realsense-ros),
  0 = no depth, aligned to colour;
- ``rgb/camera_info`` and ``depth/camera_info``: the colour camera model (aligned depth shares
  it), ``P = [K | 0]``, realsense-ros distortion names.

Every message of a frameset carries the same header (frame id ``camera_color_optical_frame`` by
default, as realsense-ros uses for aligned depth): the stamp is the ROS time of the first frame
plus the camera's timestamp delta, like realsense-ros does, so the exact-stamp synchronizer
works. A recording plays at its recorded rate by default (``real_time``); at its end the node
exits 0 unless ``repeat`` is set.

Run: ``s2ml_realsense --ros-args -p recording:=walk.db3 -r __ns:=/camera`` and, in the same
namespace, ``s2ml_node``.
"""

import sys
import threading
from typing import List, Optional

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from s2ml_ros import conversions as conv
from s2ml_ros.realsense_source import (RealSenseConfig, RealSenseError, RealSenseFrame,
                                       RealSenseSource)
from s2ml_ros.ros_shutdown import raised_by_shutdown
from sensor_msgs.msg import CameraInfo, Image

NODE_NAME = 's2ml_realsense'
TOPIC_COLOR = 'rgb/image'
TOPIC_DEPTH = 'depth/image'
TOPIC_INFO = 'rgb/camera_info'
TOPIC_DEPTH_INFO = 'depth/camera_info'
# Smallest step between the stamps of consecutive framesets after a time jump, ns.
_MIN_STEP_NS = 1_000_000

_PARAMS = (
    ('width', 640, 'Colour and aligned depth width, pixels (camera only)'),
    ('height', 480, 'Colour and aligned depth height, pixels (camera only)'),
    ('fps', 30, 'Frame rate, Hz (camera only)'),
    ('serial_number', '', 'Open the camera with this serial number; empty = the first one'),
    ('recording', '', 'Play this librealsense recording (.db3 or .bag) instead of a camera'),
    ('real_time', True, 'Recording: play at the recorded rate (false: as fast as published)'),
    ('repeat', False, 'Recording: loop forever instead of exiting at its end'),
    ('frame_id', 'camera_color_optical_frame', 'frame_id of every published header'),
    ('timeout_ms', 5000, 'Give up when no frameset arrives for this long, ms'),
    ('qos_depth', 5, 'History depth of the publishers'),
)


class StartupError(RuntimeError):
    """The node cannot start: no camera, a bad serial number or an unreadable recording."""


class RealSenseNode(Node):
    """Publish aligned RealSense frames as rgb8 + 16UC1 images and CameraInfo."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        for name, default, description in _PARAMS:
            self.declare_parameter(name, default,
                                   ParameterDescriptor(description=description, read_only=True))
        p = {name: self.get_parameter(name).value for name, _, _ in _PARAMS}
        try:
            config = RealSenseConfig(
                width=int(p['width']), height=int(p['height']), fps=int(p['fps']),
                serial_number=str(p['serial_number']), recording=str(p['recording']),
                real_time=bool(p['real_time']), repeat=bool(p['repeat']),
                timeout_ms=int(p['timeout_ms']))
            self._source = RealSenseSource(config).start()
        except (RealSenseError, ValueError) as exc:
            raise StartupError(str(exc)) from exc
        self._frame_id = str(p['frame_id'])
        qos = QoSProfile(depth=int(p['qos_depth']), reliability=ReliabilityPolicy.RELIABLE)
        self._pub_color = self.create_publisher(Image, TOPIC_COLOR, qos)
        self._pub_depth = self.create_publisher(Image, TOPIC_DEPTH, qos)
        self._pub_info = self.create_publisher(CameraInfo, TOPIC_INFO, qos)
        self._pub_depth_info = self.create_publisher(CameraInfo, TOPIC_DEPTH_INFO, qos)
        self._base: Optional[tuple] = None
        self._last_ms: Optional[float] = None
        self._last_stamp_ns: Optional[int] = None
        self.published = 0
        #: Set when the reader stops: end of the recording (None) or an error.
        self.finished = threading.Event()
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='s2ml_realsense_reader',
                                        daemon=True)
        self._thread.start()
        intr = self._source.camera.intrinsics
        self.get_logger().info(
            f'ready: {self._source.device_name} {intr.width}x{intr.height}, depth scale '
            f'{self._source.depth_scale:g} m; publishing {self.resolve_topic_name(TOPIC_COLOR)}, '
            f'{self.resolve_topic_name(TOPIC_DEPTH)}, {self.resolve_topic_name(TOPIC_INFO)}')

    def _stamp(self, frame: RealSenseFrame):
        """
        ROS time of the first frame plus the camera's timestamp delta (as realsense-ros).

        When the camera time goes back (a looping recording, a camera reset) the base is set
        again, never earlier than one frame after the last stamp, so stamps always increase.
        """
        if self._base is None or (self._last_ms is not None
                                  and frame.timestamp_ms <= self._last_ms):
            now = self.get_clock().now().nanoseconds
            if self._last_stamp_ns is not None:
                now = max(now, self._last_stamp_ns + _MIN_STEP_NS)
            self._base = (now, frame.timestamp_ms)
        self._last_ms = frame.timestamp_ms
        ns = self._base[0] + int(round((frame.timestamp_ms - self._base[1]) * 1e6))
        self._last_stamp_ns = ns
        return Time(nanoseconds=ns).to_msg()

    def publish_frame(self, frame: RealSenseFrame) -> None:
        """Publish one frameset with one shared header."""
        header = Image().header
        header.stamp = self._stamp(frame)
        header.frame_id = self._frame_id
        info_fields = conv.camera_info_fields(frame.intrinsics)
        info_fields['distortion_model'] = frame.camera.distortion_model
        info_fields['d'] = list(frame.camera.distortion)
        info = conv.make_camera_info(info_fields, header)
        self._pub_color.publish(conv.make_image(conv.numpy_to_image_fields(frame.rgb, 'rgb8'),
                                                header))
        self._pub_depth.publish(conv.make_image(
            conv.numpy_to_image_fields(frame.depth_mm, '16UC1'), header))
        self._pub_info.publish(info)
        self._pub_depth_info.publish(info)
        self.published += 1

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self._source.read()
                if frame is None:
                    self.get_logger().info(
                        f'end of the recording after {self.published} framesets')
                    break
                if self._stop.is_set():
                    break
                self.publish_frame(frame)
        except Exception as exc:  # noqa: B902 - reported by main(), which exits 1
            if not raised_by_shutdown(exc, self.context):
                self.error = exc
                self.get_logger().error(f'stopped: {type(exc).__name__}: {exc}')
        finally:
            self.finished.set()

    def destroy_node(self) -> None:
        """Stop the reader thread and the camera, then destroy the node and its publishers."""
        # A context shutdown (SIGINT / SIGTERM) destroys the node before it marks the context
        # shut down: a frameset published in that window would fail as a real error, and one
        # logged while rclpy finalizes logging may crash the process. A node whose camera did
        # not open has no reader thread.
        if hasattr(self, '_thread'):
            self._stop.set()
            self._thread.join(timeout=10.0)
            self._source.stop()
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """
    Run the node until SIGINT / SIGTERM or the end of a recording.

    :param args: Command line (default ``sys.argv``), ``--ros-args`` included.
    :return: 0 after a clean end, 1 when the camera or file cannot be opened or read.
    """
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = RealSenseNode()
        while rclpy.ok() and not node.finished.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
        if node.error is not None:
            code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).error(f'cannot start: {exc}')
        code = 1
    except RuntimeError as exc:
        if not raised_by_shutdown(exc):
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
