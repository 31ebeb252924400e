"""
Raw-depth sensor models: exact depth in, raw depth with realistic holes and noise out.

The model reproduces the failure modes of consumer RGB-D cameras:

- **Projector / second-camera shadows.** The projector (structured light) or the second imager
  (active stereo) sits ``baseline_m`` along +x of the depth camera. A pixel is invalid if that
  second viewpoint cannot see the same 3D point: every pixel is re-projected into the second
  view (rectified, same row, column ``u - f b / z``) and z-buffered there; a pixel is visible
  only if it is the nearest surface at its column in that view. With the second viewpoint on
  the +x side the shadows fall on the left (-x) side of foreground objects, as in Kinect v1 and
  RealSense D4xx frames. Points that leave the second view's field of view are invalid too,
  which gives the invalid band along the left border.
- **Material dropout**: low near-infrared return on dark material (return ~ albedo cos / z^2),
  specular surfaces that reflect the pattern away, transparent surfaces that are either seen
  through (the depth behind) or lost. Without material maps (e.g. NYU filled depth) dark and
  specular pixels are found from the colour image: near-black pixels and saturated, colourless
  highlights, as in RDFC-GAN's pseudo holes.
- **Registration holes**: depth registered to the colour camera misses what the depth camera,
  ``registration_offset_m`` away, cannot see (same z-buffer test, shadows on the other side).
- **Range limits** and **grazing-angle dropout** (normals estimated from the depth image).
- **Noise in disparity** with sub-pixel **quantization** (Kinect v1: 1/8 pixel), so the depth
  error grows as z^2; lateral jitter of the pixel grid that makes the hole borders ragged.
  Both follow Handa et al., "A Benchmark for RGB-D Visual Odometry, 3D Reconstruction and SLAM",
  ICRA 2014 (ICL-NUIM noise model) and Landau et al., "Simulating Kinect Infrared and Depth
  Images", IEEE Trans. Cybernetics 2016 (Kinect simulator: projector shadows by re-projection,
  disparity quantization).
- **Flying pixels** mixing foreground and background depth across discontinuities, and for
  time-of-flight a modest multipath bias in concave corners.
- **Speckle filter**: valid islands smaller than a few pixels are removed, as the sensors do.

Random dropouts are spatially correlated (thresholded smooth noise), so holes come as blobs and
ragged edges rather than salt-and-pepper. Everything is deterministic given the generator.
Pure numpy/scipy/cv2; no ROS and no torch.
"""

from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from s2ml_ros.geometry import Intrinsics, pixel_rays
from s2ml_ros.simulation.scene import IR_ALBEDO, Material
from scipy.special import ndtr, ndtri


class SensorError(ValueError):
    """Raised for an unknown sensor preset or inputs that do not fit together."""


