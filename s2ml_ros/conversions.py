"""
Conversions between ROS image / camera messages and numpy arrays.

Every function is duck-typed on the message: anything with the fields of ``sensor_msgs/Image``
(``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``) or
``sensor_msgs/CameraInfo`` works, so the same code reads rclpy messages and messages deserialized
by ``rosbags``. ``data`` may be ``bytes``, ``bytearray``, ``memoryview``, ``array.array`` or a
numpy ``uint8`` array. Nothing here imports rclpy or torch; the ``fill_*`` helpers import
``sensor_msgs`` lazily, only when they have to build a message themselves.

Units follow REP 118: 16UC1 depth is in millimeters (scaled by a ``depth_scale`` in meters per
unit) with 0 = unknown; 32FC1 depth is in meters with NaN (any non-finite value) = unknown.
Inside the package depth is float32 meters with 0 = unknown.
"""

import array
from dataclasses import dataclass
import functools
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from s2ml_ros.geometry import GeometryError, Intrinsics
from s2ml_ros.pointcloud import valid_depth, with_nan

DEPTH_ENCODINGS = ('16UC1', '32FC1')
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
# Aliases some drivers use for the same layouts (REP 118 allows mono16 for millimeter depth).
_ENCODING_ALIASES = {'mono16': '16UC1', '8UC3': 'bgr8', '8UC1': 'mono8', '8UC4': 'bgra8'}
# encoding -> (numpy dtype without byte order, channels)
_LAYOUTS = {
    '16UC1': ('u2', 1),
    '32FC1': ('f4', 1),
    'rgb8': ('u1', 3),
    'bgr8': ('u1', 3),
    'rgba8': ('u1', 4),
    'bgra8': ('u1', 4),
    'mono8': ('u1', 1),
}
# Largest side we accept; a corrupted header must not make us allocate gigabytes.
MAX_SIDE = 16384

# Values of the provenance mask published next to the completed depth (mono8).
MASK_INVALID = 0
MASK_COMPLETED = 128
MASK_MEASURED = 255


class ConversionError(ValueError):
    """Raised for a message that cannot be converted: bad encoding, size, step or buffer."""


def normalize_encoding(encoding: str) -> str:
    """
    Map an image encoding to the canonical name used here.

    :param encoding: ``Image.encoding`` as published (case-insensitive for the aliases).
    :return: The canonical encoding, e.g. ``'16UC1'`` for ``'mono16'``.
    """
    enc = str(encoding).strip()
    return _ENCODING_ALIASES.get(enc, _ENCODING_ALIASES.get(enc.lower(), enc))


