"""Integration test: the RealSense node as a process on a recording, in an isolated ROS graph."""

import threading
import time

from bag_helpers import synthetic_frames
import node_harness as nh
import numpy as np
import pytest

from s2ml_ros.geometry import Intrinsics
from s2ml_ros.realsense_source import write_recording

W, H, N = 48, 32, 6
pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    rgbs, raws, _, k4 = synthetic_frames(N, W, H)
    depths = [np.rint(r * 1000).astype(np.uint16) for r in raws]
    path = tmp_path_factory.mktemp('rsnode') / 'walk.db3'
    write_recording(str(path), rgbs, depths, Intrinsics(*k4, W, H))
    return str(path), rgbs, depths, k4


class Listener:
    """Subscribe to the three topics the completion node needs."""

    def __init__(self, domain_id: int, namespace: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('realsense_listener', context=self.context)
        self.lock = threading.Lock()
        self.got = {'rgb/image': [], 'depth/image': [], 'rgb/camera_info': []}
        for topic, cls in (('rgb/image', Image), ('depth/image', Image),
                           ('rgb/camera_info', CameraInfo)):
            self.node.create_subscription(cls, f'{namespace}/{topic}', self._keep(topic), 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # noqa: B902 - ends with the context
            pass

    def _keep(self, topic):
        def keep(msg):
            with self.lock:
                self.got[topic].append(msg)
        return keep

    def wait(self, count: int, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(len(v) >= count for v in self.got.values()):
                    return {k: list(v) for k, v in self.got.items()}
            time.sleep(0.05)
        raise AssertionError(f'received only { {k: len(v) for k, v in self.got.items()} }')

    def close(self):
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def test_node_publishes_aligned_frames_from_a_recording(tmp_path, recording):
    path, rgbs, depths, k4 = recording
    with nh.unique_domain_id() as domain:
        env = nh.ros_environment(domain, tmp_path / 'log')
        proc = nh.NodeProcess(['-p', f'recording:={path}', '-p', 'repeat:=true',
                               '-r', '__ns:=/cam'], env, tmp_path / 'node.log',
                              module='s2ml_ros.realsense_node')
        listener = None
        try:
            proc.wait_ready()
            listener = Listener(domain, '/cam')
            got = listener.wait(2 * N)
        finally:
            if listener is not None:
                listener.close()
            code = proc.stop()
    assert code == 0, proc.log()
    color, depth, info = got['rgb/image'][-1], got['depth/image'][-1], got['rgb/camera_info'][-1]
    assert (color.encoding, color.height, color.width) == ('rgb8', H, W)
    assert (depth.encoding, depth.height, depth.width, depth.step) == ('16UC1', H, W, 2 * W)
    for msg in (color, depth, info):
        assert msg.header.frame_id == 'camera_color_optical_frame'
    # Stamps always increase, also when the recording loops.
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got['depth/image']]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # One header per frameset: the stamps of color and depth pair exactly.
    color_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got['rgb/image']}
    assert any((m.header.stamp.sec, m.header.stamp.nanosec) in color_stamps
               for m in got['depth/image'])
    # Depth in millimetres equals a recorded frame (align is exact: same camera, no baseline).
    values = np.frombuffer(bytes(depth.data), np.uint16).reshape(H, W)
    assert max(np.mean(values == d) for d in depths) > 0.9
    pixels = np.frombuffer(bytes(color.data), np.uint8).reshape(H, W, 3)
    assert any(np.array_equal(pixels, c) for c in rgbs)
    fx, fy, cx, cy = k4
    np.testing.assert_allclose(np.asarray(info.k), [fx, 0, cx, 0, fy, cy, 0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(info.p)[[0, 2, 3, 5, 6]], [fx, cx, 0, fy, cy],
                               rtol=1e-6)
    assert (info.width, info.height, info.distortion_model) == (W, H, 'plumb_bob')


def test_node_exits_0_at_the_end_and_1_on_a_bad_file(tmp_path, recording):
    path = recording[0]
    with nh.unique_domain_id() as domain:
        env = nh.ros_environment(domain, tmp_path / 'log')
        done = nh.NodeProcess(['-p', f'recording:={path}', '-p', 'real_time:=false'], env,
                              tmp_path / 'a.log', module='s2ml_ros.realsense_node')
        assert done.proc.wait(60) == 0, done.log()
        assert f'end of the recording after {N} framesets' in done.log()
        done.stop()
        bad = nh.NodeProcess(['-p', f'recording:={tmp_path / "missing.db3"}'], env,
                             tmp_path / 'b.log', module='s2ml_ros.realsense_node')
        assert bad.proc.wait(60) == 1, bad.log()
        assert 'recording file does not exist' in bad.log()
        bad.stop()


@pytest.mark.slow
def test_completion_node_completes_the_realsense_node_stream(tmp_path, recording):
    """The two nodes in one namespace: the conventions match, completed depth comes out."""
    path, _, depths, _ = recording
    checkpoint = nh.write_tiny_checkpoint(tmp_path / 'tiny.safetensors')
    with nh.unique_domain_id() as domain:
        env = nh.ros_environment(domain, tmp_path / 'log')
        camera = nh.NodeProcess(['-p', f'recording:={path}', '-p', 'repeat:=true',
                                 '-r', '__ns:=/cam'], env, tmp_path / 'camera.log',
                                module='s2ml_ros.realsense_node')
        completion = nh.NodeProcess(['-p', f'checkpoint:={checkpoint}', '-p', 'device:=cpu',
                                     '-p', 'exact_sync:=true', '-r', '__ns:=/cam'], env,
                                    tmp_path / 'completion.log')
        client = None
        try:
            camera.wait_ready()
            completion.wait_ready()
            client = nh.GraphClient(domain, namespace='/cam')
            ok = client.wait_for(lambda: len(client.messages('depth')) >= 2
                                 and len(client.messages('cloud')) >= 1, timeout=60.0)
            got = {k: len(client.messages(k)) for k in ('depth', 'info', 'cloud')}
            assert ok, f'{got}\n{completion.log()}'
            depth = client.messages('depth')[-1]
        finally:
            if client is not None:
                client.close()
            codes = camera.stop(), completion.stop()
    assert codes == (0, 0), camera.log() + completion.log()
    assert (depth.encoding, depth.height, depth.width) == ('32FC1', H, W)
    assert depth.header.frame_id == 'camera_color_optical_frame'
    out = np.frombuffer(bytes(depth.data), np.float32).reshape(H, W)
    assert np.isfinite(out).mean() > 0.9
