"""
Simulated RGB-D camera node: publishes procedural indoor frames like a registered RGB-D driver.

Topics (relative, remappable): ``color/image_raw`` (rgb8), ``depth/image_raw`` (16UC1 mm or
32FC1 m, registered to color, 0 / NaN = hole), ``color/camera_info`` and ``depth/camera_info``
(identical: depth is aligned to color), and optionally ``depth/ground_truth`` (32FC1 m).
Color and depth of one frame carry the same stamp (like RealSense with ``enable_sync``).

Rendering a 640x480 frame takes longer than 1/30 s on a CPU, so frames are rendered by a
background thread into a ring of ``num_frames`` pre-encoded messages and the timer publishes the
ring in a loop at ``rate_hz`` with fresh stamps. Run it with
``python -m s2ml_ros.sim_camera_publisher --ros-args -p rate_hz:=30.0``.
"""

import sys
import threading
from typing import Any, List, Optional

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from s2ml_ros import conversions as conv
from s2ml_ros.malloc_tuning import keep_large_buffers
from s2ml_ros.ros_shutdown import raised_by_shutdown
from sensor_msgs.msg import CameraInfo, Image

_PARAMS = (
    ('width', 640, 'Image width, pixels'),
    ('height', 480, 'Image height, pixels'),
    ('rate_hz', 30.0, 'Publishing rate, frames per second'),
    ('sensor', 'structured_light', 'Raw-depth sensor model: structured_light, active_stereo, tof'),
    ('seed', 0, 'Scene and trajectory seed'),
    ('num_frames', 30, 'Frames rendered, then published in a loop'),
    ('frame_id', 'camera_color_optical_frame', 'frame_id of every header'),
    ('depth_encoding', '16UC1', 'Depth encoding: 16UC1 (mm) or 32FC1 (m)'),
    ('reliability', 'reliable', 'Publisher reliability: reliable or best_effort'),
    ('publish_ground_truth', False, 'Also publish the exact depth on depth/ground_truth'),
    ('max_frames', 0, 'Exit after publishing this many frames; 0 = run until stopped'),
)


class SimCameraPublisher(Node):
    """Publish simulated, registered color + raw depth + CameraInfo at a fixed rate."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('s2ml_sim_camera', **kwargs)
        values = {}
        for name, default, description in _PARAMS:
            descriptor = ParameterDescriptor(description=description, read_only=True,
                                             dynamic_typing=isinstance(default, float))
            values[name] = self.declare_parameter(name, default, descriptor).value
        self.cfg = values
        if values['depth_encoding'] not in ('16UC1', '32FC1'):
            raise ValueError(f'depth_encoding={values["depth_encoding"]!r} is not one of 16UC1, '
                             '32FC1')
        if not float(values['rate_hz']) > 0:
            raise ValueError(f'rate_hz={values["rate_hz"]} must be > 0')
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                         reliability=ReliabilityPolicy.BEST_EFFORT
                         if values['reliability'] == 'best_effort' else
                         ReliabilityPolicy.RELIABLE)
        self._pub_color = self.create_publisher(Image, 'color/image_raw', qos)
        self._pub_depth = self.create_publisher(Image, 'depth/image_raw', qos)
        self._pub_info = self.create_publisher(CameraInfo, 'color/camera_info', qos)
        self._pub_dinfo = self.create_publisher(CameraInfo, 'depth/camera_info', qos)
        self._pub_gt = self.create_publisher(Image, 'depth/ground_truth', qos) \
            if values['publish_ground_truth'] else None
        self._ring: List[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._published = 0
        self.done = threading.Event()
        self._renderer = threading.Thread(target=self._render_all, name='sim_render',
                                          daemon=True)
        self._renderer.start()
        self.create_timer(1.0 / float(values['rate_hz']), self._on_timer)

    def _render_all(self) -> None:
        from s2ml_ros.simulation import SimulatedRgbdCamera
        cfg = self.cfg
        cam = SimulatedRgbdCamera(width=int(cfg['width']), height=int(cfg['height']),
                                  sensor=str(cfg['sensor']), seed=int(cfg['seed']),
                                  fps=float(cfg['rate_hz']))
        for _ in range(max(int(cfg['num_frames']), 1)):
            if self._stop.is_set():
                return
            frame = cam.next_frame()
            color = conv.make_image(conv.numpy_to_image_fields(frame.rgb, 'rgb8'))
            depth = conv.make_image(conv.depth_image_fields(frame.depth_raw_m,
                                                            cfg['depth_encoding']))
            info = conv.make_camera_info(conv.camera_info_fields(frame.intrinsics))
            gt = conv.make_image(conv.depth_image_fields(frame.depth_gt_m, '32FC1')) \
                if self._pub_gt is not None else None
            for msg in (color, depth, info, gt):
                if msg is not None:
                    msg.header.frame_id = cfg['frame_id']
            with self._lock:
                self._ring.append((color, depth, info, gt))
            if len(self._ring) == 1:
                self.get_logger().info(
                    f'publishing simulated {cfg["width"]}x{cfg["height"]} {cfg["sensor"]} '
                    f'frames at {cfg["rate_hz"]} Hz (rendering {cfg["num_frames"]} frames, '
                    'then looping)')

    def _on_timer(self) -> None:
        with self._lock:
            if not self._ring:
                return
            color, depth, info, gt = self._ring[self._published % len(self._ring)]
        stamp = self.get_clock().now().to_msg()
        for msg in (color, depth, info, gt):
            if msg is not None:
                msg.header.stamp = stamp
        self._pub_info.publish(info)
        self._pub_dinfo.publish(info)
        self._pub_color.publish(color)
        self._pub_depth.publish(depth)
        if gt is not None:
            self._pub_gt.publish(gt)
        self._published += 1
        limit = int(self.cfg['max_frames'])
        if limit and self._published >= limit:
            self.done.set()

    def stop(self) -> None:
        """Stop the rendering thread."""
        self._stop.set()
        self._renderer.join(5.0)


def main(args: Optional[List[str]] = None) -> int:
    """
    Run the simulated camera until SIGINT / SIGTERM (or ``max_frames``).

    :param args: Command line, ``--ros-args`` included.
    :return: Exit code: 0 after a clean shutdown, 1 for a bad parameter.
    """
    keep_large_buffers()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = SimCameraPublisher()
        while rclpy.ok() and not node.done.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:
        get_logger('s2ml_sim_camera').error(f'cannot start: {exc}')
        code = 1
    except RuntimeError as exc:
        if not raised_by_shutdown(exc):
            raise
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