def _as_uint8_buffer(data: Any) -> np.ndarray:
    """Zero-copy view of a message ``data`` field as a flat uint8 array."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConversionError(
            f'image data of type {type(data).__name__} is not a byte buffer') from exc


def image_to_numpy(msg: Any, accepted: Optional[Sequence[str]] = None) -> np.ndarray:
    """
    Decode an Image message into a native-endian numpy array, honouring ``step`` padding.

    :param msg: Object with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and
        ``data``.
    :param accepted: Canonical encodings allowed here; default: every depth and color encoding.
    :return: A C-contiguous array, shape [H, W] for one channel or [H, W, C] otherwise, dtype
        uint8, uint16 or float32 as the encoding says. Without row padding and in native byte
        order it is a view of ``msg.data`` (no copy; do not modify it), else a copy.
    :raises ConversionError: For an unknown encoding, a size or step that does not fit, or a
        buffer shorter than ``step * height``.
    """
    accepted = tuple(accepted) if accepted is not None else DEPTH_ENCODINGS + COLOR_ENCODINGS
    encoding = normalize_encoding(msg.encoding)
    if encoding not in accepted:
        raise ConversionError(
            f'unsupported image encoding {msg.encoding!r}; accepted: {", ".join(accepted)}')
    base, channels = _LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ConversionError(
            f'image size {width}x{height} is invalid; width and height must be in '
            f'[1, {MAX_SIDE}]')
    itemsize = int(base[1:])
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ConversionError(
            f'step {step} is smaller than width {width} x {channels} channel(s) x {itemsize} '
            f'byte(s) = {row_bytes} for encoding {encoding}')
    buf = _as_uint8_buffer(msg.data)
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ConversionError(
            f'image data is truncated: {buf.size} bytes for a {width}x{height} {encoding} image '
            f'with step {step} (expected {step * height})')
    if buf.size < step * height:
        # The last row may omit its padding; pad a copy so that the rows reshape evenly.
        buf = np.concatenate([buf[:needed], np.zeros(step * height - needed, np.uint8)])
    byteorder = '>' if msg.is_bigendian else '<'
    dtype = np.dtype(byteorder + base) if itemsize > 1 else np.dtype(np.uint8)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if step == row_bytes and dtype.isnative:
        view = buf[:row_bytes * height].view(dtype)
        if view.flags.aligned:
            return view.reshape(shape)  # no padding: a view
    rows = buf[:step * height].reshape(height, step)[:, :row_bytes]
    # One copy: contiguous rows in the message byte order, then native order if it differs.
    out = np.ascontiguousarray(rows).view(dtype)
    if not dtype.isnative:
        out = out.astype(dtype.newbyteorder('='))
    return out.reshape(shape)


def depth_to_meters(msg: Any, depth_scale: float = 0.001, min_depth_m: float = 0.0,
                    max_depth_m: float = float('inf')) -> np.ndarray:
    """
    Decode a depth Image to float32 meters with 0 = unknown.

    :param msg: Image with encoding 16UC1 (or mono16) or 32FC1.
    :param depth_scale: Meters per unit of 16UC1 depth (0.001 = millimeters); ignored for 32FC1.
    :param min_depth_m: Depth below this (compared in float32) is unknown too.
    :param max_depth_m: Depth beyond this (compared in float32) is unknown too.
    :return: Depth in meters, float32 [H, W]; 0 where the input is 0, negative, non-finite or
        outside [min_depth_m, max_depth_m].
    """
    raw = image_to_numpy(msg, DEPTH_ENCODINGS)
    limit = np.float32(max_depth_m)
    if raw.dtype == np.uint16:
        scale = np.float32(depth_scale)
        # Exact conversion, then scaling in place: faster than one casting multiply.
        depth = raw.astype(np.float32)
        depth *= scale
        # Scaling by a positive factor keeps the order, so the largest raw value tells whether
        # any depth is too far; it is read from the 2-byte input instead of comparing every float.
        check = min_depth_m > 0 or not scale > 0 or (
            raw.size > 0 and not np.float32(raw.max()) * scale <= limit)
    else:
        # Always a new array (raw may be a view of the message); NaN, inf and negatives -> 0.
        depth = with_nan(raw, valid_depth(raw), fill_zero=True)
        check = True
    if check:
        in_range = depth <= limit
        if min_depth_m > 0:
            in_range &= depth >= np.float32(min_depth_m)
        if not in_range.all():
            depth = with_nan(depth, in_range, fill_zero=True)
    return depth


def color_to_rgb(msg: Any) -> np.ndarray:
    """
    Decode a color Image to RGB.

    :param msg: Image with encoding rgb8, bgr8, rgba8, bgra8 or mono8.
    :return: uint8 [H, W, 3] in RGB channel order (mono8 is replicated to three channels).
    """
    img = image_to_numpy(msg, COLOR_ENCODINGS)
    encoding = normalize_encoding(msg.encoding)
    if encoding == 'rgb8':
        return img
    if encoding == 'bgr8':
        return np.ascontiguousarray(img[..., ::-1])
    if encoding == 'rgba8':
        return np.ascontiguousarray(img[..., :3])
    if encoding == 'bgra8':
        return np.ascontiguousarray(img[..., 2::-1])
    return np.repeat(img[..., None], 3, axis=2)


def intrinsics_from_camera_info(info: Any) -> Intrinsics:
    """
    Pinhole intrinsics from a CameraInfo message (its ``k`` matrix, binning applied).

    :param info: Object with ``width``, ``height``, ``k`` (9 values, row-major) and optionally
        ``binning_x`` / ``binning_y``.
    :return: Intrinsics of an image of ``info.width`` x ``info.height`` (divided by binning).
    :raises ConversionError: For an all-zero or non-finite ``k`` or a zero image size.
    """
    k = np.asarray(getattr(info, 'k', getattr(info, 'K', ())), dtype=np.float64).reshape(-1)
    # A camera publishes the same calibration with every frame: convert each one only once.
    return _intrinsics(k.tobytes(), int(info.width), int(info.height),
                       int(getattr(info, 'binning_x', 0) or 1),
                       int(getattr(info, 'binning_y', 0) or 1))


@functools.lru_cache(maxsize=16)
def _intrinsics(k_bytes: bytes, info_width: int, info_height: int, binning_x: int,
                binning_y: int) -> Intrinsics:
    k = np.frombuffer(k_bytes, dtype=np.float64)
    if k.size != 9:
        raise ConversionError(f'CameraInfo.k must have 9 values, got {k.size}')
    if not np.any(k) or not np.all(np.isfinite(k)):
        raise ConversionError(
            f'CameraInfo.k is {"all zero" if not np.any(k) else "not finite"} ({k.tolist()}): '
            'the camera is not calibrated, cannot back-project')
    bx, by = max(binning_x, 1), max(binning_y, 1)
    width, height = info_width // bx, info_height // by
    if width <= 0 or height <= 0:
        raise ConversionError(f'CameraInfo size {info_width}x{info_height} is invalid')
    km = k.reshape(3, 3)
    try:
        return Intrinsics(float(km[0, 0]) / bx, float(km[1, 1]) / by,
                          (float(km[0, 2]) + 0.5) / bx - 0.5, (float(km[1, 2]) + 0.5) / by - 0.5,
                          width, height)
    except GeometryError as exc:
        raise ConversionError(f'CameraInfo.k is not a valid camera matrix: {exc}') from exc


def camera_info_fields(intrinsics: Intrinsics, source: Any = None) -> Dict[str, Any]:
    """
    Field values of the CameraInfo that describes an output image.

    ``k`` and ``p`` come from ``intrinsics`` (``p`` = [K | 0], so consumers that project with P,
    like depth_image_proc, get the same camera). Distortion and rectification are copied from
    ``source``: distortion coefficients act on normalized coordinates and do not change with a
    resize.

    :param intrinsics: Camera model of the output image.
    :param source: The input CameraInfo, or None for a distortion-free camera.
    :return: Dict with ``height``, ``width``, ``distortion_model``, ``d``, ``k``, ``r``, ``p``,
        ``binning_x``, ``binning_y`` (lists of floats for the matrices).
    """
    # Built from plain floats: this runs for every published frame.
    fx, fy = float(intrinsics.fx), float(intrinsics.fy)
    cx, cy = float(intrinsics.cx), float(intrinsics.cy)
    r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    d: list = []
    model = 'plumb_bob'
    if source is not None:
        src_r = np.asarray(getattr(source, 'r', ()), dtype=np.float64).reshape(-1)
        if src_r.size == 9 and np.any(src_r):
            r = src_r.tolist()
        d = [float(x) for x in getattr(source, 'd', ())]
        model = str(getattr(source, 'distortion_model', '') or ('plumb_bob' if d else ''))
    if not d:
        d = [0.0] * 5
        model = model or 'plumb_bob'
    return {
        'height': intrinsics.height, 'width': intrinsics.width, 'distortion_model': model,
        'd': d, 'k': [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0], 'r': r,
        'p': [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        'binning_x': 0, 'binning_y': 0,
    }


@dataclass(frozen=True)
class ImageFields:
    """
    Field values of an Image message.

    :param height: Rows.
    :param width: Columns.
    :param encoding: ROS encoding string.
    :param is_bigendian: 0 or 1 (always 0 here: little-endian output).
    :param step: Bytes per row.
    :param data: The pixels, C-contiguous uint8 [step * height].
    """

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def numpy_to_image_fields(image: np.ndarray, encoding: str) -> ImageFields:
    """
    Encode an array as Image field values, with no padding and little-endian data.

    :param image: [H, W] or [H, W, C] array whose dtype and channels match ``encoding``.
    :param encoding: One of the depth or color encodings.
    :return: The field values.
    """
    encoding = normalize_encoding(encoding)
    if encoding not in _LAYOUTS:
        raise ConversionError(
            f'cannot encode {encoding!r}; accepted: {", ".join(_LAYOUTS)}')
    base, channels = _LAYOUTS[encoding]
    dtype = np.dtype('<' + base) if base != 'u1' else np.dtype(np.uint8)
    image = np.asarray(image)
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels):
        raise ConversionError(
            f'array of shape {image.shape} does not fit encoding {encoding} '
            f'({channels} channel(s))')
    if image.dtype.kind != dtype.kind or image.dtype.itemsize != dtype.itemsize:
        raise ConversionError(f'array dtype {image.dtype} does not fit encoding {encoding}')
    pixels = np.ascontiguousarray(image, dtype=dtype)
    height, width = pixels.shape[:2]
    return ImageFields(height, width, encoding, 0, width * channels * dtype.itemsize,
                       pixels.reshape(-1).view(np.uint8))


def depth_image_fields(depth_m: np.ndarray, encoding: str = '32FC1') -> ImageFields:
    """
    Encode depth in meters as a REP 118 Image.

    :param depth_m: float32 [H, W] meters; NaN, inf, 0 or negative = unknown.
    :param encoding: ``'32FC1'`` (meters, NaN = unknown) or ``'16UC1'`` (millimeters, 0 =
        unknown; depths past 65.535 m are written as unknown).
    :return: The field values.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = valid_depth(depth)
    if encoding == '32FC1':
        return numpy_to_image_fields(with_nan(depth, valid), '32FC1')
    if encoding == '16UC1':
        mm = np.where(valid, np.rint(depth * 1000.0), 0.0)
        mm[mm > 65535] = 0
        return numpy_to_image_fields(mm.astype(np.uint16), '16UC1')
    raise ConversionError(
        f'unsupported output depth encoding {encoding!r}; accepted: 32FC1, 16UC1')