@dataclass(frozen=True)
class SensorModel:
    """
    Parameters of a raw-depth sensor; :meth:`apply` turns exact depth into raw depth.

    :param name: Preset name.
    :param kind: 'structured_light', 'active_stereo' or 'tof'.
    :param baseline_m: Offset of the projector / second imager along +x, meters.
    :param registration_offset_m: Position of the depth camera relative to the colour camera
        along x, meters; depth registered to colour has holes where the depth camera does not
        see what the colour camera sees (0 = depth camera at the colour camera).
    :param native_width: Width at which the sensor measures disparity, pixels; the disparity
        noise and quantization are defined at this resolution.
    :param min_range_m: Nearest measurable depth, meters.
    :param max_range_m: Farthest measurable depth, meters.
    :param range_falloff_m: Dropout rises from 0 to 1 over this distance before max range.
    :param disparity_sigma_px: Disparity noise (native pixels), structured light and stereo.
    :param disparity_step_px: Disparity quantization step (native pixels); 0 = none.
    :param depth_sigma_m: Constant depth noise (time-of-flight), meters.
    :param depth_sigma_rel: Depth noise proportional to depth (time-of-flight).
    :param lateral_jitter_px: Standard deviation of the pixel-grid jitter, pixels.
    :param grazing_deg: Beyond this angle between ray and normal, pixels start dropping out.
    :param return_threshold: Dropout where IR albedo * cos(angle) / z^2 falls below this.
    :param specular_dropout: Fraction of specular pixels lost.
    :param transparent_see_through: Fraction of transparent pixels that report the depth behind.
    :param transparent_dropout: Fraction of transparent pixels lost.
    :param edge_dropout: Fraction of depth-discontinuity pixels lost.
    :param flying_pixels: Fraction of depth-discontinuity pixels mixed between the two sides.
    :param multipath_gain: Time-of-flight multipath bias gain in concave regions.
    :param speckle_px: Valid islands smaller than this many pixels (at native width) are removed.
    :param rgb_black_level: Without material maps: colour pixels with every channel at or below
        this level count as dark material.
    :param rgb_highlight_level: Without material maps: colour pixels with every channel at or
        above this level count as specular highlights.
    :param rgb_dropout: Without material maps: fraction of dark / highlight pixels lost.
    """

    name: str
    kind: str
    baseline_m: float
    registration_offset_m: float
    native_width: int
    min_range_m: float
    max_range_m: float
    range_falloff_m: float
    disparity_sigma_px: float = 0.0
    disparity_step_px: float = 0.0
    depth_sigma_m: float = 0.0
    depth_sigma_rel: float = 0.0
    lateral_jitter_px: float = 0.4
    grazing_deg: float = 78.0
    return_threshold: float = 0.012
    specular_dropout: float = 0.7
    transparent_see_through: float = 0.4
    transparent_dropout: float = 0.5
    edge_dropout: float = 0.3
    flying_pixels: float = 0.05
    multipath_gain: float = 0.0
    speckle_px: int = 12
    rgb_black_level: int = 18
    rgb_highlight_level: int = 235
    rgb_dropout: float = 0.7

    def __post_init__(self) -> None:
        if self.kind not in ('structured_light', 'active_stereo', 'tof'):
            raise SensorError(f'unknown sensor kind {self.kind!r}; expected structured_light, '
                              'active_stereo or tof')
        if not 0 < self.min_range_m < self.max_range_m:
            raise SensorError(f'need 0 < min_range_m < max_range_m, got {self.min_range_m}, '
                              f'{self.max_range_m}')

    @classmethod
    def from_preset(cls, name: str, **overrides: float) -> 'SensorModel':
        """
        One of :data:`SENSOR_PRESETS`, optionally with some parameters changed.

        :param name: 'structured_light', 'active_stereo' or 'tof'.
        :param overrides: Field values to replace.
        :return: The sensor model.
        """
        if name not in SENSOR_PRESETS:
            raise SensorError(f'unknown sensor preset {name!r}; valid presets: '
                              f'{sorted(SENSOR_PRESETS)}')
        return replace(SENSOR_PRESETS[name], **overrides)

    def varied(self, rng: np.random.Generator, strength: float = 1.0) -> 'SensorModel':
        """
        Draw a sensor of the same kind with hole and noise parameters around this one's.

        Units of one model differ, and so do their settings and surroundings (emitter power,
        ambient infrared, exposure): the range reached, how fast returns fade towards it, how
        dark a surface may be, how much is lost at edges and on specular or transparent
        material. A network trained on varied sensors does not see one unit's exact range limit
        and dropout thresholds in every frame. Geometry (baselines, registration, native width,
        quantization step) is kept: it is fixed by the device.

        :param rng: Generator of the draw.
        :param strength: Scale of the variation; 0 returns this model, 1 the documented ranges:
            max range x0.86-1.5, range falloff x0.6-1.6, return threshold x0.4-2.5, grazing
            limit +-5 degrees, dropout and flying-pixel fractions x0.67-1.5, noise x0.6-1.6.
        :return: The varied model (name unchanged).
        """
        if not strength >= 0:
            raise SensorError(f'sensor variation strength must be >= 0, got {strength}')
        if strength == 0:
            return self

        def factor(log_half_range: float, log_low: Optional[float] = None) -> float:
            low = -log_half_range if log_low is None else log_low
            return float(np.exp(rng.uniform(low, log_half_range) * strength))

        def fraction(value: float) -> float:
            return float(np.clip(value * factor(0.4), 0.0, 1.0))

        # Mostly farther: a nearer limit only adds holes whose truth lies beyond the measured
        # depth, which the presets already show in most frames.
        max_range = self.max_range_m * factor(0.4, -0.15)
        max_range = max(max_range, self.min_range_m * 1.5)
        falloff = min(self.range_falloff_m * factor(0.5), 0.9 * (max_range - self.min_range_m))
        grazing = float(np.clip(self.grazing_deg + rng.uniform(-5.0, 5.0) * strength, 60.0, 88.0))
        return replace(
            self, max_range_m=max_range, range_falloff_m=falloff,
            return_threshold=self.return_threshold * factor(0.9), grazing_deg=grazing,
            specular_dropout=fraction(self.specular_dropout),
            transparent_dropout=fraction(self.transparent_dropout),
            edge_dropout=fraction(self.edge_dropout),
            flying_pixels=fraction(self.flying_pixels),
            disparity_sigma_px=self.disparity_sigma_px * factor(0.5),
            depth_sigma_m=self.depth_sigma_m * factor(0.5))

    def apply(self, depth_gt_m: np.ndarray, rgb: Optional[np.ndarray], intrinsics: Intrinsics,
              rng: np.random.Generator, materials: Optional[np.ndarray] = None,
              depth_behind_m: Optional[np.ndarray] = None) -> np.ndarray:
        """
        Simulate the raw depth this sensor would measure.

        :param depth_gt_m: Exact (or filled) depth, float [H, W], meters, 0 = unknown.
        :param rgb: Registered colour image, uint8 [H, W, 3], or None; used for dark and
            highlight dropout when ``materials`` is None.
        :param intrinsics: Camera model of the depth image.
        :param rng: Random generator; the same state gives the same output.
        :param materials: :class:`~s2ml_ros.simulation.scene.Material` per pixel, uint8 [H, W],
            or None.
        :param depth_behind_m: Depth behind transparent surfaces, float [H, W], meters, or None
            (then see-through pixels become holes).
        :return: Raw depth, float32 [H, W], meters, 0 = hole.
        """
        return self.apply_with_masks(depth_gt_m, rgb, intrinsics, rng, materials,
                                     depth_behind_m)[0]

    def apply_with_masks(self, depth_gt_m: np.ndarray, rgb: Optional[np.ndarray],
                         intrinsics: Intrinsics, rng: np.random.Generator,
                         materials: Optional[np.ndarray] = None,
                         depth_behind_m: Optional[np.ndarray] = None,
                         ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """
        Like :meth:`apply`, also returning why each hole was made.

        :return: (raw depth float32 [H, W] meters, dict of bool [H, W] masks 'shadow', 'range',
            'grazing', 'material', 'edge', 'speckle'; jitter can move holes by a pixel after
            the masks are taken).
        """
        depth = np.asarray(depth_gt_m, dtype=np.float32)
        h, w = depth.shape
        if (h, w) != (intrinsics.height, intrinsics.width):
            raise SensorError(f'depth shape {depth.shape} does not match intrinsics '
                              f'{intrinsics.height}x{intrinsics.width} (HxW)')
        if rgb is not None and np.asarray(rgb).shape[:2] != (h, w):
            raise SensorError(f'rgb shape {np.asarray(rgb).shape} does not match depth {(h, w)}')
        if materials is not None and materials.shape != (h, w):
            raise SensorError(f'materials shape {materials.shape} does not match depth {(h, w)}')
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0))
        valid = depth > 0
        scale = self.native_width / w  # native pixels per image pixel
        masks: Dict[str, np.ndarray] = {}
        z = depth.copy()

        # Transparent surfaces: some are seen through, some are lost.
        mat_drop = np.zeros((h, w), dtype=bool)
        if materials is not None:
            trans = materials == Material.TRANSPARENT
            if trans.any():
                field = _blob_field(rng, (h, w), 24.0 / scale)
                see = trans & (field < ndtri(self.transparent_see_through))
                lost = trans & ~see & (_blob_field(rng, (h, w), 12.0 / scale)
                                       < ndtri(self.transparent_dropout))
                if depth_behind_m is not None:
                    behind = np.asarray(depth_behind_m, dtype=np.float32)
                    z = np.where(see & (behind > 0), behind, z)
                    lost |= see & ~(behind > 0)
                else:
                    lost |= see
                mat_drop |= lost

        # Second viewpoint occlusion (projector or second imager).
        fx = intrinsics.fx
        masks['shadow'] = valid & ~second_view_visibility(z, fx, self.baseline_m)
        # Registration to the colour camera: surfaces hidden from the depth camera's own view.
        if self.registration_offset_m != 0:
            masks['shadow'] |= valid & ~second_view_visibility(z, fx, self.registration_offset_m)

        # Range limits, with a gradual loss of returns towards the far limit.
        far_field = _uniform_field(rng, (h, w), 8.0 / scale)
        ramp = np.clip((z - (self.max_range_m - self.range_falloff_m))
                       / max(self.range_falloff_m, 1e-6), 0, 1)
        masks['range'] = valid & ((z < self.min_range_m) | (z > self.max_range_m)
                                  | (far_field < ramp))

        # Grazing angles, from normals estimated on the depth image.
        cos_view = view_cosine(z, intrinsics)
        graze = np.cos(np.deg2rad(self.grazing_deg))
        jitter = _uniform_field(rng, (h, w), 3.0 / scale)
        masks['grazing'] = valid & (cos_view < graze * (0.5 + jitter))

        # Material dropout: weak IR return, specular, transparent.
        if materials is not None:
            albedo_lut = np.zeros(256, dtype=np.float32)
            for m, a in IR_ALBEDO.items():
                albedo_lut[int(m)] = a
            albedo = albedo_lut[materials]
            spec = materials == Material.SPECULAR
            mat_drop |= spec & (_blob_field(rng, (h, w), 24.0 / scale)
                                < ndtri(self.specular_dropout))
        else:
            albedo = np.full((h, w), IR_ALBEDO[Material.MATTE], dtype=np.float32)
        if rgb is not None:
            rgb_a = np.asarray(rgb)
            dark = np.all(rgb_a <= self.rgb_black_level, axis=2)
            bright = np.all(rgb_a >= self.rgb_highlight_level, axis=2)
            if materials is None:
                albedo = np.where(dark, IR_ALBEDO[Material.DARK], albedo)
            pick = _blob_field(rng, (h, w), 12.0 / scale) < ndtri(self.rgb_dropout)
            mat_drop |= bright & pick
            if materials is None:
                mat_drop |= dark & pick
        ret = albedo * np.maximum(cos_view, 0.05) / np.maximum(z, 1e-3) ** 2
        ret *= np.exp(0.4 * _blob_field(rng, (h, w), 16.0 / scale))
        mat_drop |= valid & (ret < self.return_threshold)
        masks['material'] = mat_drop & valid

        # Depth discontinuities: some pixels lost, some mixed (flying pixels).
        zk = np.where(valid, z, np.float32(0))
        kernel = np.ones((3, 3), np.uint8)
        zmax = cv2.dilate(zk, kernel)
        zmin = cv2.erode(np.where(valid, z, np.float32(1e4)), kernel)
        disc = valid & (zmax - zmin > 0.04 + 0.03 * z)
        # Edge dropout reaches a couple of native pixels from the discontinuity, in blobs.
        k = max(3, int(round(4 / scale)) | 1)
        wide = cv2.dilate(zk, np.ones((k, k), np.uint8)) - cv2.erode(
            np.where(valid, z, np.float32(1e4)), np.ones((k, k), np.uint8))
        band = valid & (wide > 0.04 + 0.03 * z)
        masks['edge'] = band & (_uniform_field(rng, (h, w), 2.0 / scale) < self.edge_dropout)
        pick = rng.random((h, w), dtype=np.float32)
        fly = disc & ~masks['edge'] & (pick < self.flying_pixels)
        if fly.any():
            alpha = rng.random(int(fly.sum()), dtype=np.float32)
            z[fly] = alpha * zmin[fly] + (1 - alpha) * zmax[fly]

        # Multipath (time of flight): longer paths in concave corners bias depth upwards.
        if self.multipath_gain > 0:
            k = max(3, int(round(31 / scale)) | 1)
            local = cv2.blur(np.where(valid, z, 0), (k, k))
            weight = np.maximum(cv2.blur(valid.astype(np.float32), (k, k)), 1e-3)
            concave = np.clip(z - local / weight, 0, 0.2)
            z = z + self.multipath_gain * concave

        holes = ~valid | masks['shadow'] | masks['range'] | masks['grazing'] | masks['material']
        holes |= masks['edge']
        z = np.where(holes, np.float32(0), z)

        # Noise: in disparity (triangulating sensors) or in range (time of flight).
        ok = z > 0
        if self.kind == 'tof':
            sigma = self.depth_sigma_m + self.depth_sigma_rel * z
            z = z + rng.standard_normal((h, w), dtype=np.float32) * sigma
        else:
            fb = fx * scale * self.baseline_m  # native pixels * meters
            disp = fb / np.maximum(z, 1e-3)
            # Spatially correlated plus per-pixel noise, as Kinect disparity errors are.
            disp = disp + self.disparity_sigma_px * (
                0.8 * rng.standard_normal((h, w), dtype=np.float32)
                + 0.6 * _blob_field(rng, (h, w), 4.0 / scale))
            if self.disparity_step_px > 0:
                disp = np.round(disp / self.disparity_step_px) * self.disparity_step_px
            z = fb / np.maximum(disp, 1e-6)
        z = np.where(ok & (z > 0), z, np.float32(0)).astype(np.float32)

        # Lateral jitter of the sampling grid (nearest neighbour, so no depth is blended).
        if self.lateral_jitter_px > 0:
            s = self.lateral_jitter_px / scale
            map_x = (np.arange(w, dtype=np.float32)[None, :]
                     + s * (0.7 * rng.standard_normal((h, w), dtype=np.float32)
                            + 0.7 * _blob_field(rng, (h, w), 3.0)))
            map_y = (np.arange(h, dtype=np.float32)[:, None]
                     + s * (0.7 * rng.standard_normal((h, w), dtype=np.float32)
                            + 0.7 * _blob_field(rng, (h, w), 3.0)))
            z = cv2.remap(z, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)

        # Speckle filter: drop tiny valid islands.
        masks['speckle'] = np.zeros((h, w), dtype=bool)
        min_px = int(round(self.speckle_px / scale ** 2))
        if min_px > 1:
            n, lab, stats, _ = cv2.connectedComponentsWithStats((z > 0).astype(np.uint8), 8)
            small = stats[:, cv2.CC_STAT_AREA] < min_px
            small[0] = False
            if small.any():
                masks['speckle'] = small[lab] & (z > 0)
                z[masks['speckle']] = 0
        return z, masks


