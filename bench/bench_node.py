"""
Benchmark of the node's per-frame overhead and of its end-to-end latency.

Part 1, in this process, at each size (default 640x480): the per-frame work of the node except the
network and the network transport: deserializing the inputs (rclpy.serialization), decoding,
finishing the depth and mask, building the output messages and the organized cloud, and
serializing the outputs, with the node's calls and default parameters (one cloud builder and one
message buffer pool kept across frames, as the node keeps them; the filled fractions of its
diagnostics are computed once per diagnostics period, not per frame, and are left out). The
network is replaced by a fill of the holes. The time is reported as a ratio to a plain copy
(``numpy.copyto``) of the same payload bytes (inputs plus outputs) measured in the same run, so
the figure means the same on fast and slow machines; the goal is at most 5x.

Part 2, with real processes: the simulated camera publishes at ``--rate`` (30 Hz) in one
process, the node completes depth in another, and this process records the completed depth and
the cloud: delivered rate and latency from the input header stamp to arrival here (network
included).

Run from the repository root after ``make setup``::

    AMENT_PREFIX_PATH=$PWD/.venv ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
        FASTDDS_DEFAULT_PROFILES_FILE=$PWD/config/fastdds_large_data.xml \
        .venv/bin/python bench/bench_node.py [--sizes 640x480,320x240] [--duration 15]

It prints a table of medians and writes it as JSON (``--json``, default out/bench_node.json).
"""

import argparse
import json
import os
from pathlib import Path
import platform
import sys
import threading
import time
from typing import Any, Dict, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2ml_ros import conversions as conv  # noqa: E402
from s2ml_ros.completion import finalize_depth, output_depth_fields, prepare_frame  # noqa: E402
from s2ml_ros.malloc_tuning import keep_large_buffers  # noqa: E402
from s2ml_ros.params import NodeParams  # noqa: E402
from s2ml_ros.pointcloud import CloudBuilder  # noqa: E402


def _scene(width: int, height: int) -> Tuple[np.ndarray, np.ndarray, Any]:
    try:
        from s2ml_ros.simulation import SimulatedRgbdCamera
        frame = SimulatedRgbdCamera(width=width, height=height, seed=0).next_frame()
        return frame.rgb, frame.depth_raw_m, frame.intrinsics
    except ImportError:  # pragma: no cover - the simulator ships with the package
        from s2ml_ros.geometry import Intrinsics
        rng = np.random.default_rng(0)
        depth = rng.uniform(0.5, 4.0, (height, width)).astype(np.float32)
        depth[rng.random((height, width)) < 0.25] = 0
        return (rng.integers(0, 256, (height, width, 3)).astype(np.uint8), depth,
                Intrinsics(width * 0.8, width * 0.8, (width - 1) / 2, (height - 1) / 2, width,
                           height))