def byte_array(nbytes: int) -> array.array:
    """
    Zero-filled ``array.array('B')`` to build message data in place (see ``build_cloud``).

    :param nbytes: Size in bytes.
    :return: The array; ``np.frombuffer`` gives a writable view of it.
    """
    return array.array('B', b'\x00') * int(nbytes)


class BufferPool:
    """
    Reusable ``array.array('B')`` message buffers, handed out only when nothing else holds them.

    A node that publishes the same large messages every frame can write each frame into the
    buffer of an earlier, already published message instead of allocating and zero-filling a new
    one. A buffer is reused only when the pool holds the last reference to it: while a message,
    a numpy view or anything else still refers to it (its reference count says so), it is never
    handed out again, so a message cannot change after it was built. CPython only; elsewhere
    every call allocates. One pool per thread (it is not locked).

    :param capacity: Most buffers kept for reuse (the most recently used ones are kept).
    """

    def __init__(self, capacity: int = 8) -> None:
        self._capacity = max(int(capacity), 0)
        self._buffers: List[array.array] = []
        # The reference count a buffer held by nothing but the pool shows to _refs, measured
        # here because it differs between interpreter versions.
        probe = [array.array('B')]
        self._free_refs = self._refs(probe, 0) if sys.implementation.name == 'cpython' else -1

    @staticmethod
    def _refs(buffers: List[array.array], index: int) -> int:
        return sys.getrefcount(buffers[index])

    def take(self, nbytes: int) -> array.array:
        """
        Return a buffer of ``nbytes`` bytes that nothing outside the pool references.

        :param nbytes: Size in bytes.
        :return: A reused buffer (old contents; the caller overwrites every byte) or a new
            zero-filled one.
        """
        nbytes = int(nbytes)
        buffers = self._buffers
        for i in range(len(buffers)):
            if len(buffers[i]) == nbytes and self._refs(buffers, i) == self._free_refs:
                buf = buffers.pop(i)
                buffers.append(buf)  # most recently used last
                return buf
        buf = byte_array(nbytes)
        if self._capacity and self._free_refs > 0:
            if len(buffers) >= self._capacity:
                # Full: forget the least recently used buffer, preferably one not in use (a
                # buffer in use stays valid for its holders; the pool just stops tracking it).
                free = [i for i in range(len(buffers))
                        if self._refs(buffers, i) == self._free_refs]
                del buffers[free[0] if free else 0]
            buffers.append(buf)
        return buf


