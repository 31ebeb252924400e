"""
Camera-less demo: a simulated RGB-D camera process feeds the node process; outputs are recorded.

``python -m s2ml_ros.demo`` (``make demo``) starts ``s2ml_ros.sim_camera_publisher`` and
``s2ml_ros.node`` as separate processes in an isolated, localhost-only ROS graph, records the
node's outputs for ``--duration`` seconds and writes into ``--out`` (default ``out/demo``):

- ``color.png``, ``depth_raw.png``, ``depth_completed.png``, ``cloud_view.png`` and a 2x2
  ``preview.png`` of the last recorded frame (depth colour-mapped, black = no depth);
- ``summary.json``: model and checkpoint, camera settings, output rate, latency (header stamp to
  arrival in the recorder), measured / filled pixel fractions, error on the filled holes against
  the simulator's exact depth, the node's stage times;
- ``logs/``: the two processes' output.

The package's default weights are used when they are installed; otherwise the demo writes a
randomly initialised checkpoint, says so in the summary, and its completed depth is not
meaningful (the plumbing still is).
"""

import argparse
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import cv2
import numpy as np

from s2ml_ros.conversions import image_to_numpy, intrinsics_from_camera_info, stamp_to_ns
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.pointcloud import cloud_to_array, unpack_rgb

REPO = Path(__file__).resolve().parents[1]


def _profile_path() -> Optional[str]:
    candidates = [REPO / 'config' / 'fastdds_large_data.xml']
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory('s2ml_ros')) / 'config'
                          / 'fastdds_large_data.xml')
    except Exception:  # noqa: B902 - not installed through ament: use the repository copy
        pass
    for path in candidates:
        if path.is_file():
            return str(path)
    return None


def colorize_depth(depth_m: np.ndarray, max_m: float) -> np.ndarray:
    """
    Colour-map depth for previews.

    :param depth_m: float32 [H, W] meters; 0 or NaN = unknown.
    :param max_m: Depth mapped to the end of the colour map, meters.
    :return: uint8 [H, W, 3] BGR, black where unknown.
    """
    valid = np.isfinite(depth_m) & (depth_m > 0)
    scaled = np.clip(np.where(valid, depth_m, 0) / max(max_m, 1e-6), 0, 1)
    img = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    img[~valid] = 0
    return img


def render_cloud(points: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics,
                 yaw_deg: float = 30.0) -> np.ndarray:
    """
    Draw an organized cloud from a viewpoint turned ``yaw_deg`` around its median depth.

    :param points: float32 [H, W, 3] x, y, z in the optical frame, NaN = no point.
    :param rgb: uint8 [H, W, 3] RGB of each point.
    :param intrinsics: Camera model used to project the turned view.
    :param yaw_deg: Rotation about the vertical axis, degrees.
    :return: uint8 [H, W, 3] BGR image (nearest point wins).
    """
    h, w = intrinsics.height, intrinsics.width
    out = np.full((h, w, 3), 24, np.uint8)
    valid = np.isfinite(points).all(axis=-1)
    if not valid.any():
        return out
    p = points[valid].astype(np.float64)
    col = rgb[valid]
    pivot = np.array([0.0, 0.0, np.median(p[:, 2])])
    a = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    q = (p - pivot) @ rot.T + pivot
    q[:, 2] += 0.3 * pivot[2]  # step back a little to keep the scene in view
    front = q[:, 2] > 0.05
    q, col = q[front], col[front]
    u = np.round(q[:, 0] / q[:, 2] * intrinsics.fx + intrinsics.cx).astype(np.int64)
    v = np.round(q[:, 1] / q[:, 2] * intrinsics.fy + intrinsics.cy).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z, col = u[inside], v[inside], q[inside, 2], col[inside]
    order = np.argsort(-z)  # far first, so nearer points overwrite them
    out[v[order], u[order]] = col[order][:, ::-1]
    return out


# Messages kept per topic (about 4 s at 10 Hz), and completed frames kept waiting for their
# raw input.
_KEPT_PER_TOPIC = 40


