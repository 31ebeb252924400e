"""
Helpers for integration tests that run the node as a real process in an isolated ROS graph.

Each test gets its own ROS_DOMAIN_ID (a lock file per id, so parallel test runs on this machine
never share a graph), localhost-only discovery and a log directory in its tmp folder. The test
side is a plain rclpy node in its own context, spun by a background thread.
"""

import contextlib
import fcntl
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOCK_DIR = Path('/tmp/s2ml_ros_test_domains')
DOMAIN_RANGE = range(120, 230)  # Fast DDS allows ids up to 232; low ids are left to others


@contextlib.contextmanager
def unique_domain_id() -> Iterator[int]:
    """Hold an exclusive ROS_DOMAIN_ID for the duration of the block."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % len(DOMAIN_RANGE)
    for i in range(len(DOMAIN_RANGE)):
        domain = DOMAIN_RANGE[(start + i) % len(DOMAIN_RANGE)]
        handle = open(LOCK_DIR / f'{domain}.lock', 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            yield domain
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    raise RuntimeError('no free ROS domain id for the test')


def ros_environment(domain_id: int, log_dir: Path) -> Dict[str, str]:
    """:return: The environment for node processes of one test (inherits LD_LIBRARY_PATH)."""
    env = dict(os.environ)
    env.update({
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_LOG_DIR': str(log_dir),
        'PYTHONUNBUFFERED': '1',
        'RCUTILS_LOGGING_BUFFERED_STREAM': '0',
    })
    env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                   str(REPO / 'config' / 'fastdds_large_data.xml'))
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    return env


def write_tiny_checkpoint(path: Path, hole_fill_m: float = 2.0) -> Path:
    """
    Write an untrained tiny S2ML checkpoint whose output is predictable.

    The network is randomly initialised with a zero initial fill (D_0 = raw depth), then the
    last convolution of every fusion pair's residual head gets zero weights and a constant
    bias, so the output is the input depth plus ``hole_fill_m`` in total: every hole is filled
    with ``hole_fill_m`` meters. Node tests only check plumbing (finite, positive fills;
    measured pixels kept), not accuracy.
    """
    from dataclasses import replace

    from s2ml_ros.model import build_s2ml, get_config, save_checkpoint
    import torch
    torch.manual_seed(0)
    model = build_s2ml(replace(get_config('tiny'), initial_fill='zeros'))
    pairs = list(model.pairs)
    with torch.no_grad():
        for pair in pairs:
            last = [m for m in pair.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
            last.weight.zero_()
            last.bias.fill_(hole_fill_m / model.config.max_depth_m / len(pairs))
    return save_checkpoint(path, model, {'purpose': 'node tests, untrained constant fill',
                                         'hole_fill_m': hole_fill_m})


class NodeProcess:
    """
    The node started as ``python -m s2ml_ros.node --ros-args ...`` with output in a log file.

    :param ros_args: Arguments after ``--ros-args``.
    :param env: Environment from :func:`ros_environment`.
    :param log_path: File that receives stdout and stderr.
    :param module: Module to run.
    """

    def __init__(self, ros_args: Sequence[str], env: Dict[str, str], log_path: Path,
                 module: str = 's2ml_ros.node') -> None:
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', module, '--ros-args', *ros_args], cwd=REPO, env=env,
            stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        """:return: Everything the process printed so far."""
        return self.log_path.read_text()

    def alive(self) -> bool:
        """:return: True while the process runs."""
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the node's 'ready' log line; fail with the log if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if 'ready:' in self.log():
                return
            if not self.alive():
                raise AssertionError(f'node exited with {self.proc.returncode}:\n{self.log()}')
            time.sleep(0.1)
        raise AssertionError(f'node not ready after {timeout} s:\n{self.log()}')

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send ``sig`` and return the exit code (kills after ``timeout``)."""
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class GraphClient:
    """
    Test-side rclpy node: publishes camera frames and records the node's outputs.

    :param domain_id: ROS domain of the test.
    :param subscribe_outputs: Subscribe to the completed depth, camera info, cloud and mask.
    :param namespace: Namespace the node under test lives in ('' = root).
    """

    def __init__(self, domain_id: int, subscribe_outputs: bool = True,
                 namespace: str = '') -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('s2ml_test_client', context=self.context)
        ns = namespace.rstrip('/') + '/' if namespace else ''
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_color = self.node.create_publisher(Image, ns + 'rgb/image', reliable)
        self.pub_depth = self.node.create_publisher(Image, ns + 'depth/image', reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, ns + 'rgb/camera_info', reliable)
        self._lock = threading.Lock()
        self.received: Dict[str, List[Any]] = {
            'depth': [], 'info': [], 'cloud': [], 'mask': [], 'diag': []}
        self._subs = []
        if subscribe_outputs:
            for key, cls, topic in (('depth', Image, 'depth_completed/image'),
                                    ('info', CameraInfo, 'depth_completed/camera_info'),
                                    ('cloud', PointCloud2, 'points'),
                                    ('mask', Image, 'depth_completed/mask')):
                self._subs.append(self.node.create_subscription(
                    cls, ns + topic, self._recorder(key), reliable))
        self._subs.append(self.node.create_subscription(
            DiagnosticArray, '/diagnostics', self._recorder('diag'), 10))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: B902 - ends with the context
            pass

    def _recorder(self, key: str) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            with self._lock:
                self.received[key].append(msg)
        return record

    def messages(self, key: str) -> List[Any]:
        """:return: A copy of the messages received on output ``key``."""
        with self._lock:
            return list(self.received[key])

    def clear(self) -> None:
        """Forget the received messages."""
        with self._lock:
            for v in self.received.values():
                v.clear()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0,
                 poll: float = 0.05) -> bool:
        """:return: True once ``predicate()`` holds, False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def wait_connected(self, timeout: float = 30.0, outputs: bool = True) -> None:
        """Wait until the node subscribes to our inputs and (optionally) publishes to us."""
        def connected() -> bool:
            ok = all(p.get_subscription_count() > 0
                     for p in (self.pub_color, self.pub_depth, self.pub_info))
            if outputs:
                ok = ok and all(s.get_publisher_count() > 0 for s in self._subs[:-1])
            return ok
        assert self.wait_for(connected, timeout), 'the node never connected to the test client'

    def diagnostics(self) -> Dict[str, str]:
        """Return the key/values of the newest s2ml status, or an empty dict."""
        for array in reversed(self.messages('diag')):
            for status in array.status:
                if 'depth completion' in status.name:
                    out = {kv.key: kv.value for kv in status.values}
                    out['_level'] = int.from_bytes(status.level, 'little') \
                        if isinstance(status.level, bytes) else int(status.level)
                    out['_message'] = status.message
                    return out
        return {}

    def publish(self, color: Any = None, depth: Any = None, info: Any = None) -> None:
        """Publish whichever messages are given."""
        if info is not None:
            self.pub_info.publish(info)
        if color is not None:
            self.pub_color.publish(color)
        if depth is not None:
            self.pub_depth.publish(depth)

    def close(self) -> None:
        """Shut the client down."""
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5.0)


# ----------------------------------------------------------------------------- test frames
FX, FY, CX, CY = 50.0, 52.0, 31.5, 23.5
WIDTH, HEIGHT = 64, 48


def stamp_now(offset_s: float = 0.0) -> Any:
    """:return: A builtin_interfaces/Time of the wall clock plus ``offset_s``."""
    from builtin_interfaces.msg import Time
    ns = time.time_ns() + int(offset_s * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_scene(width: int = WIDTH, height: int = HEIGHT, seed: int = 0):
    """
    Build a small test scene: a tilted plane with holes.

    :return: (rgb uint8 [H, W, 3], depth_m float32 [H, W] with 0 in a rectangular hole and on a
        border strip, hole mask bool [H, W]).
    """
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8)
    u = np.arange(width)[None, :]
    v = np.arange(height)[:, None]
    depth = (1.5 + 0.01 * u + 0.005 * v).astype(np.float32)
    hole = np.zeros((height, width), bool)
    hole[height // 4:height // 2, width // 4:width // 2] = True
    hole[:, :3] = True
    depth[hole] = 0.0
    return rgb, depth, hole


def image_msg(array: np.ndarray, encoding: str, stamp: Any, frame_id: str = 'camera_optical'):
    """Encode ``array`` with the package conversions and set the header."""
    from s2ml_ros import conversions as conv
    msg = conv.make_image(conv.numpy_to_image_fields(array, encoding))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def depth_msg(depth_m: np.ndarray, stamp: Any, encoding: str = '16UC1',
              frame_id: str = 'camera_optical'):
    """Depth message in millimeters (16UC1) or meters (32FC1, NaN holes)."""
    if encoding == '16UC1':
        return image_msg(np.rint(depth_m * 1000).astype(np.uint16), '16UC1', stamp, frame_id)
    return image_msg(np.where(depth_m > 0, depth_m, np.nan).astype(np.float32), '32FC1', stamp,
                     frame_id)


def info_msg(stamp: Any, width: int = WIDTH, height: int = HEIGHT, scale: float = 1.0,
             frame_id: str = 'camera_optical'):
    """Build the test CameraInfo, scaled to ``width`` x ``height``."""
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    fx, fy = FX * scale, FY * scale
    cx, cy = (CX + 0.5) * scale - 0.5, (CY + 0.5) * scale - 0.5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    msg.distortion_model = 'plumb_bob'
    return msg


def publish_until(client: GraphClient, make: Callable[[], Dict[str, Any]],
                  done: Callable[[], bool], timeout: float = 30.0, period: float = 0.1) -> bool:
    """Publish ``make()`` every ``period`` seconds until ``done()`` or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.publish(**make())
        if client.wait_for(done, period):
            return True
    return done()


def node_args(checkpoint: Path, *extra: str) -> List[str]:
    """:return: --ros-args for a CPU node with fast diagnostics and the given checkpoint."""
    return ['-p', f'checkpoint:={checkpoint}', '-p', 'device:=cpu',
            '-p', 'diagnostics_period_s:=0.2', *extra]


def decode_depth(msg: Any) -> np.ndarray:
    """:return: The raw array of an output Image (32FC1 float32 or 16UC1 uint16)."""
    from s2ml_ros.conversions import image_to_numpy
    return image_to_numpy(msg)


def optional_import(name: str) -> Optional[Any]:
    """:return: The imported module, or None when it is not installed."""
    try:
        return __import__(name)
    except ImportError:
        return None