def to_byte_array(data: np.ndarray) -> array.array:
    """
    Copy bytes into an ``array.array('B')``, the type rclpy message setters take without a loop.

    :param data: Any C-contiguous array or buffer.
    :return: A new ``array.array`` of typecode 'B'.
    """
    out = array.array('B')
    out.frombytes(memoryview(np.ascontiguousarray(data)).cast('B'))
    return out


def whole_byte_array(data: Any) -> Optional[array.array]:
    """
    Find the ``array.array('B')`` that ``data`` is, or that a numpy array views byte for byte.

    :param data: An ``array.array``, a numpy array or any other buffer.
    :return: That ``array.array`` when ``data`` covers all of it, from its first byte and in
        order (e.g. ``np.frombuffer(buf, np.float32).reshape(h, w)``), else None.
    """
    if isinstance(data, array.array):
        return data if data.typecode == 'B' else None
    if not isinstance(data, np.ndarray) or not data.flags.c_contiguous:
        return None
    owner = data.base
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    if isinstance(owner, array.array) and owner.typecode == 'B' and \
            data.nbytes == len(owner) and data.ctypes.data == owner.buffer_info()[0]:
        return owner
    return None


def fill_image(msg: Any, fields: ImageFields, header: Any = None, share: bool = False) -> Any:
    """
    Set the fields of an Image message from :class:`ImageFields`.

    :param msg: A ``sensor_msgs.msg.Image`` (or any object with the same attributes).
    :param fields: Values from :func:`numpy_to_image_fields` or :func:`depth_image_fields`.
    :param header: Header to copy in, or None to leave it.
    :param share: When the pixels are a numpy view of a whole ``array.array('B')`` (built in a
        buffer from :func:`byte_array` or :meth:`BufferPool.take`), hand that buffer over instead
        of copying it; the message then shares it, so the caller must not modify it afterwards.
        Other pixels are always copied.
    :return: ``msg``.
    """
    if header is not None:
        msg.header = header
    msg.height, msg.width = fields.height, fields.width
    msg.encoding, msg.is_bigendian, msg.step = fields.encoding, fields.is_bigendian, fields.step
    whole = whole_byte_array(fields.data) if share else None
    msg.data = whole if whole is not None else to_byte_array(fields.data)
    return msg