class Recorder:
    """Subscribe to the camera and node topics and keep what the summary needs."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('s2ml_demo_recorder', context=self.context)
        self._lock = threading.Lock()
        self.latest: Dict[str, Dict[int, Any]] = {
            k: {} for k in ('color', 'raw', 'gt', 'depth', 'cloud', 'info')}
        self.arrivals: List[tuple] = []
        self.fractions: List[tuple] = []
        # Completed frames whose raw input has not reached this recorder yet: the two come
        # over separate connections, so under load the output can overtake its input.
        self._unmatched: Dict[int, Any] = {}
        self.inputs = 0
        self.diag: Dict[str, str] = {}
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        sub = self.node.create_subscription
        sub(Image, '/camera/color/image_raw', self._keep('color'), qos_profile_sensor_data)
        sub(Image, '/camera/depth/image_raw', self._keep('raw', count=True),
            qos_profile_sensor_data)
        sub(Image, '/camera/depth/ground_truth', self._keep('gt'), qos_profile_sensor_data)
        sub(Image, '/depth_completed/image', self._on_depth, out_qos)
        sub(CameraInfo, '/depth_completed/camera_info', self._keep('info'), out_qos)
        sub(PointCloud2, '/points', self._keep('cloud'), out_qos)
        sub(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: B902 - ends with the context
            pass

    def _keep(self, key: str, count: bool = False):
        def keep(msg: Any) -> None:
            stamp = stamp_to_ns(msg.header.stamp)
            with self._lock:
                store = self.latest[key]
                store[stamp] = msg
                while len(store) > _KEPT_PER_TOPIC:
                    store.pop(next(iter(store)))
                if count:
                    self.inputs += 1
            if key == 'raw':
                self._compare_if_matched(stamp)
        return keep

    def _on_depth(self, msg: Any) -> None:
        now = time.time_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        self._keep('depth')(msg)
        with self._lock:
            self.arrivals.append((now, stamp))
            self._unmatched[stamp] = (now, msg)
            while len(self._unmatched) > _KEPT_PER_TOPIC:
                self._unmatched.pop(next(iter(self._unmatched)))
        self._compare_if_matched(stamp)

    def _compare_if_matched(self, stamp: int) -> None:
        with self._lock:
            raw = self.latest['raw'].get(stamp)
            if raw is None or stamp not in self._unmatched:
                return
            arrival, out_msg = self._unmatched.pop(stamp)
            gt = self.latest['gt'].get(stamp)
        stats = frame_fractions(raw, out_msg, gt)
        with self._lock:
            self.fractions.append((arrival, stats))

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if 'depth completion' in status.name:
                with self._lock:
                    self.diag = {kv.key: kv.value for kv in status.values}

    def snapshot(self) -> Dict[str, Any]:
        """:return: Copies of the stores, arrivals, input count and diagnostics."""
        with self._lock:
            return {'latest': {k: dict(v) for k, v in self.latest.items()},
                    'arrivals': list(self.arrivals), 'fractions': list(self.fractions),
                    'inputs': self.inputs,
                    'diag': dict(self.diag)}

    def close(self) -> None:
        """Shut the recorder down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(5.0)


def _choose_checkpoint(out: Path, requested: Optional[str]) -> Dict[str, Any]:
    if requested:
        return {'path': str(Path(requested).expanduser().resolve()), 'trained': None,
                'note': 'checkpoint given on the command line'}
    from s2ml_ros.model import DEFAULT_CHECKPOINT
    if DEFAULT_CHECKPOINT.is_file():
        return {'path': str(DEFAULT_CHECKPOINT), 'trained': True,
                'note': 'packaged default weights'}
    from s2ml_ros.model import build_s2ml, save_checkpoint
    import torch
    torch.manual_seed(0)
    path = out / 'untrained_tiny.safetensors'
    save_checkpoint(path, build_s2ml('tiny'), {'trained': False,
                                               'purpose': 's2ml_ros demo without weights'})
    return {'path': str(path), 'trained': False,
            'note': 'UNTRAINED: the default weights are not installed, so the demo runs a '
                    'randomly initialised tiny model; the completed depth is not meaningful, '
                    'only the pipeline (rates, latency, plumbing) is'}


def _start(module: str, ros_args: List[str], env: Dict[str, str], log: Path):
    handle = open(log, 'w')
    proc = subprocess.Popen([sys.executable, '-m', module, '--ros-args', *ros_args], env=env,
                            stdout=handle, stderr=subprocess.STDOUT)
    return proc, handle