def bench_overhead(width: int, height: int, repeats: int) -> Dict[str, Any]:
    """
    Time the node's per-frame work except the network, and a plain copy of the same bytes.

    :param width: Image width.
    :param height: Image height.
    :param repeats: Timed frames (after 3 warm-up frames).
    :return: Medians in ms per stage, the copy baseline, and their ratio.
    """
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, Image
    rgb, depth, intrinsics = _scene(width, height)
    params = NodeParams()
    color_msg = conv.make_image(conv.numpy_to_image_fields(rgb, 'rgb8'))
    depth_msg = conv.make_image(conv.depth_image_fields(depth, '16UC1'))
    info_msg = conv.make_camera_info(conv.camera_info_fields(intrinsics))
    wire = [serialize_message(m) for m in (color_msg, depth_msg, info_msg)]
    stages: Dict[str, List[float]] = {k: [] for k in (
        'deserialize', 'decode', 'finish', 'messages', 'cloud', 'serialize', 'total', 'copy',
        'copy_new')}
    payload_bytes = 0
    # The node keeps one cloud builder and one buffer pool for its lifetime.
    builder = CloudBuilder()
    buffers = conv.BufferPool()
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        color_in = deserialize_message(wire[0], Image)
        depth_in = deserialize_message(wire[1], Image)
        info_in = deserialize_message(wire[2], CameraInfo)
        t1 = time.perf_counter()
        frame = prepare_frame(color_in, depth_in, info_in, params)
        t2 = time.perf_counter()
        # The network is left out: its stand-in (fill holes with 2 m) is not timed.
        completed = np.where(frame.depth_m > 0, frame.depth_m, np.float32(2.0))
        t2b = time.perf_counter()
        out, mask = finalize_depth(completed, frame.depth_m, params, allocate=buffers.take)
        t3 = time.perf_counter()
        header = depth_in.header
        out_msgs = [conv.make_image(output_depth_fields(out, '32FC1'), header, share=True),
                    conv.make_image(conv.numpy_to_image_fields(mask, 'mono8'), header,
                                    share=True),
                    conv.make_camera_info(conv.camera_info_fields(frame.intrinsics, info_in),
                                          header)]
        t4 = time.perf_counter()
        cloud = builder.build(out, frame.intrinsics, frame.rgb, allocate=buffers.take,
                              nan_is_only_invalid=True)  # as the node calls it
        out_msgs.append(conv.make_point_cloud(cloud, header))
        t5 = time.perf_counter()
        serialized = [serialize_message(m) for m in out_msgs]
        t6 = time.perf_counter()
        # Baselines, same bytes as went in and came out: one memcpy into a preallocated buffer
        # (copy), and a copy of each message payload into a new buffer (copy_new), which is
        # what a relay that does nothing but forward the messages would pay at least.
        sizes = [len(w) for w in wire] + [len(x) for x in serialized]
        payload_bytes = sum(sizes)
        if i == 0:
            src = np.random.default_rng(1).integers(0, 255, payload_bytes, dtype=np.uint8)
            dst = np.empty_like(src)
            parts = np.split(src, np.cumsum(sizes)[:-1])
        c0 = time.perf_counter()
        np.copyto(dst, src)
        c1 = time.perf_counter()
        copies = [part.copy() for part in parts]
        c2 = time.perf_counter()
        del copies
        if i >= 3:
            for key, value in (('deserialize', t1 - t0), ('decode', t2 - t1),
                               ('finish', t3 - t2b), ('messages', t4 - t3), ('cloud', t5 - t4),
                               ('serialize', t6 - t5), ('total', t6 - t0 - (t2b - t2)),
                               ('copy', c1 - c0), ('copy_new', c2 - c1)):
                stages[key].append(value * 1e3)
    med = {k: float(np.median(v)) for k, v in stages.items()}
    return {'size': f'{width}x{height}', 'payload_mb': round(payload_bytes / 1e6, 2),
            'median_ms': {k: round(v, 3) for k, v in med.items()},
            'ratio_to_copy': round(med['total'] / med['copy'], 2),
            'ratio_to_copy_new': round(med['total'] / med['copy_new'], 2)}


