"""
Pinhole camera geometry: intrinsics that follow crops, resizes and flips, and back-projection.

Pure numpy; no ROS and no torch. Pixel centres follow the ROS/OpenCV convention: pixel (u, v)
covers [u - 0.5, u + 0.5] and its centre sits at integer coordinates, 0-indexed.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np


class GeometryError(ValueError):
    """Raised for an impossible camera model or an image that does not match it."""


@dataclass(frozen=True)
class Intrinsics:
    """
    Pinhole intrinsics of an image of ``width`` x ``height`` pixels.

    :param fx: Focal length along x, pixels.
    :param fy: Focal length along y, pixels.
    :param cx: Principal point x, pixels (0-indexed pixel centres).
    :param cy: Principal point y, pixels.
    :param width: Image width, pixels.
    :param height: Image height, pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.fx) and np.isfinite(self.fy) and self.fx > 0 and self.fy > 0):
            raise GeometryError(
                f'focal lengths must be finite and > 0, got fx={self.fx}, fy={self.fy}')
        if not (np.isfinite(self.cx) and np.isfinite(self.cy)):
            raise GeometryError(f'principal point must be finite, got cx={self.cx}, cy={self.cy}')
        if self.width <= 0 or self.height <= 0:
            raise GeometryError(
                f'image size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> 'Intrinsics':
        """
        Build from a 3x3 camera matrix (row-major, as in CameraInfo.k).

        :param k: Camera matrix, shape [3, 3] or 9 values.
        :param width: Image width, pixels.
        :param height: Image height, pixels.
        """
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                   int(width), int(height))

    def as_matrix(self) -> np.ndarray:
        """:return: The 3x3 camera matrix, float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> Tuple[int, int]:
        """:return: (width, height) in pixels."""
        return self.width, self.height

    def resized(self, width: int, height: int) -> 'Intrinsics':
        """
        Intrinsics of the same view resampled to ``width`` x ``height``.

        Pixel centres map as u' = (u + 0.5) * sx - 0.5, which is what cv2.resize does.
        """
        sx = width / self.width
        sy = height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, int(width), int(height))

    def cropped(self, x0: int, y0: int, width: int, height: int) -> 'Intrinsics':
        """Intrinsics of the window [y0:y0+height, x0:x0+width] of this image."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise GeometryError(
                f'crop x0={x0} y0={y0} {width}x{height} does not fit in '
                f'{self.width}x{self.height}')
        return Intrinsics(self.fx, self.fy, self.cx - x0, self.cy - y0, int(width), int(height))

    def flipped_horizontally(self) -> 'Intrinsics':
        """Intrinsics of the left-right mirrored image (u' = W - 1 - u)."""
        return Intrinsics(self.fx, self.fy, self.width - 1 - self.cx, self.cy,
                          self.width, self.height)


def pixel_rays(intrinsics: Intrinsics) -> Tuple[np.ndarray, np.ndarray]:
    """
    Normalised ray directions of every pixel centre.

    :return: (x_over_z [W], y_over_z [H]) float32, so that for depth z the point is
        (x_over_z[u] * z, y_over_z[v] * z, z).
    """
    u = np.arange(intrinsics.width, dtype=np.float64)
    v = np.arange(intrinsics.height, dtype=np.float64)
    return (((u - intrinsics.cx) / intrinsics.fx).astype(np.float32),
            ((v - intrinsics.cy) / intrinsics.fy).astype(np.float32))


def backproject(depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """
    Back-project a depth image to an organised point cloud in the camera optical frame.

    :param depth_m: Depth along the optical axis in meters, shape [H, W]; 0 or NaN = unknown.
    :param intrinsics: Camera model of that image.
    :return: Points float32 [H, W, 3] (x right, y down, z forward, meters); NaN where the depth
        is unknown.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise GeometryError(
            f'depth shape {depth.shape} does not match intrinsics '
            f'{intrinsics.height}x{intrinsics.width} (HxW)')
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    x_over_z, y_over_z = pixel_rays(intrinsics)
    points = np.empty(depth.shape + (3,), dtype=np.float32)
    np.multiply(z, x_over_z[None, :], out=points[..., 0])
    np.multiply(z, y_over_z[:, None], out=points[..., 1])
    points[..., 2] = z
    return points