def new_message(cls: Any, check_fields: bool = True) -> Any:
    """
    Instantiate a message class so that assigning an ``array.array`` to a byte field keeps it.

    On Jazzy and later, generated messages copy an assigned ``array.array`` unless field checks
    are on (``check_fields=True``); with them on, the array is stored as is, saving a copy of every
    image and cloud. Humble's messages have no such switch and always store it.

    :param cls: A generated message class, e.g. ``sensor_msgs.msg.Image``.
    :param check_fields: False for a message without byte fields whose values are built here:
        its setters then skip their per-value checks (several times faster for CameraInfo) and
        copy what they are given.
    :return: A new instance.
    """
    try:
        return cls(check_fields=check_fields)
    except (AssertionError, TypeError):
        return cls()


def make_image(fields: ImageFields, header: Any = None, share: bool = False) -> Any:
    """
    Build a ``sensor_msgs.msg.Image`` (imports sensor_msgs on first use).

    :param fields: Pixel field values.
    :param header: Header to copy in, or None.
    :param share: Hand over pixels built in a message buffer without a copy (see
        :func:`fill_image`).
    :return: The message.
    """
    from sensor_msgs.msg import Image
    return fill_image(new_message(Image), fields, header, share)


def fill_camera_info(msg: Any, fields: Dict[str, Any], header: Any = None) -> Any:
    """
    Set the fields of a CameraInfo message from :func:`camera_info_fields`.

    :param msg: A ``sensor_msgs.msg.CameraInfo``.
    :param fields: Field values.
    :param header: Header to copy in, or None.
    :return: ``msg``.
    """
    if header is not None:
        msg.header = header
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def make_camera_info(fields: Dict[str, Any], header: Any = None) -> Any:
    """
    Build a ``sensor_msgs.msg.CameraInfo`` (imports sensor_msgs on first use).

    :param fields: Values from :func:`camera_info_fields`.
    :param header: Header to copy in, or None.
    :return: The message.
    """
    from sensor_msgs.msg import CameraInfo
    return fill_camera_info(new_message(CameraInfo, check_fields=False), fields, header)


