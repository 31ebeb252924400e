"""
RealSense frames as numpy without a ROS camera driver: a live camera or a recording file.

pyrealsense2 calls live here and nowhere else; no rclpy. :class:`RealSenseSource` yields
:class:`RealSenseFrame` s whose depth is aligned to the colour image (``rs.align``), with the
colour intrinsics, so depth pixel (u, v) and colour pixel (u, v) see the same ray, as in
realsense-ros ``aligned_depth_to_color``.

Also here: :class:`RealSenseDepthFilters`, which runs librealsense's own post-processing filters
(hole filling, spatial, temporal, and the realsense-ros chain) on numpy depth images, and
:func:`write_recording`, which writes numpy frames to a librealsense ``.db3`` recording through a
software device (used by the tests and to turn any RGB-D frames into a file that plays like a
camera).

pyrealsense2 links against ``libusb-1.0.so.0``. :func:`load_pyrealsense2` preloads the copy
that ships with the ``libusb-package`` wheel, falls back to the system library and raises
:class:`RealSenseError` with the fix when neither exists.
"""

import ctypes
import ctypes.util
from dataclasses import dataclass
import logging
import os
import queue
import threading
from types import ModuleType
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from s2ml_ros.geometry import Intrinsics

_logger = logging.getLogger(__name__)

_RS: Optional[ModuleType] = None

# librealsense distortion models -> sensor_msgs/CameraInfo distortion_model (realsense-ros does
# the same: Kannala-Brandt is 'equidistant', everything else 'plumb_bob').
_DISTORTION_TO_ROS = {
    'none': 'plumb_bob',
    'brown_conrady': 'plumb_bob',
    'modified_brown_conrady': 'plumb_bob',
    'inverse_brown_conrady': 'plumb_bob',
    'ftheta': 'equidistant',
    'kannala_brandt4': 'equidistant',
}

_PLAYBACK_POLL_MS = 20

#: Names of the librealsense filter set-ups :class:`RealSenseDepthFilters` runs.
FILTER_NAMES = ('rs_hole_filling', 'rs_hole_filling_nearest', 'rs_spatial', 'rs_temporal',
                'rs_chain')


class RealSenseError(RuntimeError):
    """Raised when pyrealsense2 cannot be loaded, a device or file cannot be opened or read."""


def _preload_libusb() -> str:
    """
    Make ``libusb-1.0.so.0`` loadable before pyrealsense2 is imported.

    :return: Where the library came from, for the log.
    """
    errors = []
    try:
        import libusb_package
        path = libusb_package.get_library_path()
        if path is not None:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return str(path)
        errors.append('libusb_package has no bundled library for this platform')
    except (ImportError, OSError) as exc:
        errors.append(f'libusb_package: {exc}')
    for name in ('libusb-1.0.so.0', ctypes.util.find_library('usb-1.0')):
        if not name:
            continue
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            return name
        except OSError as exc:
            errors.append(f'{name}: {exc}')
    raise RealSenseError(
        'pyrealsense2 needs libusb-1.0 and none was found (' + '; '.join(errors) + '). '
        'Install one: pip install libusb-package, or apt-get install libusb-1.0-0')


def load_pyrealsense2() -> ModuleType:
    """
    Import pyrealsense2 once, preloading libusb first.

    :return: The ``pyrealsense2`` module.
    :raises RealSenseError: When libusb or pyrealsense2 is missing.
    """
    global _RS
    if _RS is None:
        where = _preload_libusb()
        try:
            import pyrealsense2
        except ImportError as exc:
            raise RealSenseError(
                f'cannot import pyrealsense2 ({exc}); install it with pip install pyrealsense2 '
                '(wheels exist for x86_64 and aarch64 Linux)') from exc
        _logger.debug('pyrealsense2 loaded with libusb from %s', where)
        _RS = pyrealsense2
    return _RS