def _stop(proc: subprocess.Popen, handle: Any) -> Optional[int]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    handle.close()
    return proc.returncode


def _percentiles(values: List[float]) -> Dict[str, float]:
    if not values:
        return {'median': float('nan'), 'p90': float('nan'), 'max': float('nan')}
    arr = np.asarray(values)
    return {'median': round(float(np.median(arr)), 2),
            'p90': round(float(np.percentile(arr, 90)), 2), 'max': round(float(arr.max()), 2)}


def _write_previews(out: Path, snap: Dict[str, Any], max_depth: float) -> Dict[str, Any]:
    latest = snap['latest']
    common = sorted(set(latest['depth']) & set(latest['color']) & set(latest['raw']))
    if not common:
        return {}
    stamp = common[-1]
    rgb = image_to_numpy(latest['color'][stamp])
    raw = image_to_numpy(latest['raw'][stamp]).astype(np.float32)
    if latest['raw'][stamp].encoding == '16UC1':
        raw *= 0.001
    completed = image_to_numpy(latest['depth'][stamp]).astype(np.float32)
    if latest['depth'][stamp].encoding == '16UC1':
        completed = np.where(completed > 0, completed * 0.001, np.nan).astype(np.float32)
    h, w = completed.shape
    if rgb.shape[:2] != (h, w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        raw = cv2.resize(raw, (w, h), interpolation=cv2.INTER_NEAREST)
    images = {
        'color': rgb[..., ::-1],
        'depth_raw': colorize_depth(raw, max_depth),
        'depth_completed': colorize_depth(completed, max_depth),
    }
    cloud_msg = latest['cloud'].get(stamp)
    info_msg = latest['info'].get(stamp) or next(iter(latest['info'].values()), None)
    if cloud_msg is not None and info_msg is not None:
        pts = cloud_to_array(cloud_msg.data, cloud_msg.height, cloud_msg.width,
                             cloud_msg.fields, cloud_msg.point_step)
        xyz = np.stack([pts['x'], pts['y'], pts['z']], axis=-1)
        colors = unpack_rgb(pts['rgb']) if 'rgb' in pts.dtype.names else \
            np.full(xyz.shape, 200, np.uint8)
        images['cloud_view'] = render_cloud(xyz, colors, intrinsics_from_camera_info(info_msg))
    else:
        images['cloud_view'] = np.zeros_like(images['color'])
    for name, img in images.items():
        cv2.imwrite(str(out / f'{name}.png'), img)
    labelled = []
    for name in ('color', 'depth_raw', 'depth_completed', 'cloud_view'):
        tile = images[name].copy()
        cv2.putText(tile, name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        labelled.append(tile)
    grid = np.vstack([np.hstack(labelled[:2]), np.hstack(labelled[2:])])
    cv2.imwrite(str(out / 'preview.png'), grid)
    result: Dict[str, Any] = {'preview_stamp_ns': stamp}
    return result


def frame_fractions(raw_msg: Any, out_msg: Any, gt_msg: Any = None) -> Dict[str, float]:
    """
    Pixel statistics of one completed frame.

    :param raw_msg: The raw depth Image that went in (16UC1 mm or 32FC1 m).
    :param out_msg: The completed depth Image that came out.
    :param gt_msg: The simulator's exact depth (32FC1 m), or None.
    :return: measured, output and holes-filled fractions; hole_mae_m against ``gt_msg``.
    """
    raw = image_to_numpy(raw_msg).astype(np.float32)
    raw = np.where(np.isfinite(raw), raw, 0)
    out = image_to_numpy(out_msg).astype(np.float32)
    if out_msg.encoding == '16UC1':
        out = np.where(out > 0, out * 0.001, np.nan)
    if raw.shape != out.shape:
        return {}
    known = np.isfinite(out)
    holes = raw <= 0
    stats = {'measured': float((~holes).mean()), 'output': float(known.mean()),
             'holes_filled': float((known & holes).sum() / max(holes.sum(), 1))}
    if gt_msg is not None:
        gt = image_to_numpy(gt_msg).astype(np.float32)
        filled = holes & known & np.isfinite(gt) & (gt > 0)
        if gt.shape == out.shape and filled.any():
            stats['hole_mae_m'] = float(np.abs(out[filled] - gt[filled]).mean())
    return stats


def _fractions(rows: List[Dict[str, float]]) -> Dict[str, Any]:
    def med(key: str) -> float:
        values = [r[key] for r in rows if key in r]
        return round(float(np.median(values)), 4) if values else float('nan')
    return {'measured_fraction': med('measured'), 'output_fraction': med('output'),
            'holes_filled_fraction': med('holes_filled'), 'hole_mae_m': med('hole_mae_m'),
            'frames_compared': len(rows)}


def _json_safe(value: Any) -> Any:
    """Replace NaN / inf (not valid JSON) with None, recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_demo(args: argparse.Namespace) -> Dict[str, Any]:
    """
    Run the demo and write its outputs.

    :param args: Parsed command line (see :func:`main`).
    :return: The summary dict (also written to ``summary.json``).
    """
    out = Path(args.out).resolve()
    (out / 'logs').mkdir(parents=True, exist_ok=True)
    ckpt = _choose_checkpoint(out, args.checkpoint)
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(args.domain_id)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOG_DIR', str(out / 'logs' / 'ros'))
    profile = _profile_path()
    if profile:
        env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', profile)
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOG_DIR')})
    if profile:
        os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', profile)

    camera_args = ['-r', '__ns:=/camera', '-p', f'width:={args.width}',
                   '-p', f'height:={args.height}', '-p', f'rate_hz:={float(args.rate)}',
                   '-p', f'sensor:={args.sensor}', '-p', f'num_frames:={args.num_frames}',
                   '-p', 'publish_ground_truth:=true']
    node_args = ['-p', f'checkpoint:={ckpt["path"]}', '-p', f'device:={args.device}',
                 '-p', f'max_depth_m:={float(args.max_depth)}',
                 '-r', 'rgb/image:=/camera/color/image_raw',
                 '-r', 'depth/image:=/camera/depth/image_raw',
                 '-r', 'rgb/camera_info:=/camera/color/camera_info']
    print(f'[demo] output folder {out}; ROS_DOMAIN_ID={args.domain_id}; model: {ckpt["note"]}')
    recorder = Recorder(args.domain_id)
    node, node_log = _start('s2ml_ros.node', node_args, env, out / 'logs' / 'node.log')
    camera, camera_log = _start('s2ml_ros.sim_camera_publisher', camera_args, env,
                                out / 'logs' / 'sim_camera.log')
    codes: Dict[str, Optional[int]] = {}
    error = ''
    try:
        deadline = time.monotonic() + args.startup_timeout
        while not recorder.snapshot()['arrivals']:
            if node.poll() is not None or camera.poll() is not None:
                error = 'a process exited during start-up; see logs/'
                break
            if time.monotonic() > deadline:
                error = f'no completed depth within {args.startup_timeout} s; see logs/'
                break
            time.sleep(0.1)
        if not error:
            print(f'[demo] first completed frame received; recording for {args.duration} s')
            start_ns = time.time_ns()
            start_inputs = recorder.snapshot()['inputs']
            time.sleep(args.duration)
            end_ns = time.time_ns()
    finally:
        snap = recorder.snapshot()
        codes['sim_camera'] = _stop(camera, camera_log)
        codes['node'] = _stop(node, node_log)
        recorder.close()

    summary: Dict[str, Any] = {
        'model': {'checkpoint': ckpt['path'], 'trained': ckpt['trained'], 'note': ckpt['note'],
                  'variant': snap['diag'].get('model variant', ''),
                  'sha256': snap['diag'].get('checkpoint sha256', ''),
                  'device': snap['diag'].get('device', args.device)},
        'camera': {'width': args.width, 'height': args.height, 'rate_hz': args.rate,
                   'sensor': args.sensor},
        'exit_codes': codes,
    }
    if error:
        summary['error'] = error
    else:
        window = [(a, s) for a, s in snap['arrivals'] if start_ns <= a <= end_ns]
        duration = (end_ns - start_ns) / 1e9
        summary.update({
            'duration_s': round(duration, 2),
            'input_rate_hz': round((snap['inputs'] - start_inputs) / duration, 2),
            'output_rate_hz': round(len(window) / duration, 2),
            'outputs_received': len(window),
            'latency_ms': _percentiles([(a - s) / 1e6 for a, s in window]),
            # Pixel statistics describe frames, not timing: every compared frame counts, so a
            # raw image the recorder lost inside the rate window does not empty them.
            'pixels': _fractions([f for _, f in snap['fractions']]),
            'node_stage_median_ms': {k.split(' ')[1]: float(v) for k, v in snap['diag'].items()
                                     if k.startswith('time ') and v != 'nan'},
            'sets_dropped_stale': int(snap['diag'].get(
                'sets dropped (stale, replaced before processing)', 0)),
        })
        summary['pixels'].update(_write_previews(out, snap, args.max_depth))
        summary['files'] = sorted(p.name for p in out.glob('*.png'))
    (out / 'summary.json').write_text(json.dumps(_json_safe(summary), indent=2) + '\n')
    return summary


def print_summary(summary: Dict[str, Any], out: Path) -> None:
    """Print the summary as a short table."""
    m = summary['model']
    rows = [('model', f'{m["variant"] or "?"} on {m["device"]} ({m["note"]})')]
    if 'error' in summary:
        rows.append(('error', summary['error']))
    else:
        lat = summary['latency_ms']
        px = summary['pixels']
        rows += [
            ('camera', f'{summary["camera"]["width"]}x{summary["camera"]["height"]} '
                       f'{summary["camera"]["sensor"]} at {summary["camera"]["rate_hz"]} Hz'),
            ('input rate', f'{summary["input_rate_hz"]} Hz'),
            ('output rate', f'{summary["output_rate_hz"]} Hz '
                            f'({summary["outputs_received"]} frames in '
                            f'{summary["duration_s"]} s)'),
            ('latency stamp->recorder', f'median {lat["median"]} ms, p90 {lat["p90"]} ms, '
                                        f'max {lat["max"]} ms'),
            ('pixels measured', f'{px["measured_fraction"]:.1%}'),
            ('pixels with depth after', f'{px["output_fraction"]:.1%} '
                                        f'(holes filled: {px["holes_filled_fraction"]:.1%})'),
            ('node stage medians (ms)', ', '.join(
                f'{k} {v:.1f}' for k, v in summary['node_stage_median_ms'].items())),
        ]
        if np.isfinite(px.get('hole_mae_m', float('nan'))):
            rows.append(('MAE on filled holes', f'{px["hole_mae_m"]} m (vs simulator depth, '
                                                'median over frames)'))
    rows.append(('exit codes', str(summary['exit_codes'])))
    width = max(len(k) for k, _ in rows)
    print('\n'.join(f'{k:<{width}}  {v}' for k, v in rows))
    print(f'[demo] wrote {out / "summary.json"} and previews in {out}')


def main(argv: Optional[List[str]] = None) -> int:
    """
    Command-line entry point.

    :param argv: Arguments (default ``sys.argv[1:]``).
    :return: 0 when frames were recorded and both processes exited cleanly, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='out/demo', help='output folder')
    parser.add_argument('--duration', type=float, default=10.0,
                        help='seconds recorded after the first completed frame')
    parser.add_argument('--width', type=int, default=640, help='camera width, pixels')
    parser.add_argument('--height', type=int, default=480, help='camera height, pixels')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate, Hz')
    parser.add_argument('--sensor', default='structured_light',
                        help='raw-depth model: structured_light, active_stereo or tof')
    parser.add_argument('--num-frames', type=int, default=30,
                        help='frames rendered by the simulated camera, then looped')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint to run (default: packaged weights, else untrained)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--max-depth', type=float, default=10.0,
                        help='max_depth_m of the node and the preview colour scale, m')
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('S2ML_DEMO_DOMAIN_ID', '87')),
                        help='ROS_DOMAIN_ID of the demo graph (kept apart from yours)')
    parser.add_argument('--startup-timeout', type=float, default=120.0,
                        help='seconds to wait for the first completed frame')
    args = parser.parse_args(argv)
    summary = run_demo(args)
    print_summary(summary, Path(args.out).resolve())
    ok = 'error' not in summary and summary.get('outputs_received', 0) > 0 and \
        all(c == 0 for c in summary['exit_codes'].values())
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