def fill_point_cloud(msg: Any, cloud: Any, header: Any = None,
                     point_field_cls: Any = None) -> Any:
    """
    Set the fields of a PointCloud2 message from a :class:`s2ml_ros.pointcloud.CloudData`.

    :param msg: A ``sensor_msgs.msg.PointCloud2``.
    :param cloud: Layout and bytes from :func:`s2ml_ros.pointcloud.build_cloud`.
    :param header: Header to copy in, or None.
    :param point_field_cls: Class used for the fields; default ``sensor_msgs.msg.PointField``.
    :return: ``msg``.
    """
    if point_field_cls is None:
        from sensor_msgs.msg import PointField as point_field_cls
    if header is not None:
        msg.header = header
    msg.height, msg.width = cloud.height, cloud.width
    msg.fields = [point_field_cls(name=n, offset=o, datatype=t, count=c)
                  for n, o, t, c in cloud.fields]
    msg.is_bigendian = cloud.is_bigendian
    msg.point_step, msg.row_step = cloud.point_step, cloud.row_step
    msg.is_dense = cloud.is_dense
    msg.data = cloud.data if isinstance(cloud.data, array.array) and cloud.data.typecode == 'B' \
        else to_byte_array(cloud.data)
    return msg


def make_point_cloud(cloud: Any, header: Any = None) -> Any:
    """
    Build a ``sensor_msgs.msg.PointCloud2`` (imports sensor_msgs on first use).

    :param cloud: Layout and bytes from :func:`s2ml_ros.pointcloud.build_cloud`.
    :param header: Header to copy in, or None.
    :return: The message.
    """
    from sensor_msgs.msg import PointCloud2
    return fill_point_cloud(new_message(PointCloud2), cloud, header)


def stamp_to_ns(stamp: Any) -> int:
    """
    Nanoseconds of a ``builtin_interfaces/Time`` (``sec``, ``nanosec``).

    :param stamp: The stamp.
    :return: sec * 1e9 + nanosec, as int.
    """
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_size(msg: Any) -> Tuple[int, int]:
    """:return: (width, height) of an Image-like message."""
    return int(msg.width), int(msg.height)