@dataclass(frozen=True)
class RealSenseConfig:
    """
    What to open and how.

    :param width: Colour (and aligned depth) width, pixels; ignored for recordings.
    :param height: Colour (and aligned depth) height, pixels; ignored for recordings.
    :param fps: Frame rate, Hz; ignored for recordings.
    :param serial_number: Open the camera with this serial number; empty = the first one.
    :param recording: Play this librealsense recording (``.db3`` or legacy ``.bag``) instead
        of a camera; empty = live camera.
    :param real_time: Recordings only: play at the recorded rate (True) or as fast as frames are
        consumed, without dropping any (False).
    :param repeat: Recordings only: loop forever.
    :param timeout_ms: How long to wait for one frameset before giving up, milliseconds.
    """

    width: int = 640
    height: int = 480
    fps: int = 30
    serial_number: str = ''
    recording: str = ''
    real_time: bool = False
    repeat: bool = False
    timeout_ms: int = 5000

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(
                f'width, height and fps must be > 0, got {self.width}x{self.height} @ {self.fps}')
        if self.timeout_ms <= 0:
            raise ValueError(f'timeout_ms must be > 0, got {self.timeout_ms}')


@dataclass(frozen=True)
class CameraModel:
    """
    Camera model of the aligned images, in the terms of sensor_msgs/CameraInfo.

    :param intrinsics: Pinhole intrinsics (colour camera; depth is aligned to it).
    :param distortion_model: ``plumb_bob`` or ``equidistant``.
    :param distortion: Distortion coefficients (5 for plumb_bob, 4 for equidistant).
    """

    intrinsics: Intrinsics
    distortion_model: str
    distortion: Tuple[float, ...]


@dataclass(frozen=True)
class RealSenseFrame:
    """
    One aligned colour + depth frameset.

    :param rgb: Colour image, uint8 [H, W, 3], RGB order.
    :param depth_raw: Depth aligned to colour in device units, uint16 [H, W]; 0 = no depth.
    :param depth_scale: Meters per device unit (0.001 on D4xx, 0.0001 on D405).
    :param camera: Camera model of both images.
    :param timestamp_ms: Frameset timestamp from librealsense, milliseconds.
    :param timestamp_domain: ``hardware_clock``, ``system_time`` or ``global_time``.
    :param frame_number: Depth frame counter from the device or recording.
    """

    rgb: np.ndarray
    depth_raw: np.ndarray
    depth_scale: float
    camera: CameraModel
    timestamp_ms: float
    timestamp_domain: str
    frame_number: int

    @property
    def intrinsics(self) -> Intrinsics:
        """:return: Intrinsics of the colour image and the aligned depth."""
        return self.camera.intrinsics

    @property
    def depth_m(self) -> np.ndarray:
        """:return: Depth in meters, float32 [H, W]; 0 = no depth."""
        return self.depth_raw.astype(np.float32) * np.float32(self.depth_scale)

    @property
    def depth_mm(self) -> np.ndarray:
        """
        Depth in millimetres as ROS publishes it (16UC1, fixed 1 mm units).

        :return: uint16 [H, W], 0 = no depth; rounded when the device unit is not 1 mm and
            clipped at 65535 mm.
        """
        if abs(self.depth_scale - 0.001) < 1e-9:
            return self.depth_raw.copy()
        mm = np.rint(self.depth_raw.astype(np.float64) * (self.depth_scale * 1000.0))
        return np.clip(mm, 0, 65535).astype(np.uint16)


def _intrinsics_from_rs(rs_intr) -> CameraModel:
    model = str(rs_intr.model).split('.')[-1]
    coeffs = tuple(float(c) for c in rs_intr.coeffs)
    ros_model = _DISTORTION_TO_ROS.get(model, 'plumb_bob')
    coeffs = coeffs[:4] if ros_model == 'equidistant' else coeffs[:5]
    intr = Intrinsics(float(rs_intr.fx), float(rs_intr.fy), float(rs_intr.ppx),
                      float(rs_intr.ppy), int(rs_intr.width), int(rs_intr.height))
    return CameraModel(intr, ros_model, coeffs)


def _rs_intrinsics(rs: ModuleType, intr: Intrinsics):
    out = rs.intrinsics()
    out.width, out.height = intr.width, intr.height
    out.fx, out.fy, out.ppx, out.ppy = intr.fx, intr.fy, intr.cx, intr.cy
    out.model = rs.distortion.none
    out.coeffs = [0.0] * 5
    return out


