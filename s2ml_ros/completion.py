"""
Per-frame steps around the predictor: messages in, network inputs, published outputs.

No rclpy and no torch: the node, the benchmark and the tests call the same functions.

Resolution and frame. The color image, the raw depth and ``rgb/camera_info`` are expected to be
registered (depth aligned to color, as RealSense ``aligned_depth_to_color`` or Orbbec
``depth_registration`` publish it, and as depth_image_proc's XYZRGB cloud requires). The output
is in the depth image's frame (its header is copied) and, with ``output_size: depth``, at the
depth image's size: the color image is resized to it. With ``output_size: color`` the depth is
upsampled (nearest neighbour, so no depth is invented between surfaces) to the color size. The
CameraInfo, whatever size it was calibrated at, is rescaled to the output size.
"""

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import cv2
import numpy as np

from s2ml_ros.conversions import (color_to_rgb, ConversionError, depth_image_fields,
                                  depth_to_meters, ImageFields, intrinsics_from_camera_info,
                                  MASK_COMPLETED, MASK_MEASURED, numpy_to_image_fields)
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.params import NodeParams
from s2ml_ros.pointcloud import array_in_buffer, with_nan
from s2ml_ros.registration import shift_image


@dataclass
class PreparedFrame:
    """
    Network inputs of one synchronized set, at the output resolution.

    :param rgb: uint8 [H, W, 3] RGB.
    :param depth_m: float32 [H, W] measured depth in meters, 0 = missing (outside the
        [min_depth_m, max_depth_m] range counts as missing).
    :param intrinsics: Camera model of the output image, or None without a usable CameraInfo.
    :param intrinsics_error: Why ``intrinsics`` is None ('' when it is not).
    :param resized: True when color or depth had to be resized.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    intrinsics: Optional[Intrinsics]
    intrinsics_error: str = ''
    resized: bool = False

    @property
    def size(self) -> Tuple[int, int]:
        """:return: (width, height) of the output."""
        return self.depth_m.shape[1], self.depth_m.shape[0]


def _resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    shrink = width < rgb.shape[1] or height < rgb.shape[0]
    return cv2.resize(rgb, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _resize_depth_nearest(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    # Centre-aligned nearest neighbour (pixel centres map as in Intrinsics.resized).
    h, w = depth.shape
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    return depth[rows[:, None], cols[None, :]]


def apply_predictor_params(predictor: Any, params: NodeParams) -> None:
    """
    Give the predictor the live parameters it reads per frame.

    :param predictor: Anything with ``keep_measured`` and ``flip_average`` attributes (a
        :class:`s2ml_ros.pipeline.DepthCompletionPredictor`).
    :param params: Node parameters.
    """
    predictor.keep_measured = params.keep_measured
    predictor.flip_average = params.flip_average


def prepare_frame(color_msg: Any, depth_msg: Any, info_msg: Any,
                  params: NodeParams) -> PreparedFrame:
    """
    Decode a synchronized (color, depth, camera info) set into network inputs.

    :param color_msg: Color Image (rgb8, bgr8, rgba8, bgra8 or mono8).
    :param depth_msg: Depth Image (16UC1 scaled by ``params.depth_scale``, or 32FC1 meters).
    :param info_msg: CameraInfo of the color image, or None.
    :param params: Node parameters (depth_scale, min/max depth, output_size, colour offset).
    :return: The prepared frame, its colour moved by the colour offset.
    :raises ConversionError: For an image that cannot be decoded.
    """
    depth = depth_to_meters(depth_msg, params.depth_scale, params.min_depth_m, params.max_depth_m)
    rgb = color_to_rgb(color_msg)
    resized = False
    if rgb.shape[:2] != depth.shape:
        resized = True
        if params.output_size == 'color':
            depth = _resize_depth_nearest(depth, rgb.shape[1], rgb.shape[0])
        else:
            rgb = _resize_rgb(rgb, depth.shape[1], depth.shape[0])
    # Registration corrected here, so the network, the cloud's colours and any baseline all
    # see the same colour.
    rgb = shift_image(rgb, params.colour_offset_y_px, params.colour_offset_x_px)
    intrinsics, error = None, ''
    if info_msg is None:
        error = 'no CameraInfo received'
    else:
        try:
            intrinsics = intrinsics_from_camera_info(info_msg)
            if intrinsics.size != (depth.shape[1], depth.shape[0]):
                intrinsics = intrinsics.resized(depth.shape[1], depth.shape[0])
        except (ConversionError, ValueError) as exc:
            error = str(exc)
    return PreparedFrame(rgb, depth, intrinsics, error, resized)


def finalize_depth(completed: np.ndarray, measured_m: np.ndarray, params: NodeParams,
                   with_mask: bool = True, allocate: Optional[Callable[[int], Any]] = None
                   ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """
    Turn the predictor output into the published depth and provenance mask.

    :param completed: float32 [H, W] meters from the predictor.
    :param measured_m: float32 [H, W] measured input depth, 0 = missing.
    :param params: Node parameters (min/max depth, keep_measured).
    :param with_mask: Also compute the mask.
    :param allocate: Called with a size in bytes, returns the writable buffer the depth (then
        the mask) is written into, e.g. :meth:`s2ml_ros.conversions.BufferPool.take`, so that
        an Image message can take it without a copy. Default: new numpy arrays.
    :return: (depth float32 [H, W] meters with NaN where nothing is known or the value is outside
        [min_depth_m, max_depth_m]; mask uint8 [H, W] with MASK_MEASURED where the output is the
        measurement, MASK_COMPLETED where the network filled it, MASK_INVALID elsewhere; None when
        ``with_mask`` is False). Both are C-contiguous, in the allocated buffers if any.
    """
    depth = np.asarray(completed, dtype=np.float32)
    # Comparisons with NaN are False, and max_depth_m is finite, so NaN and inf drop out here.
    valid = depth <= np.float32(params.max_depth_m)
    if params.min_depth_m > 0:
        valid &= depth >= np.float32(params.min_depth_m)
    else:
        valid &= depth > 0
    flags = valid.view(np.uint8)
    out = array_in_buffer(depth.shape, np.float32, allocate)[1]
    out.fill(np.nan)
    # The valid values copied over the NaN fill: what with_nan computes, in two passes instead
    # of six. cv2 writes into ``out`` when shapes and layouts fit; otherwise, compute it here.
    if cv2.copyTo(depth, flags, out) is not out:
        out[...] = with_nan(depth, valid)
    if not with_mask:
        return out, None
    # MASK_INVALID is 0, so the mask is built by arithmetic on the 0/1 flags (fast):
    # valid * (MASK_COMPLETED or, where measured, MASK_MEASURED).
    mask = array_in_buffer(depth.shape, np.uint8, allocate)[1]
    if params.keep_measured:
        level = np.greater(measured_m, 0).view(np.uint8)
        level *= np.uint8(MASK_MEASURED - MASK_COMPLETED)
        level += np.uint8(MASK_COMPLETED)
        np.multiply(flags, level, out=mask)
    else:
        np.multiply(flags, np.uint8(MASK_COMPLETED), out=mask)
    return out, mask


def filled_fraction(measured_m: np.ndarray, output_m: np.ndarray) -> Tuple[float, float]:
    """
    Share of pixels with a measurement, and with a value after completion.

    :param measured_m: float32 [H, W] input depth, 0 = missing.
    :param output_m: float32 [H, W] output depth, NaN = unknown.
    :return: (measured fraction, output fraction), each in [0, 1].
    """
    total = max(measured_m.size, 1)
    return (float(np.count_nonzero(measured_m > 0)) / total,
            float(np.count_nonzero(np.isfinite(output_m))) / total)


def output_depth_fields(depth_out: np.ndarray, encoding: str) -> ImageFields:
    """
    Encode the output of :func:`finalize_depth` (already NaN where unknown).

    :param depth_out: float32 [H, W] meters, NaN = unknown.
    :param encoding: '32FC1' (sent as is) or '16UC1' (millimeters, 0 = unknown).
    :return: Image field values.
    """
    if encoding == '32FC1':
        return numpy_to_image_fields(depth_out, '32FC1')
    return depth_image_fields(depth_out, encoding)