def second_view_visibility(depth_m: np.ndarray, fx: float, baseline_m: float,
                           rel_tol: float = 0.01, abs_tol: float = 0.005) -> np.ndarray:
    """
    Which pixels a second viewpoint at ``baseline_m`` along +x also sees (z-buffer test).

    Every pixel is re-projected into the rectified second view (same row, column
    u - fx * b / z) and splatted into the two nearest columns of a z-buffer; a pixel is visible
    if no nearer surface lands on its column there, with a tolerance that follows the local
    depth slope so smooth surfaces do not shadow themselves. Pixels leaving the second view's
    image are not visible.

    :param depth_m: Depth, float [H, W], meters, 0 = unknown (unknown pixels occlude nothing).
    :param fx: Focal length, pixels.
    :param baseline_m: Second viewpoint offset along +x, meters (negative = along -x).
    :param rel_tol: Relative depth tolerance.
    :param abs_tol: Absolute depth tolerance, meters.
    :return: bool [H, W]; False for unknown pixels.
    """
    z = np.asarray(depth_m, dtype=np.float32)
    h, w = z.shape
    valid = z > 0
    if baseline_m == 0:
        return valid
    up = np.arange(w, dtype=np.float32)[None, :] - fx * baseline_m / np.where(valid, z, 1.0)
    inside = valid & (up >= 0) & (up <= w - 1)
    c0 = np.clip(np.floor(up), 0, w - 1).astype(np.int64)
    c1 = np.minimum(c0 + 1, w - 1)
    rows = np.broadcast_to(np.arange(h, dtype=np.int64)[:, None] * w, (h, w))
    zbuf = np.full(h * w, np.inf, dtype=np.float32)
    zi = z[inside]
    np.minimum.at(zbuf, (rows + c0)[inside], zi)
    np.minimum.at(zbuf, (rows + c1)[inside], zi)
    # Slope tolerance: the smaller one-sided horizontal difference (the smooth side of an edge).
    dl = np.abs(np.diff(z, axis=1, prepend=z[:, :1]))
    dr = np.abs(np.diff(z, axis=1, append=z[:, -1:]))
    tol = rel_tol * z + abs_tol + 2.0 * np.minimum(dl, dr)
    cn = np.clip(np.rint(up), 0, w - 1).astype(np.int64)
    nearest = zbuf[rows + cn]
    return inside & (z <= nearest + tol)