class RealSenseSource:
    """
    Aligned RGB-D frames from a RealSense camera or a librealsense recording.

    Use as a context manager::

        with RealSenseSource(RealSenseConfig(recording='walk.db3')) as source:
            for frame in source.frames():
                ...

    A camera streams through ``rs.pipeline`` (its syncer pairs depth and colour; frames that
    arrive while the caller is busy are dropped, as live data should be). A recording is played
    sensor by sensor instead: playback is paused until both sensors listen, depth and colour are
    paired by timestamp here, and the pairing callback blocks while the caller is busy. In
    non-real-time mode that blocks the playback thread too, so no frame of the file is lost,
    however slow the consumer. For a recording, :meth:`frames` ends with the file (unless
    ``repeat``); for a camera it runs until the caller stops.

    :param config: What to open.
    """

    def __init__(self, config: RealSenseConfig) -> None:
        self.config = config
        self._rs = load_pyrealsense2()
        self._pipeline = None
        self._align = None
        # Recording playback state.
        self._context = None
        self._device = None
        self._playback = None
        self._sensors: List = []
        self._pairer = None
        self._queue: 'queue.Queue[RealSenseFrame]' = queue.Queue(maxsize=2)
        self._stopping = threading.Event()
        self._callback_error: Optional[BaseException] = None
        self._depth_scale = 0.001
        self._camera: Optional[CameraModel] = None
        self.device_name = ''
        self.serial_number = ''
        #: Depth or colour frames dropped because no partner frame came close enough in time.
        self.unpaired_frames = 0

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> 'RealSenseSource':
        """
        Open the camera or file and start streaming.

        :return: self.
        :raises RealSenseError: No camera, an unknown serial number, or an unreadable file.
        """
        self._stopping.clear()
        self._align = self._rs.align(self._rs.stream.color)
        if self.is_playback:
            self._start_playback()
        else:
            self._start_camera()
        _logger.info('%s: %dx%d colour, depth scale %.6g m', self.device_name,
                     self.camera.intrinsics.width, self.camera.intrinsics.height,
                     self._depth_scale)
        return self

    def _start_camera(self) -> None:
        rs = self._rs
        c = self.config
        devices = list(rs.context().query_devices())
        if not devices:
            raise RealSenseError(
                'no RealSense camera found (check the USB cable and udev rules, or pass a '
                'recording file)')
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        cfg = rs.config()
        if c.serial_number:
            if c.serial_number not in serials:
                raise RealSenseError(
                    f'no RealSense camera with serial number {c.serial_number!r}; '
                    f'connected: {serials}')
            cfg.enable_device(c.serial_number)
        cfg.enable_stream(rs.stream.depth, c.width, c.height, rs.format.z16, c.fps)
        cfg.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            raise RealSenseError(
                f'camera {c.serial_number or "(first)"}: cannot start z16 depth + rgb8 colour '
                f'at {c.width}x{c.height} @ {c.fps} Hz: {exc}') from exc
        self._pipeline = pipeline
        device = profile.get_device()
        self.device_name = device.get_info(rs.camera_info.name)
        self.serial_number = device.get_info(rs.camera_info.serial_number)
        self._depth_scale = float(device.first_depth_sensor().get_depth_scale())
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self._camera = _intrinsics_from_rs(color.get_intrinsics())

    def _start_playback(self) -> None:
        rs = self._rs
        path = self.config.recording
        if not os.path.isfile(path):
            raise RealSenseError(f'{path}: recording file does not exist')
        try:
            self._context = rs.context()
            self._device = self._context.load_device(path)
        except RuntimeError as exc:
            raise RealSenseError(f'{path}: cannot open recording: {exc}') from exc
        self._playback = self._device.as_playback()
        self._playback.set_real_time(self.config.real_time)
        self.device_name = f'playback of {path}'
        chosen = {}
        for sensor in self._device.query_sensors():
            for prof in sensor.get_stream_profiles():
                kind = prof.stream_type()
                if kind in (rs.stream.depth, rs.stream.color) and kind not in chosen:
                    chosen[kind] = (sensor, prof)
        missing = [name for kind, name in ((rs.stream.depth, 'depth'), (rs.stream.color, 'colour'))
                   if kind not in chosen]
        if missing:
            raise RealSenseError(f'{path}: recording has no {" and no ".join(missing)} stream')
        depth_sensor, depth_prof = chosen[rs.stream.depth]
        color_sensor, color_prof = chosen[rs.stream.color]
        if depth_sensor.supports(rs.option.depth_units):
            self._depth_scale = float(depth_sensor.get_option(rs.option.depth_units))
        else:
            _logger.warning('%s: no depth units recorded; assuming 0.001 m', path)
        self._camera = _intrinsics_from_rs(color_prof.as_video_stream_profile().get_intrinsics())
        fps = max(1, min(depth_prof.fps(), color_prof.fps()))
        self._pairer = _FramePairer(rs, tolerance_ms=0.5 * 1000.0 / fps)
        self._queue = queue.Queue(maxsize=2)
        self._callback_error = None
        # Start paused: a sensor that is not listening yet would lose its first frames.
        self._playback.pause()
        groups: Dict[int, Tuple[object, List]] = {}
        for sensor, prof in chosen.values():
            groups.setdefault(id(sensor), (sensor, []))[1].append(prof)
        try:
            for sensor, profs in groups.values():
                sensor.open(profs)
                self._sensors.append(sensor)
            for sensor in self._sensors:
                sensor.start(self._on_playback_frame)
        except RuntimeError as exc:
            self.stop()
            raise RealSenseError(f'{path}: cannot play depth and colour: {exc}') from exc
        self._playback.resume()

    def _on_playback_frame(self, frame) -> None:
        """Pair, align and hand over one recorded frame (runs on the playback threads)."""
        if self._stopping.is_set() or self._callback_error is not None:
            return
        try:
            pair = self._pairer.add(frame)
            if pair is None:
                return
            aligned = self._align.process(pair)
            out = self._to_frame(aligned.get_depth_frame(), aligned.get_color_frame())
            while not self._stopping.is_set():
                try:
                    self._queue.put(out, timeout=0.05)
                    return
                except queue.Full:
                    continue
        except Exception as exc:  # noqa: B902 - handed to the consumer thread in read()
            self._callback_error = exc

    def stop(self) -> None:
        """Stop streaming; safe to call twice."""
        self._stopping.set()
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError:
                    pass
        self._sensors = []
        self._playback = None
        self._device = None
        self._context = None
        if self._pairer is not None:
            self.unpaired_frames += self._pairer.unpaired
            self._pairer = None

    def __enter__(self) -> 'RealSenseSource':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- properties --------------------------------------------------------------------------

    @property
    def depth_scale(self) -> float:
        """:return: Meters per depth unit of the opened device."""
        return self._depth_scale

    @property
    def camera(self) -> CameraModel:
        """:return: Camera model of the colour stream (and the aligned depth)."""
        if self._camera is None:
            raise RealSenseError('source not started')
        return self._camera

    @property
    def is_playback(self) -> bool:
        """:return: True when playing a recording file."""
        return bool(self.config.recording)

    # -- frames ------------------------------------------------------------------------------

    def read(self) -> Optional[RealSenseFrame]:
        """
        Wait for the next aligned frameset.

        :return: The frame, or None at the end of a recording.
        :raises RealSenseError: A camera that delivers nothing within ``timeout_ms``, or a
            recording that cannot be decoded.
        """
        if self._pipeline is None and self._playback is None:
            raise RealSenseError('source not started; use start() or a with block')
        if self._pipeline is not None:
            return self._read_camera()
        return self._read_playback()

    def _read_camera(self) -> RealSenseFrame:
        while True:
            ok, frames = self._pipeline.try_wait_for_frames(self.config.timeout_ms)
            if not ok:
                raise RealSenseError(
                    f'{self.device_name}: no frames within {self.config.timeout_ms} ms')
            aligned = self._align.process(frames)
            depth = aligned.get_depth_frame()
            color = aligned.get_color_frame()
            if depth and color:
                return self._to_frame(depth, color)
            self.unpaired_frames += 1

    def _read_playback(self) -> Optional[RealSenseFrame]:
        waited_ms = 0
        while True:
            try:
                return self._queue.get(timeout=_PLAYBACK_POLL_MS / 1000.0)
            except queue.Empty:
                pass
            if self._callback_error is not None:
                raise RealSenseError(
                    f'{self.config.recording}: cannot decode a frame: '
                    f'{self._callback_error}') from self._callback_error
            finished = self._playback.current_status() == self._rs.playback_status.stopped
            if finished and self._queue.empty():
                if not self.config.repeat:
                    return None
                self.stop()
                self.start()
                waited_ms = 0
                continue
            waited_ms += _PLAYBACK_POLL_MS
            if waited_ms >= self.config.timeout_ms:
                _logger.warning('%s: no frame within %d ms; treating it as the end of the '
                                'recording', self.device_name, self.config.timeout_ms)
                return None

    def frames(self) -> Iterator[RealSenseFrame]:
        """
        Iterate over aligned framesets until the recording ends.

        :return: Iterator of frames.
        """
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def _to_frame(self, depth, color) -> RealSenseFrame:
        rgb = _color_to_rgb(self._rs, color)
        depth_raw = np.array(np.asanyarray(depth.get_data()), dtype=np.uint16, copy=True)
        camera = _intrinsics_from_rs(
            depth.get_profile().as_video_stream_profile().get_intrinsics())
        if rgb.shape[:2] != depth_raw.shape:
            raise RealSenseError(
                f'{self.device_name}: aligned depth {depth_raw.shape} does not match colour '
                f'{rgb.shape[:2]}')
        return RealSenseFrame(
            rgb=rgb, depth_raw=depth_raw, depth_scale=self._depth_scale, camera=camera,
            timestamp_ms=float(depth.get_timestamp()),
            timestamp_domain=str(depth.get_frame_timestamp_domain()).split('.')[-1],
            frame_number=int(depth.get_frame_number()))