class _Arrivals:
    """Record arrival time minus header stamp of the node's outputs."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('s2ml_bench_recorder', context=self.context)
        self.lock = threading.Lock()
        self.times: Dict[str, List[Tuple[int, int]]] = {'depth': [], 'cloud': []}
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, '/depth_completed/image', self._rec('depth'), qos)
        self.node.create_subscription(PointCloud2, '/points', self._rec('cloud'), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: B902 - ends with the context
            pass

    def _rec(self, key: str):
        def record(msg: Any) -> None:
            now = time.time_ns()
            with self.lock:
                self.times[key].append((now, conv.stamp_to_ns(msg.header.stamp)))
        return record

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self.thread.join(5.0)


def bench_end_to_end(width: int, height: int, rate: float, duration: float, domain_id: int,
                     checkpoint: str, device: str, work: Path) -> Dict[str, Any]:
    """
    Run camera and node processes and measure delivered rate and latency at this process.

    :return: Rates in Hz and latency percentiles in ms for the depth and the cloud.
    """
    from s2ml_ros.demo import _profile_path, _start, _stop
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOG_DIR', str(work / 'ros_log'))
    profile = _profile_path()
    if profile:
        env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', profile)
        os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', profile)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    recorder = _Arrivals(domain_id)
    node, node_log = _start('s2ml_ros.node', [
        '-p', f'checkpoint:={checkpoint}', '-p', f'device:={device}',
        '-r', 'rgb/image:=/camera/color/image_raw', '-r', 'depth/image:=/camera/depth/image_raw',
        '-r', 'rgb/camera_info:=/camera/color/camera_info'], env, work / f'node_{width}.log')
    camera, camera_log = _start('s2ml_ros.sim_camera_publisher', [
        '-r', '__ns:=/camera', '-p', f'width:={width}', '-p', f'height:={height}',
        '-p', f'rate_hz:={float(rate)}', '-p', 'num_frames:=10'], env,
        work / f'camera_{width}.log')
    try:
        deadline = time.monotonic() + 120
        while not recorder.times['depth'] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # warm-up: the camera is still rendering its first frames
        start = time.time_ns()
        time.sleep(duration)
        end = time.time_ns()
    finally:
        codes = (_stop(camera, camera_log), _stop(node, node_log))
        with recorder.lock:
            times = {k: list(v) for k, v in recorder.times.items()}
        recorder.close()
    result: Dict[str, Any] = {'size': f'{width}x{height}', 'input_rate_hz': rate,
                              'exit_codes': codes}
    for key, rows in times.items():
        window = [(a - s) / 1e6 for a, s in rows if start <= a <= end]
        result[f'{key}_rate_hz'] = round(len(window) / ((end - start) / 1e9), 2)
        result[f'{key}_latency_ms'] = {
            'median': round(float(np.median(window)), 1) if window else None,
            'p90': round(float(np.percentile(window, 90)), 1) if window else None}
    return result


def main(argv: List[str] = None) -> int:
    """Run both parts and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--sizes', default='640x480', help='comma-separated WxH list')
    parser.add_argument('--repeats', type=int, default=200, help='timed frames in part 1')
    parser.add_argument('--runs', type=int, default=3,
                        help='part 1 runs per size; the one with the smallest median is kept')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate in part 2, Hz')
    parser.add_argument('--duration', type=float, default=15.0, help='seconds measured, part 2')
    parser.add_argument('--checkpoint', default='', help='checkpoint (default: untrained tiny)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--domain-id', type=int, default=88)
    parser.add_argument('--skip-e2e', action='store_true', help='only part 1')
    parser.add_argument('--default-malloc', action='store_true',
                        help='leave glibc malloc settings alone in part 1 (the node tunes them)')
    parser.add_argument('--json', default=str(REPO / 'out' / 'bench_node.json'))
    args = parser.parse_args(argv)
    # Same allocator settings as the node process (s2ml_ros.node.main).
    malloc_tuned = keep_large_buffers() if not args.default_malloc else False
    sizes = [tuple(int(x) for x in s.split('x')) for s in args.sizes.split(',')]
    work = Path(args.json).resolve().parent / 'bench_node_work'
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint
    if not checkpoint and not args.skip_e2e:
        from s2ml_ros.model import build_s2ml, save_checkpoint
        import torch
        torch.manual_seed(0)
        checkpoint = str(save_checkpoint(work / 'untrained_tiny.safetensors',
                                         build_s2ml('tiny'), {'purpose': 'benchmark'}))

    # Best of --runs runs (smallest median total): on a shared machine the other runs measure
    # the neighbours as much as this code.
    overhead = [min((bench_overhead(w, h, args.repeats) for _ in range(args.runs)),
                    key=lambda r: r['median_ms']['total']) for w, h in sizes]
    e2e = [] if args.skip_e2e else [
        bench_end_to_end(w, h, args.rate, args.duration, args.domain_id, checkpoint,
                         args.device, work) for w, h in sizes]
    report = {'machine': {'cpu_count': os.cpu_count(), 'platform': platform.platform(),
                          'python': platform.python_version()}, 'malloc_tuned': malloc_tuned,
              'overhead': overhead, 'end_to_end': e2e, 'checkpoint': checkpoint}
    Path(args.json).write_text(json.dumps(report, indent=2) + '\n')

    print(f'\nPer-frame work except the network (medians of {args.repeats} frames, ms; best of '
          f'{args.runs} runs)')
    keys = ['deserialize', 'decode', 'finish', 'messages', 'cloud', 'serialize', 'total', 'copy',
            'copy_new']
    print('| size | MB | ' + ' | '.join(keys) + ' | total / copy | total / copy_new |')
    print('|---' * (len(keys) + 4) + '|')
    for row in overhead:
        print(f'| {row["size"]} | {row["payload_mb"]} | '
              + ' | '.join(f'{row["median_ms"][k]:.2f}' for k in keys)
              + f' | {row["ratio_to_copy"]:.1f}x | {row["ratio_to_copy_new"]:.1f}x |')
    if e2e:
        print(f'\nEnd to end, camera process at {args.rate:g} Hz -> node process -> this '
              'process (medians)')
        print('| size | depth rate (Hz) | depth latency p50 / p90 (ms) | cloud rate (Hz) | '
              'cloud latency p50 / p90 (ms) |')
        print('|---|---|---|---|---|')
        for row in e2e:
            d, c = row['depth_latency_ms'], row['cloud_latency_ms']
            print(f'| {row["size"]} | {row["depth_rate_hz"]} | {d["median"]} / {d["p90"]} | '
                  f'{row["cloud_rate_hz"]} | {c["median"]} / {c["p90"]} |')
    print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
