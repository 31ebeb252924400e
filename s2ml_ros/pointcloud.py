"""
Organized PointCloud2 payloads built with numpy, in the layout depth_image_proc publishes.

numpy and OpenCV; no ROS. :func:`build_cloud` returns the field table and the bytes;
:func:`s2ml_ros.conversions.fill_point_cloud` turns them into a message. The cloud keeps the image
grid (``height`` x ``width``), writes NaN for every coordinate of an unknown pixel and is never
dense, so consumers can index points by pixel.
"""

from dataclasses import dataclass
import math
from typing import Any, Callable, Optional, Tuple

import cv2
import numpy as np

from s2ml_ros.geometry import GeometryError, Intrinsics, pixel_rays

# sensor_msgs/PointField datatype codes.
FLOAT32 = 7
UINT32 = 6

# (name, offset, datatype, count) of each field, as in sensor_msgs/PointField.
XYZ_FIELDS = (('x', 0, FLOAT32, 1), ('y', 4, FLOAT32, 1), ('z', 8, FLOAT32, 1))
XYZRGB_FIELDS = XYZ_FIELDS + (('rgb', 12, FLOAT32, 1),)
_NAN_BITS = np.uint32(0x7FC00000)


def with_nan(values: np.ndarray, valid: np.ndarray, fill_zero: bool = False) -> np.ndarray:
    """
    Copy of ``values`` with NaN (or 0) wherever ``valid`` is False.

    Same result as ``np.where(valid, values, nan)`` but done with integer bit masks, about four
    times faster on a 640x480 image (``np.where`` is slow on float data containing NaN).

    :param values: float32 array.
    :param valid: bool array of the same shape.
    :param fill_zero: Write 0.0 instead of NaN.
    :return: New float32 array.
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    keep = np.ascontiguousarray(valid, dtype=bool).view(np.uint8).astype(np.uint32)
    np.negative(keep, out=keep)  # 0 -> 0, 1 -> 0xFFFFFFFF
    out = values.view(np.uint32) & keep
    if not fill_zero:
        np.invert(keep, out=keep)
        keep &= _NAN_BITS
        out |= keep
    return out.view(np.float32)


def array_in_buffer(shape: Tuple[int, ...], dtype: Any,
                    allocate: Optional[Callable[[int], Any]] = None) -> Tuple[Any, np.ndarray]:
    """
    Make an array whose memory is a buffer from ``allocate`` (e.g. a message buffer).

    :param shape: Array shape.
    :param dtype: Array dtype.
    :param allocate: Called with the size in bytes; returns a writable buffer of that size.
        None: a new numpy uint8 array.
    :return: (the buffer, a C-contiguous [shape] ``dtype`` view of all of it).
    :raises ValueError: When the buffer has another size.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    data = np.empty(nbytes, np.uint8) if allocate is None else allocate(nbytes)
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size != nbytes:
        raise ValueError(f'allocated {raw.size} bytes for a {nbytes}-byte array')
    return data, raw.view(dtype).reshape(shape)


def valid_depth(depth_m: np.ndarray) -> np.ndarray:
    """:return: bool mask of finite, positive depth (NaN, inf, 0 and negatives are invalid)."""
    valid = depth_m > 0  # False for NaN
    valid &= depth_m < np.inf
    return valid