class _FramePairer:
    """
    Pair depth and colour frames of a recording by timestamp into ``rs.composite_frame`` s.

    Keeps the newest frame of each stream; a pair is made when the two are within
    ``tolerance_ms`` of each other, otherwise the older frame is dropped and counted. The
    composite frame is built by a processing block, the only way pyrealsense2 offers.
    """

    def __init__(self, rs: ModuleType, tolerance_ms: float) -> None:
        self._rs = rs
        self._tolerance_ms = tolerance_ms
        self._lock = threading.Lock()
        self._latest: Dict[str, object] = {}
        self.unpaired = 0
        self._out = rs.frame_queue(2, keep_frames=True)
        self._held: List = []

        def compose(frame, source):
            self._held.append(frame)
            if len(self._held) == 2:
                source.frame_ready(source.allocate_composite_frame(self._held))
                self._held = []

        self._block = rs.processing_block(compose)
        self._block.start(self._out)

    def add(self, frame):
        """
        Offer one frame.

        :return: An ``rs.frameset`` with depth and colour, or None.
        """
        kind = 'depth' if frame.get_profile().stream_type() == self._rs.stream.depth else 'color'
        with self._lock:
            self._latest[kind] = frame
            if len(self._latest) < 2:
                return None
            depth, color = self._latest['depth'], self._latest['color']
            gap = depth.get_timestamp() - color.get_timestamp()
            if abs(gap) > self._tolerance_ms:
                del self._latest['depth' if gap < 0 else 'color']  # the older one
                self.unpaired += 1
                return None
            self._latest.clear()
            self._block.invoke(depth)
            self._block.invoke(color)
            return self._out.wait_for_frame(5000).as_frameset()


