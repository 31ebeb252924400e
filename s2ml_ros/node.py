"""
Live depth-completion node: RGB + raw depth + CameraInfo in, completed depth and cloud out.

Outputs: completed depth, its CameraInfo, an organized point cloud and a provenance mask.

This module is the ROS adapter only: decoding, synchronization, parameters, clouds and statistics
live in pure modules (conversions, sync, params, pointcloud, completion, frame_slot, node_stats),
and the network is reached only through :class:`s2ml_ros.pipeline.DepthCompletionPredictor`.

Threads. The executor runs the subscription and timer callbacks; they only check the encoding,
offer the message to the synchronizer and put a matched set into a latest-wins slot. A worker
thread takes the newest set, runs conversion, inference, cloud building and publishing, so the
callbacks never wait for the model and stale sets are dropped (and counted), never queued.

Run it with ``s2ml_node --ros-args --params-file config/s2ml.yaml`` or
``python -m s2ml_ros.node --ros-args ...``; it exits 0 on SIGINT / SIGTERM and 1 when it cannot
start (bad parameter, missing checkpoint).
"""

import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile,
                       ReliabilityPolicy)
from s2ml_ros import conversions as conv
from s2ml_ros.completion import (apply_predictor_params, filled_fraction, finalize_depth,
                                 output_depth_fields, prepare_frame)
from s2ml_ros.frame_slot import LatestSlot, SlotWorker
from s2ml_ros.malloc_tuning import keep_large_buffers
from s2ml_ros.node_stats import RateMeter, RollingStats
from s2ml_ros.params import (NodeParams, PARAM_SPECS, param_type, ParameterError,
                             params_from_mapping, with_changes)
from s2ml_ros.pointcloud import CloudBuilder
from s2ml_ros.ros_shutdown import raised_by_shutdown
from s2ml_ros.sync import closest_or_newest, StampSynchronizer
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

try:  # Jazzy and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

NODE_NAME = 's2ml_node'
# Relative topic names (remap them, or push the node into the camera namespace).
TOPIC_COLOR = 'rgb/image'
TOPIC_DEPTH = 'depth/image'
TOPIC_INFO = 'rgb/camera_info'
TOPIC_DEPTH_OUT = 'depth_completed/image'
TOPIC_INFO_OUT = 'depth_completed/camera_info'
TOPIC_CLOUD = 'points'
TOPIC_MASK = 'depth_completed/mask'
STAGES = ('convert', 'inference', 'cloud', 'publish')
WARN_PERIOD_S = 5.0
# A stamp this far behind the newest one means the clock jumped back (a looping bag).
TIME_JUMP_NS = 1_000_000_000

_RELIABILITY = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
                'reliable': ReliabilityPolicy.RELIABLE,
                'system_default': ReliabilityPolicy.SYSTEM_DEFAULT}
_DURABILITY = {'volatile': DurabilityPolicy.VOLATILE,
               'transient_local': DurabilityPolicy.TRANSIENT_LOCAL,
               'system_default': DurabilityPolicy.SYSTEM_DEFAULT}


def _policy_name(kind: Any) -> str:
    try:
        return QoSPolicyKind(int(kind)).name.lower()
    except (ValueError, TypeError):
        return f'policy {kind}'


class StartupError(RuntimeError):
    """The node cannot start: bad parameters, a missing checkpoint or an unusable device."""


def _descriptor(name: str) -> ParameterDescriptor:
    spec = PARAM_SPECS[name]
    kind = param_type(name)
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    if spec.value_range is not None and kind is int:
        desc.integer_range = [IntegerRange(from_value=int(spec.value_range[0]),
                                           to_value=int(spec.value_range[1]), step=1)]
    elif spec.value_range is not None and kind is float:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.value_range[0]), to_value=float(spec.value_range[1]),
            step=0.0)]
        # Accept `-p max_depth_m:=8` (an integer) too; validate() converts and checks it.
        desc.dynamic_typing = True
    return desc