def view_cosine(depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """
    Cosine of the angle between each pixel's viewing ray and the surface normal.

    Normals come from the cross product of the horizontal and vertical derivatives of the
    back-projected points, in closed form from the depth derivatives (one-sided differences on
    the smoother side).

    :param depth_m: Depth, float [H, W], meters, 0 = unknown.
    :param intrinsics: Camera model.
    :return: float32 [H, W] in [0, 1]; 1 where the depth is unknown or too sparse to tell.
    """
    z = np.asarray(depth_m, dtype=np.float32)
    xo, yo = pixel_rays(intrinsics)
    # One-sided depth differences, taking the side with the smaller step, so that a depth
    # discontinuity does not tilt the normal of the surface on either side of it.
    d = np.diff(z, axis=1)
    right = np.concatenate([d, d[:, -1:]], axis=1)
    left = np.concatenate([d[:, :1], d], axis=1)
    zu = np.where(np.abs(right) < np.abs(left), right, left)
    d = np.diff(z, axis=0)
    down = np.concatenate([d, d[-1:]], axis=0)
    up = np.concatenate([d[:1], d], axis=0)
    zv = np.where(np.abs(down) < np.abs(up), down, up)
    # For P = z (x, y, 1): dP/du x dP/dv is parallel to n = (-fx zu, -fy zv, fx zu x + fy zv y + z)
    # and n . (x, y, 1) = z, so cos = z / (|n| |(x, y, 1)|).
    a = intrinsics.fx * zu
    b = intrinsics.fy * zv
    x, y = xo[None, :], yo[:, None]
    c = a * x + b * y + z
    ray2 = x * x + y * y + 1.0
    cos = z / np.sqrt(np.maximum((a * a + b * b + c * c) * ray2, 1e-12))
    cos = np.clip(cos, 0.0, 1.0).astype(np.float32)
    return np.where(z > 0, cos, np.float32(1.0))


def _blob_field(rng: np.random.Generator, shape: Tuple[int, int], cell_px: float) -> np.ndarray:
    """Smooth random field, about N(0, 1) per pixel, correlated over ``cell_px`` pixels."""
    h, w = shape
    cell = max(cell_px, 1.0)
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    coarse = rng.standard_normal((gh, gw), dtype=np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    std = float(field.std())
    return field / std if std > 0 else field


def _uniform_field(rng: np.random.Generator, shape: Tuple[int, int],
                   cell_px: float) -> np.ndarray:
    """Smooth random field with values roughly uniform in [0, 1]."""
    return ndtr(_blob_field(rng, shape, cell_px)).astype(np.float32)


SENSOR_PRESETS: Dict[str, SensorModel] = {
    # Kinect v1: 7.5 cm projector baseline, 640 px disparity with 1/8 px sub-pixel steps.
    'structured_light': SensorModel(
        name='structured_light', kind='structured_light', baseline_m=0.075,
        registration_offset_m=-0.025, native_width=640,
        min_range_m=0.45, max_range_m=8.0, range_falloff_m=4.5, disparity_sigma_px=0.07,
        disparity_step_px=1 / 8, lateral_jitter_px=0.5, grazing_deg=78.0,
        return_threshold=0.012, edge_dropout=0.35, flying_pixels=0.03, speckle_px=16),
    # RealSense D4xx: 5 cm stereo baseline at 848 px, fine sub-pixel steps, some flying pixels.
    'active_stereo': SensorModel(
        name='active_stereo', kind='active_stereo', baseline_m=0.050,
        registration_offset_m=-0.015, native_width=848,
        min_range_m=0.28, max_range_m=8.0, range_falloff_m=4.0, disparity_sigma_px=0.08,
        disparity_step_px=1 / 32, lateral_jitter_px=0.4, grazing_deg=80.0,
        return_threshold=0.006, specular_dropout=0.5, edge_dropout=0.2, flying_pixels=0.15,
        speckle_px=20),
    # Azure Kinect NFOV unbinned: co-located emitter, range noise, flying pixels, multipath.
    'tof': SensorModel(
        name='tof', kind='tof', baseline_m=0.01,
        registration_offset_m=-0.032, native_width=640, min_range_m=0.5,
        max_range_m=3.86, range_falloff_m=0.4, depth_sigma_m=0.0015, depth_sigma_rel=0.001,
        lateral_jitter_px=0.0, grazing_deg=82.0, return_threshold=0.02,
        specular_dropout=0.6, edge_dropout=0.15, flying_pixels=0.5, multipath_gain=0.3,
        speckle_px=8),
}