def _color_to_rgb(rs: ModuleType, color) -> np.ndarray:
    """
    Copy a colour frame out as RGB.

    :return: uint8 [H, W, 3], RGB order.
    :raises RealSenseError: For a format other than rgb8, bgr8, rgba8, bgra8 or yuyv.
    """
    fmt = color.get_profile().format()
    data = np.asanyarray(color.get_data())
    if fmt == rs.format.rgb8:
        return np.array(data, dtype=np.uint8, copy=True)
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(data[..., ::-1])
    if fmt == rs.format.rgba8:
        return np.ascontiguousarray(data[..., :3])
    if fmt == rs.format.bgra8:
        return np.ascontiguousarray(data[..., 2::-1])
    if fmt == rs.format.yuyv:
        import cv2
        return cv2.cvtColor(np.ascontiguousarray(data).reshape(
            color.get_height(), color.get_width(), 2), cv2.COLOR_YUV2RGB_YUYV)
    raise RealSenseError(f'colour format {fmt} is not supported (rgb8, bgr8, rgba8, bgra8, yuyv)')


class RealSenseDepthFilters:
    """
    librealsense's post-processing filters applied to numpy depth images.

    Each depth image is injected into a software device with the given intrinsics, so the
    filters run on real ``rs.depth_frame`` s exactly as they do on camera frames. Every set-up
    keeps its own filter instances, so the temporal filter sees the frame history. Set-ups:

    - ``rs_hole_filling``: ``hole_filling_filter`` with its default mode 1, farthest from
      around (one far outlier next to a hole spreads into it).
    - ``rs_hole_filling_nearest``: the same filter in mode 2, nearest from around.
    - ``rs_spatial``: ``spatial_filter`` with its default options (fills no holes by default).
    - ``rs_temporal``: ``temporal_filter`` with its default persistency.
    - ``rs_chain``: the realsense-ros order: disparity -> spatial -> temporal ->
      hole filling -> depth.

    The filters run on depth aligned to colour; realsense-ros runs them before alignment.

    :param intrinsics: Intrinsics of the depth images that will be filtered.
    :param depth_scale: Meters per depth unit.
    :param names: Which set-ups to run (default: all of :data:`FILTER_NAMES`).
    """

    def __init__(self, intrinsics: Intrinsics, depth_scale: float = 0.001,
                 names: Sequence[str] = FILTER_NAMES) -> None:
        unknown = [n for n in names if n not in FILTER_NAMES]
        if unknown:
            raise ValueError(f'unknown filter set-ups {unknown}; valid: {list(FILTER_NAMES)}')
        rs = load_pyrealsense2()
        self._rs = rs
        self.intrinsics = intrinsics
        self.depth_scale = float(depth_scale)
        self._device = rs.software_device()
        self._sensor = self._device.add_sensor('Depth')
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = rs.stream.depth, 0, 0
        stream.width, stream.height, stream.fps = intrinsics.width, intrinsics.height, 30
        stream.bpp, stream.fmt = 2, rs.format.z16
        stream.intrinsics = _rs_intrinsics(rs, intrinsics)
        self._profile = self._sensor.add_video_stream(stream).as_video_stream_profile()
        self._sensor.add_read_only_option(rs.option.depth_units, self.depth_scale)
        self._queue = rs.frame_queue(2, keep_frames=True)
        self._sensor.open(self._profile)
        self._sensor.start(self._queue)
        self._chains: Dict[str, List] = {n: self._make_chain(n) for n in names}
        self._count = 0

    def _make_chain(self, name: str) -> List:
        rs = self._rs
        if name == 'rs_hole_filling':
            return [rs.hole_filling_filter()]
        if name == 'rs_hole_filling_nearest':
            flt = rs.hole_filling_filter()
            flt.set_option(rs.option.holes_fill, 2)
            return [flt]
        if name == 'rs_spatial':
            return [rs.spatial_filter()]
        if name == 'rs_temporal':
            return [rs.temporal_filter()]
        return [rs.disparity_transform(True), rs.spatial_filter(), rs.temporal_filter(),
                rs.hole_filling_filter(), rs.disparity_transform(False)]

    @property
    def names(self) -> Tuple[str, ...]:
        """:return: The set-ups this instance runs, in order."""
        return tuple(self._chains)

    def apply(self, depth_raw: np.ndarray) -> Dict[str, np.ndarray]:
        """
        Run every set-up on one depth image; call in frame order (temporal state).

        :param depth_raw: Depth in device units, uint16 [H, W]; 0 = no depth.
        :return: Set-up name -> filtered depth, uint16 [H, W], same units; 0 = still no depth.
        """
        depth = np.ascontiguousarray(depth_raw, dtype=np.uint16)
        if depth.shape != (self.intrinsics.height, self.intrinsics.width):
            raise ValueError(
                f'depth shape {depth.shape} does not match the filter intrinsics '
                f'{self.intrinsics.height}x{self.intrinsics.width}')
        rs = self._rs
        frame = rs.software_video_frame()
        frame.pixels = depth
        frame.bpp = 2
        frame.stride = depth.shape[1] * 2
        frame.timestamp = self._count * 1000.0 / 30.0
        frame.domain = rs.timestamp_domain.hardware_clock
        frame.frame_number = self._count
        frame.profile = self._profile
        self._count += 1
        self._sensor.on_video_frame(frame)
        source = self._queue.wait_for_frame(5000)
        out = {}
        for name, chain in self._chains.items():
            f = source
            for flt in chain:
                f = flt.process(f)
            out[name] = np.array(np.asanyarray(f.get_data()), dtype=np.uint16, copy=True)
        return out

    def close(self) -> None:
        """Stop the software sensor; safe to call twice."""
        if self._sensor is not None:
            try:
                self._sensor.stop()
                self._sensor.close()
            except RuntimeError:
                pass
            self._sensor = None

    def __enter__(self) -> 'RealSenseDepthFilters':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_recording(path: str, rgb_frames: Sequence[np.ndarray],
                    depth_frames: Sequence[np.ndarray], color_intrinsics: Intrinsics,
                    depth_intrinsics: Optional[Intrinsics] = None, depth_scale: float = 0.001,
                    depth_to_color_m: Tuple[float, float, float] = (0.0, 0.0, 0.0),
                    fps: int = 30) -> str:
    """
    Write RGB-D frames to a librealsense recording through a software device.

    The file plays back like a camera (``RealSenseConfig(recording=path)``), with both
    intrinsics, the depth scale and the depth-to-colour extrinsics (identity rotation).
    pyrealsense2 2.58+ writes only ``.db3``.

    :param path: Output file, must end in ``.db3``; must not exist.
    :param rgb_frames: Colour images, uint8 [H, W, 3] RGB.
    :param depth_frames: Depth in device units, uint16 [Hd, Wd]; 0 = no depth.
    :param color_intrinsics: Intrinsics of the colour images.
    :param depth_intrinsics: Intrinsics of the depth images (default: the colour ones).
    :param depth_scale: Meters per depth unit.
    :param depth_to_color_m: Translation from the depth to the colour camera, meters.
    :param fps: Nominal frame rate, Hz (sets the timestamps).
    :return: ``path``.
    """
    if not path.endswith('.db3'):
        raise ValueError(f'{path}: librealsense records only .db3 files')
    if os.path.exists(path):
        raise ValueError(f'{path}: already exists')
    if len(rgb_frames) != len(depth_frames) or not rgb_frames:
        raise ValueError(
            f'need as many colour as depth frames and at least one, got '
            f'{len(rgb_frames)} and {len(depth_frames)}')
    depth_intrinsics = depth_intrinsics or color_intrinsics
    rs = load_pyrealsense2()
    dev = rs.software_device()
    dsensor = dev.add_sensor('Depth')
    csensor = dev.add_sensor('Color')

    def add_stream(sensor, kind, uid, intr, bpp, fmt):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = kind, 0, uid
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = intr.width, intr.height, fps, bpp, fmt
        vs.intrinsics = _rs_intrinsics(rs, intr)
        return sensor.add_video_stream(vs)

    dprof = add_stream(dsensor, rs.stream.depth, 0, depth_intrinsics, 2, rs.format.z16)
    cprof = add_stream(csensor, rs.stream.color, 1, color_intrinsics, 3, rs.format.rgb8)
    dsensor.add_read_only_option(rs.option.depth_units, float(depth_scale))
    ext = rs.extrinsics()
    ext.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    ext.translation = [float(t) for t in depth_to_color_m]
    dprof.register_extrinsics_to(cprof, ext)
    dev.create_matcher(rs.matchers.default)
    recorder = rs.recorder(path, dev)
    rec_depth, rec_color = recorder.query_sensors()
    queue = rs.frame_queue(2 * len(rgb_frames) + 2, keep_frames=True)
    rec_depth.open(dprof)
    rec_color.open(cprof)
    rec_depth.start(queue)
    rec_color.start(queue)
    alive = []  # the software frames point at these buffers until the recorder is done
    try:
        for i, (rgb, depth) in enumerate(zip(rgb_frames, depth_frames)):
            rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
            depth = np.ascontiguousarray(depth, dtype=np.uint16)
            if rgb.shape != (color_intrinsics.height, color_intrinsics.width, 3):
                raise ValueError(f'frame {i}: colour shape {rgb.shape} does not match '
                                 f'{color_intrinsics.height}x{color_intrinsics.width}x3')
            if depth.shape != (depth_intrinsics.height, depth_intrinsics.width):
                raise ValueError(f'frame {i}: depth shape {depth.shape} does not match '
                                 f'{depth_intrinsics.height}x{depth_intrinsics.width}')
            alive += [rgb, depth]
            stamp = i * 1000.0 / fps
            for sensor, prof, pixels, bpp in ((dsensor, dprof, depth, 2),
                                              (csensor, cprof, rgb, 3)):
                frame = rs.software_video_frame()
                frame.pixels = pixels
                frame.bpp = bpp
                frame.stride = pixels.shape[1] * bpp
                frame.timestamp = stamp
                frame.domain = rs.timestamp_domain.hardware_clock
                frame.frame_number = i
                frame.profile = prof.as_video_stream_profile()
                sensor.on_video_frame(frame)
    finally:
        rec_depth.stop()
        rec_color.stop()
        rec_depth.close()
        rec_color.close()
        # The file is finalised when the recorder and its sensors are released.
        del rec_depth, rec_color, recorder
    return path