@dataclass(frozen=True)
class CloudData:
    """
    Everything a PointCloud2 message needs except the header.

    :param height: Rows of the organized cloud.
    :param width: Columns.
    :param fields: (name, offset, datatype, count) per point field.
    :param point_step: Bytes per point.
    :param row_step: Bytes per row (``point_step * width``).
    :param data: Point bytes, uint8 [row_step * height], little-endian.
    :param is_dense: Always False: unknown pixels are NaN points.
    :param is_bigendian: Always False.
    """

    height: int
    width: int
    fields: Tuple[Tuple[str, int, int, int], ...]
    point_step: int
    row_step: int
    data: np.ndarray
    is_dense: bool = False
    is_bigendian: bool = False


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """
    Pack colors into the float32 ``rgb`` field of PCL / RViz (0x00RRGGBB reinterpreted).

    :param rgb: uint8 [..., 3] in RGB order.
    :return: float32 [...] whose bits are ``r << 16 | g << 8 | b``.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    packed = ((rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
              | rgb[..., 2].astype(np.uint32))
    return packed.view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """
    Inverse of :func:`pack_rgb`.

    :param packed: float32 [...] packed colors.
    :return: uint8 [..., 3] RGB.
    """
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)


def build_cloud(depth_m: np.ndarray, intrinsics: Intrinsics, rgb: Optional[np.ndarray] = None,
                decimation: int = 1, allocate: Optional[Callable[[int], Any]] = None,
                nan_is_only_invalid: bool = False) -> CloudData:
    """
    Back-project a depth image into an organized x, y, z (, rgb) cloud in the optical frame.

    For pixel (u, v) with depth z: x = (u - cx) z / fx, y = (v - cy) z / fy, as
    :func:`s2ml_ros.geometry.backproject` computes. One-off calls; a node that builds a cloud
    every frame keeps a :class:`CloudBuilder` instead, which gives the same bytes faster.

    :param depth_m: float32 [H, W] meters; 0, negative or non-finite = unknown (NaN point).
    :param intrinsics: Camera model of ``depth_m`` (same H, W).
    :param rgb: uint8 [H, W, 3] colors registered to the depth, or None for an x, y, z cloud.
    :param decimation: Keep every n-th row and column (1 = full resolution); the cloud stays
        organized with ceil(H / n) x ceil(W / n) points.
    :param allocate: Called with the number of bytes; returns the writable buffer the points
        are written into (e.g. an ``array.array('B')`` that a message can take without another
        copy). Default: a numpy uint8 array.
    :param nan_is_only_invalid: The caller guarantees that every value of ``depth_m`` is either
        NaN or a finite positive depth (as :func:`s2ml_ros.completion.finalize_depth` returns), so
        the validity pass is skipped.
    :return: The cloud layout and bytes (``data`` is the allocated buffer).
    """
    return CloudBuilder().build(depth_m, intrinsics, rgb, decimation, allocate,
                                nan_is_only_invalid)


class CloudBuilder:
    """
    Build organized clouds frame after frame, keeping what does not change between frames.

    The per-pixel ray factors x/z and y/z are computed once per camera model and decimation (as
    full planes, which multiply faster than broadcast rows), and the intermediate planes (x, y,
    packed colors) are kept and overwritten by the next call. Only these private scratch arrays
    are reused: the points of every cloud go into a new buffer from ``allocate``, so a returned
    cloud never changes afterwards. One builder per thread (the scratch arrays are not locked).
    """

    def __init__(self) -> None:
        self._rays_key: Any = None
        self._rays: Tuple[np.ndarray, np.ndarray] = (np.empty((0, 0), np.float32),) * 2
        self._scratch: dict = {}

    def _ray_planes(self, intrinsics: Intrinsics, n: int) -> Tuple[np.ndarray, np.ndarray]:
        key = (intrinsics, n)
        if key != self._rays_key:
            x_over_z, y_over_z = pixel_rays(intrinsics)
            x_over_z, y_over_z = x_over_z[::n], y_over_z[::n]
            shape = (y_over_z.size, x_over_z.size)
            self._rays = (np.ascontiguousarray(np.broadcast_to(x_over_z[None, :], shape)),
                          np.ascontiguousarray(np.broadcast_to(y_over_z[:, None], shape)))
            self._rays_key = key
        return self._rays

    def _plane(self, name: str, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
        buf = self._scratch.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._scratch[name] = np.empty(shape, dtype)
        return buf

    def build(self, depth_m: np.ndarray, intrinsics: Intrinsics,
              rgb: Optional[np.ndarray] = None, decimation: int = 1,
              allocate: Optional[Callable[[int], Any]] = None,
              nan_is_only_invalid: bool = False) -> CloudData:
        """
        Back-project a depth image; same arguments and result as :func:`build_cloud`.

        :param depth_m: float32 [H, W] meters; 0, negative or non-finite = unknown (NaN point).
        :param intrinsics: Camera model of ``depth_m`` (same H, W).
        :param rgb: uint8 [H, W, 3] colors registered to the depth, or None.
        :param decimation: Keep every n-th row and column (1 = full resolution).
        :param allocate: Called with the number of bytes; returns the buffer the points are
            written into. Default: a new numpy uint8 array.
        :param nan_is_only_invalid: Every value of ``depth_m`` is NaN or a finite positive
            depth, so the validity pass is skipped.
        :return: The cloud layout and bytes (``data`` is the allocated buffer).
        """
        depth = np.asarray(depth_m, dtype=np.float32)
        if depth.shape != (intrinsics.height, intrinsics.width):
            raise GeometryError(
                f'depth shape {depth.shape} does not match intrinsics '
                f'{intrinsics.height}x{intrinsics.width} (HxW)')
        if rgb is not None and np.shape(rgb) != depth.shape + (3,):
            raise GeometryError(
                f'rgb shape {np.shape(rgb)} does not match depth {depth.shape} + (3,)')
        if int(decimation) < 1:
            raise GeometryError(f'decimation must be >= 1, got {decimation}')
        n = int(decimation)
        x_over_z, y_over_z = self._ray_planes(intrinsics, n)
        if n > 1:
            depth = depth[::n, ::n]
            rgb = None if rgb is None else rgb[::n, ::n]
        height, width = depth.shape
        channels = 3 if rgb is None else 4
        point_step = 4 * channels
        try:
            data, points = array_in_buffer((height, width, channels), '<f4', allocate)
        except ValueError as exc:
            raise GeometryError(f'cloud buffer: {exc}') from None
        z = np.ascontiguousarray(depth) if nan_is_only_invalid else \
            with_nan(depth, valid_depth(depth))
        planes = [np.multiply(z, x_over_z, out=self._plane('x', z.shape, np.float32)),
                  np.multiply(z, y_over_z, out=self._plane('y', z.shape, np.float32)), z]
        if rgb is not None:
            # rgb field: little-endian 0x00RRGGBB, i.e. bytes b, g, r, 0 = BGRA with alpha 0.
            bgra = self._plane('bgra', (height, width, 4), np.uint8)
            bgra = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGRA,
                                dst=bgra)
            packed = bgra.view(np.uint32)[..., 0]
            packed &= np.uint32(0x00FFFFFF)
            planes.append(packed.view(np.float32))
        # cv2.merge interleaves the planes in one pass, straight into the output buffer.
        merged = cv2.merge(planes, dst=points)
        if merged is not points:  # pragma: no cover - cv2 reallocated
            points[...] = merged
        fields = XYZ_FIELDS if rgb is None else XYZRGB_FIELDS
        return CloudData(height, width, fields, point_step, point_step * width, data)


_DATATYPE_TO_NUMPY = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}


def cloud_to_array(data, height: int, width: int, fields, point_step: int,
                   is_bigendian: bool = False) -> np.ndarray:
    """
    Read organized cloud bytes as a structured array (the inverse of :func:`build_cloud`).

    :param data: Point bytes (bytes, array.array or uint8 array).
    :param height: Rows.
    :param width: Columns.
    :param fields: Sequence of (name, offset, datatype, count) or objects with those attributes.
    :param point_step: Bytes per point.
    :param is_bigendian: Byte order of the data.
    :return: Structured array [height, width] with one float/int member per field.
    """
    order = '>' if is_bigendian else '<'
    names, formats, offsets = [], [], []
    for f in fields:
        name, offset, datatype, count = (
            f if isinstance(f, tuple) else (f.name, f.offset, f.datatype, f.count))
        names.append(name)
        base = _DATATYPE_TO_NUMPY[int(datatype)]
        formats.append(order + base if int(count) == 1 else (order + base, int(count)))
        offsets.append(int(offset))
    dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                      'itemsize': int(point_step)})
    buf = np.frombuffer(data, dtype=np.uint8)
    return buf[:height * width * int(point_step)].view(dtype).reshape(height, width)