class DepthCompletionNode(Node):
    """
    The depth-completion node.

    :param predictor: A ready predictor (anything with ``predict``, ``keep_measured``,
        ``flip_average`` and ``info``); None loads one from the ``checkpoint`` / ``device`` /
        ``precision`` parameters.
    :param node_name: ROS node name.
    :param kwargs: Passed on to :class:`rclpy.node.Node` (``context``, ``parameter_overrides``).
    :raises StartupError: For a bad parameter or a checkpoint that cannot be loaded.
    """

    def __init__(self, predictor: Any = None, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._worker: Optional[SlotWorker] = None
        try:
            self._setup(predictor)
        except BaseException:
            self.shutdown()
            self.destroy_node()
            raise

    # ----------------------------------------------------------------------------- set-up
    def _setup(self, predictor: Any) -> None:
        values = {}
        for name in PARAM_SPECS:
            default = getattr(NodeParams(), name)
            try:
                values[name] = self.declare_parameter(name, default, _descriptor(name)).value
            except Exception as exc:  # noqa: B902 - rclpy raises several types here
                raise StartupError(f'parameter {name}: {exc}') from exc
        try:
            self._params = params_from_mapping(values)
        except ParameterError as exc:
            raise StartupError(str(exc)) from exc
        p = self._params
        self._predictor = predictor if predictor is not None else self._load_predictor(p)

        in_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.input_qos_depth,
                            reliability=_RELIABILITY[p.input_qos_reliability],
                            durability=DurabilityPolicy.VOLATILE)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.output_qos_depth,
                             reliability=_RELIABILITY[p.output_qos_reliability],
                             durability=_DURABILITY[p.output_qos_durability])
        pub = self._create_publisher
        self._pub_depth = pub(Image, TOPIC_DEPTH_OUT, out_qos)
        self._pub_info = pub(CameraInfo, TOPIC_INFO_OUT, out_qos)
        self._pub_cloud = pub(PointCloud2, TOPIC_CLOUD, out_qos)
        self._pub_mask = pub(Image, TOPIC_MASK, out_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        self._sync: StampSynchronizer = StampSynchronizer(
            2, slop_s=p.sync_slop_s, queue_size=p.sync_queue_size, exact=p.exact_sync)
        self._infos: List[Tuple[int, Any]] = []
        self._slot: LatestSlot = LatestSlot()
        self._rates = {k: RateMeter() for k in ('color', 'depth', 'info', 'output')}
        self._times = RollingStats(100)
        self._counts: Dict[str, int] = dict.fromkeys((
            'bad_messages', 'frame_errors', 'skipped_no_subscribers', 'rate_limited',
            'published', 'no_camera_info', 'time_jumps'), 0)
        self._last_out_of_order = 0
        self._last_match_count = 0
        self._last_match_time = time.monotonic()
        self._last_process_start = 0.0
        # Measured and completed depth of the last published frame; the filled fractions are
        # computed from them when the diagnostics are published, not every frame.
        self._last_depths: Optional[Tuple[Any, Any]] = None
        self._last_error = ''
        # Used by the worker thread only. The pool recycles the byte buffers of published
        # messages once nothing references them any more (never while a message still does).
        self._cloud_builder = CloudBuilder()
        self._buffers = conv.BufferPool()

        self._create_subscription(Image, TOPIC_COLOR, self._on_color, in_qos)
        self._create_subscription(Image, TOPIC_DEPTH, self._on_depth, in_qos)
        self._create_subscription(CameraInfo, TOPIC_INFO, self._on_info, in_qos)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(p.diagnostics_period_s, self._on_diagnostics)

        self._worker = SlotWorker(self._slot, self._process, self._on_worker_error,
                                  name='s2ml_inference')
        self._worker.start()
        info = getattr(self._predictor, 'info', None)
        self.get_logger().info(
            f'ready: model {getattr(info, "variant", "?")} from {getattr(info, "path", "?")} on '
            f'{getattr(self._predictor, "device", "?")}; subscribed to '
            f'{self.resolve_topic_name(TOPIC_COLOR)}, {self.resolve_topic_name(TOPIC_DEPTH)}, '
            f'{self.resolve_topic_name(TOPIC_INFO)}; '
            f'{"exact" if p.exact_sync else f"approximate (slop {p.sync_slop_s} s)"} sync')

    def _create_subscription(self, cls: Any, topic: str, callback: Any, qos: QoSProfile) -> Any:
        # QoS mismatches are the most common reason nothing arrives: say so, with the fix.
        def incompatible(info: Any) -> None:
            self.get_logger().warning(
                f'{self.resolve_topic_name(topic)}: a publisher offers a QoS incompatible with '
                f'this subscription ({_policy_name(info.last_policy_kind)}; '
                f'{info.total_count} so far); with a best-effort camera driver set '
                'input_qos_reliability:=best_effort', throttle_duration_sec=WARN_PERIOD_S)
        return self.create_subscription(
            cls, topic, callback, qos,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible))

    def _create_publisher(self, cls: Any, topic: str, qos: QoSProfile) -> Any:
        def incompatible(info: Any) -> None:
            self.get_logger().warning(
                f'{self.resolve_topic_name(topic)}: a subscriber requests a QoS this publisher '
                f'does not offer ({_policy_name(info.last_policy_kind)}; {info.total_count} so '
                'far); set that subscriber to best effort or change output_qos_reliability / '
                'output_qos_durability', throttle_duration_sec=WARN_PERIOD_S)
        return self.create_publisher(
            cls, topic, qos,
            event_callbacks=PublisherEventCallbacks(incompatible_qos=incompatible))

    def _load_predictor(self, p: NodeParams) -> Any:
        if p.checkpoint and not os.path.isfile(os.path.expanduser(p.checkpoint)):
            raise StartupError(
                f'checkpoint file {p.checkpoint!r} does not exist; pass checkpoint:=<path to a '
                '.safetensors file> or leave it empty for the packaged default weights')
        try:
            import torch
            threads = p.cpu_threads or max(1, (os.cpu_count() or 2) // 2)
            torch.set_num_threads(threads)
            from s2ml_ros.pipeline import DepthCompletionPredictor
            return DepthCompletionPredictor.from_checkpoint(
                os.path.expanduser(p.checkpoint) if p.checkpoint else None, device=p.device,
                precision=p.precision, keep_measured=p.keep_measured)
        except (ValueError, OSError, RuntimeError) as exc:
            raise StartupError(f'cannot load the model: {exc}') from exc

    @staticmethod
    def _cpu_threads() -> int:
        torch = sys.modules.get('torch')
        return torch.get_num_threads() if torch is not None else 0

    @property
    def params(self) -> NodeParams:
        """:return: The current validated parameters."""
        return self._params

    def shutdown(self) -> None:
        """Stop the worker thread (waits for the frame in progress)."""
        if self._worker is not None:
            self._worker.stop(timeout=10.0)

    # ----------------------------------------------------------------------------- parameters
    def _on_set_parameters(self, parameters: List[Any]) -> SetParametersResult:
        changes = {prm.name: prm.value for prm in parameters if prm.name in PARAM_SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new = with_changes(self._params, changes)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._params = new
        self.get_logger().info(
            'parameters updated: ' + ', '.join(f'{k}={v!r}' for k, v in changes.items()))
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------- callbacks
    def _check_encoding(self, msg: Image, accepted: Tuple[str, ...], topic: str) -> bool:
        if conv.normalize_encoding(msg.encoding) in accepted:
            return True
        self._counts['bad_messages'] += 1
        self.get_logger().warning(
            f'dropping {self.resolve_topic_name(topic)} message with unsupported encoding '
            f'{msg.encoding!r}; accepted: {", ".join(accepted)} '
            f'({self._counts["bad_messages"]} bad messages so far)',
            throttle_duration_sec=WARN_PERIOD_S)
        return False

    def _offer(self, stream: int, msg: Image) -> None:
        stamp = conv.stamp_to_ns(msg.header.stamp)
        newest = self._sync.latest_stamps()[stream]
        if newest is not None and stamp < newest - TIME_JUMP_NS:
            self._counts['time_jumps'] += 1
            self._sync.reset()
            self._infos.clear()
            self.get_logger().warning(
                f'input stamps jumped back by {(newest - stamp) / 1e9:.3f} s (a restarted or '
                'looping bag?); synchronizer reset', throttle_duration_sec=WARN_PERIOD_S)
        matched = self._sync.add(stream, stamp, msg)
        out_of_order = sum(self._sync.stats.out_of_order)
        if out_of_order > self._last_out_of_order:
            self._last_out_of_order = out_of_order
            self.get_logger().warning(
                f'dropped a {"color" if stream == 0 else "depth"} message stamped '
                f'{stamp / 1e9:.6f} s: not newer than the last synchronized set '
                f'(out-of-order messages so far: {out_of_order})',
                throttle_duration_sec=WARN_PERIOD_S)
        if matched is not None:
            color, depth = matched
            self._slot.put((color, depth, self._pick_info(conv.stamp_to_ns(depth.header.stamp))))

    def _on_color(self, msg: Image) -> None:
        self._rates['color'].tick(time.monotonic())
        if self._check_encoding(msg, conv.COLOR_ENCODINGS, TOPIC_COLOR):
            self._offer(0, msg)

    def _on_depth(self, msg: Image) -> None:
        now = time.monotonic()
        self._rates['depth'].tick(now)
        age = self.get_clock().now().nanoseconds - conv.stamp_to_ns(msg.header.stamp)
        self._times.add('input_age', age / 1e9)
        if self._check_encoding(msg, conv.DEPTH_ENCODINGS, TOPIC_DEPTH):
            self._offer(1, msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self._rates['info'].tick(time.monotonic())
        self._infos.append((conv.stamp_to_ns(msg.header.stamp), msg))
        del self._infos[:-10]

    def _pick_info(self, stamp_ns: int) -> Optional[CameraInfo]:
        """Return the CameraInfo stamped closest to the frame, else the newest one received."""
        return closest_or_newest(list(self._infos), stamp_ns, self._sync.slop_ns)

    # ----------------------------------------------------------------------------- worker
    def _on_worker_error(self, exc: BaseException) -> None:
        self._counts['frame_errors'] += 1
        self._last_error = f'{type(exc).__name__}: {exc}'
        if not rclpy.ok(context=self.context):
            return
        self.get_logger().warning(
            f'frame dropped: {self._last_error} ({self._counts["frame_errors"]} so far)',
            throttle_duration_sec=WARN_PERIOD_S)

    def _process(self, item: Tuple[Image, Image, Optional[CameraInfo]]) -> None:
        color_msg, depth_msg, info_msg = item
        p = self._params
        now = time.monotonic()
        if p.max_rate_hz > 0 and now - self._last_process_start < 1.0 / p.max_rate_hz:
            self._counts['rate_limited'] += 1
            return
        self._last_process_start = now
        want_depth = self._pub_depth.get_subscription_count() > 0
        want_info = self._pub_info.get_subscription_count() > 0
        want_cloud = p.publish_cloud and self._pub_cloud.get_subscription_count() > 0
        want_mask = p.publish_mask and self._pub_mask.get_subscription_count() > 0
        if not (want_depth or want_info or want_cloud or want_mask):
            self._counts['skipped_no_subscribers'] += 1
            return

        t0 = time.perf_counter()
        try:
            frame = prepare_frame(color_msg, depth_msg, info_msg, p)
        except conv.ConversionError as exc:
            self._counts['bad_messages'] += 1
            self.get_logger().warning(
                f'dropping frame stamped {conv.stamp_to_ns(depth_msg.header.stamp) / 1e9:.6f} '
                f's: {exc} ({self._counts["bad_messages"]} bad messages so far)',
                throttle_duration_sec=WARN_PERIOD_S)
            return
        if frame.intrinsics is None:
            self._counts['no_camera_info'] += 1
            self.get_logger().warning(
                f'{frame.intrinsics_error} on {self.resolve_topic_name(TOPIC_INFO)}: publishing '
                'completed depth without camera_info and point cloud',
                throttle_duration_sec=WARN_PERIOD_S)
        t1 = time.perf_counter()
        header = depth_msg.header
        info_out = None
        if frame.intrinsics is not None:
            info_out = conv.make_camera_info(
                conv.camera_info_fields(frame.intrinsics, info_msg), header)
        if not (want_depth or want_cloud or want_mask):
            if info_out is not None:
                self._pub_info.publish(info_out)
            return

        # The worker thread alone gives the predictor its live settings, per frame, so a
        # parameter change never lands in the middle of one.
        apply_predictor_params(self._predictor, p)
        completed = self._predictor.predict(frame.rgb, frame.depth_m)
        t2 = time.perf_counter()
        # Depth and mask are written into message buffers that the Image messages take as is.
        depth_out, mask = finalize_depth(completed, frame.depth_m, p, with_mask=want_mask,
                                         allocate=self._buffers.take)
        msgs = []
        if want_depth:
            msgs.append((self._pub_depth, conv.make_image(
                output_depth_fields(depth_out, p.output_encoding), header, share=True)))
        if want_mask:
            msgs.append((self._pub_mask, conv.make_image(
                conv.numpy_to_image_fields(mask, 'mono8'), header, share=True)))
        t3 = time.perf_counter()
        cloud_msg = None
        if want_cloud and frame.intrinsics is not None:
            cloud = self._cloud_builder.build(
                depth_out, frame.intrinsics, frame.rgb if p.cloud_rgb else None,
                p.cloud_decimation, allocate=self._buffers.take, nan_is_only_invalid=True)
            cloud_msg = conv.make_point_cloud(cloud, header)
        t4 = time.perf_counter()
        if info_out is not None:
            self._pub_info.publish(info_out)
        for pub, msg in msgs:
            pub.publish(msg)
        if cloud_msg is not None:
            self._pub_cloud.publish(cloud_msg)
        t5 = time.perf_counter()

        self._counts['published'] += 1
        self._rates['output'].tick(time.monotonic())
        self._times.add('convert', (t1 - t0) + (t3 - t2))
        self._times.add('inference', t2 - t1)
        if cloud_msg is not None:
            self._times.add('cloud', t4 - t3)
        self._times.add('publish', t5 - t4)
        self._times.add('total', t5 - t0)
        latency = self.get_clock().now().nanoseconds - conv.stamp_to_ns(header.stamp)
        self._times.add('latency', latency / 1e9)
        self._last_depths = (frame.depth_m, depth_out)

    # ----------------------------------------------------------------------------- diagnostics
    def _check_sync(self, now: float) -> Optional[str]:
        stats = self._sync.stats
        if stats.matched != self._last_match_count:
            self._last_match_count = stats.matched
            self._last_match_time = now
            return None
        color_t, depth_t = self._sync.latest_stamps()
        rates = (self._rates['color'].rate(now), self._rates['depth'].rate(now))
        if color_t is None or depth_t is None or min(rates) <= 0:
            return None
        if now - self._last_match_time < 3.0:
            return None
        diff_ms = (color_t - depth_t) / 1e6
        mode = 'identical stamps (exact_sync)' if self._sync.exact else \
            f'stamps within sync_slop_s={self._sync.slop_ns / 1e9:g} s'
        return (f'color and depth never synchronized in the last '
                f'{now - self._last_match_time:.0f} s: newest color stamp {color_t / 1e9:.6f} s, '
                f'newest depth stamp {depth_t / 1e9:.6f} s (color - depth = {diff_ms:.1f} ms); '
                f'the node needs {mode}. Raise sync_slop_s, set exact_sync false, or enable the '
                "driver's own sync (RealSense: enable_sync:=true)")

    def _on_diagnostics(self) -> None:
        now = time.monotonic()
        p = self._params
        sync_problem = self._check_sync(now)
        if sync_problem:
            self.get_logger().warning(sync_problem, throttle_duration_sec=WARN_PERIOD_S)
        rates = {k: m.rate(now) for k, m in self._rates.items()}
        last = self._last_depths
        fill = filled_fraction(*last) if last is not None else (float('nan'), float('nan'))
        level, message = DiagnosticStatus.OK, 'ok'
        if sync_problem:
            level, message = DiagnosticStatus.WARN, 'color and depth stamps do not match'
        elif rates['color'] == 0 and rates['depth'] == 0:
            level, message = DiagnosticStatus.WARN, 'no input'
        elif rates['info'] == 0 and not self._infos:
            level, message = DiagnosticStatus.WARN, 'no camera_info: no point cloud'
        elif self._last_error and self._worker is not None and self._worker.errors and \
                self._counts['published'] == 0:
            level, message = DiagnosticStatus.ERROR, self._last_error
        values: List[Tuple[str, Any]] = [
            ('input rate color (Hz)', f'{rates["color"]:.2f}'),
            ('input rate depth (Hz)', f'{rates["depth"]:.2f}'),
            ('input rate camera_info (Hz)', f'{rates["info"]:.2f}'),
            ('output rate (Hz)', f'{rates["output"]:.2f}'),
        ]
        for key, label in (('input_age', 'input age'), ('latency', 'latency stamp to publish')):
            med, mx, _ = self._times.summary(key)
            values.append((f'{label} median (ms)', f'{med * 1e3:.1f}'))
            values.append((f'{label} max (ms)', f'{mx * 1e3:.1f}'))
        for stage in STAGES + ('total',):
            med, _, _ = self._times.summary(stage)
            values.append((f'time {stage} median (ms)', f'{med * 1e3:.2f}'))
        stats = self._sync.stats
        values += [
            ('synchronized sets', stats.matched),
            ('sets dropped (stale, replaced before processing)', self._slot.dropped),
            ('messages dropped by sync (unmatched)', sum(stats.dropped)),
            ('messages out of order', sum(stats.out_of_order)),
            ('frames published', self._counts['published']),
            ('bad messages', self._counts['bad_messages']),
            ('frame errors', self._counts['frame_errors']),
            ('frames without camera_info', self._counts['no_camera_info']),
            ('skipped (no subscribers)', self._counts['skipped_no_subscribers']),
            ('skipped (max_rate_hz)', self._counts['rate_limited']),
            ('measured fraction', f'{fill[0]:.3f}'),
            ('output fraction', f'{fill[1]:.3f}'),
        ]
        info = getattr(self._predictor, 'info', None)
        values += [
            ('model variant', getattr(info, 'variant', '')),
            ('checkpoint', getattr(info, 'path', p.checkpoint)),
            ('checkpoint sha256', getattr(info, 'sha256', '')),
            ('device', str(getattr(self._predictor, 'device', p.device))),
            ('precision', getattr(self._predictor, 'precision', p.precision)),
            ('cpu threads', self._cpu_threads()),
            ('keep_measured', p.keep_measured),
            ('flip_average', p.flip_average),
            ('colour offset x, y (px)', f'{p.colour_offset_x_px}, {p.colour_offset_y_px}'),
        ]
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: depth completion', message=message,
            hardware_id=str(getattr(info, 'variant', 's2ml')),
            values=[KeyValue(key=k, value=str(v)) for k, v in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(array)


def main(args: Optional[List[str]] = None) -> int:
    """
    Run the node until SIGINT / SIGTERM.

    :param args: Command line (default ``sys.argv``), ``--ros-args`` included.
    :return: 0 after a clean shutdown, 1 when the node could not start.
    """
    keep_large_buffers()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = DepthCompletionNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        get_logger(NODE_NAME).error(f'cannot start: {exc}')
        code = 1
    except RuntimeError as exc:
        if not raised_by_shutdown(exc):
            raise
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
