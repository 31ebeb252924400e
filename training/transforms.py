"""
Joint augmentation of colour, raw depth, ground truth and intrinsics.

A sample is a dict with 'rgb' uint8 [H, W, 3], 'depth' float32 [H, W] (raw, meters, 0 = hole),
'gt' float32 [H, W] (meters, 0 = invalid) and 'intrinsics' (:class:`Intrinsics`), optionally
'planted' float32 [H, W] (1 = a measured pixel hidden by :class:`PlantedHoles`); other keys
pass through. Every geometric transform updates the intrinsics with the matching
:class:`Intrinsics` method, so back-projection stays consistent after crops, flips and resizes.
Depth is resampled with nearest neighbour so that holes stay holes and no depth is blended
across edges. Random transforms take a ``numpy.random.Generator``; :func:`to_tensor` makes the
torch sample.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.offline_eval import shift_mask
from s2ml_ros.registration import shift_image
import torch

Sample = Dict[str, Any]
_DEPTH_KEYS = ('depth', 'gt')
# Per-pixel images that move with the depth but are not depths (RandomScale leaves them).
_IMAGE_KEYS = _DEPTH_KEYS + ('planted',)


def _multiply_depths(sample: Sample, factor: Any) -> Sample:
    """
    Multiply raw depth and ground truth by one factor (holes stay 0).

    :param factor: A number or a float32 [H, W] field.
    :return: A copy of the sample with the depths multiplied.
    """
    out = dict(sample)
    for key in _DEPTH_KEYS:
        if key in out:
            out[key] = (out[key] * factor).astype(np.float32)
    return out


def _check(sample: Sample) -> Tuple[int, int]:
    h, w = sample['rgb'].shape[:2]
    for key in _IMAGE_KEYS:
        if key in sample and sample[key].shape != (h, w):
            raise ValueError(f'{key} shape {sample[key].shape} does not match rgb {(h, w)}')
    return h, w


def _probability(what: str, p: float) -> float:
    """
    Check a probability argument.

    :return: ``p``.
    :raises ValueError: Unless 0 <= p <= 1, naming ``what``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f'{what} probability must be in [0, 1], got {p}')
    return p


def crop(sample: Sample, x0: int, y0: int, width: int, height: int) -> Sample:
    """
    Keep the window [y0:y0+height, x0:x0+width].

    :return: A new sample with cropped images and intrinsics.
    """
    _check(sample)
    out = dict(sample)
    win = (slice(y0, y0 + height), slice(x0, x0 + width))
    out['rgb'] = np.ascontiguousarray(sample['rgb'][win])
    for key in _IMAGE_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][win])
    out['intrinsics'] = sample['intrinsics'].cropped(x0, y0, width, height)
    return out


def hflip(sample: Sample) -> Sample:
    """:return: The left-right mirrored sample (u' = W - 1 - u), intrinsics included."""
    out = dict(sample)
    out['rgb'] = np.ascontiguousarray(sample['rgb'][:, ::-1])
    for key in _IMAGE_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][:, ::-1])
    out['intrinsics'] = sample['intrinsics'].flipped_horizontally()
    return out


def resize(sample: Sample, width: int, height: int) -> Sample:
    """
    Resample to ``width`` x ``height`` (colour: area/linear; depth: nearest).

    :return: A new sample with resized images and intrinsics.
    """
    h, w = _check(sample)
    out = dict(sample)
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    out['rgb'] = cv2.resize(sample['rgb'], (width, height), interpolation=interp)
    for key in _IMAGE_KEYS:
        if key in sample:
            out[key] = cv2.resize(sample[key], (width, height), interpolation=cv2.INTER_NEAREST)
    out['intrinsics'] = sample['intrinsics'].resized(width, height)
    return out


def pad_bottom_right(sample: Sample, width: int, height: int) -> Sample:
    """
    Pad to ``width`` x ``height`` at the bottom and right (black colour, depth holes).

    Padding only there leaves pixel coordinates, hence the intrinsics' cx, cy, unchanged.

    :return: A new sample of the requested size.
    """
    h, w = _check(sample)
    pad = ((0, height - h), (0, width - w))
    out = dict(sample)
    out['rgb'] = np.pad(sample['rgb'], pad + ((0, 0),))
    for key in _IMAGE_KEYS:
        if key in sample:
            out[key] = np.pad(sample[key], pad)
    k = sample['intrinsics']
    out['intrinsics'] = Intrinsics(k.fx, k.fy, k.cx, k.cy, width, height)
    return out


class Compose:
    """
    Apply transforms in order.

    :param transforms: Callables ``(sample, rng) -> sample``.
    """

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample


class BorderCrop:
    """
    Cut a fixed border (NYU-Depth V2: 45 top, 15 bottom, 45 left, 40 right, as RDFC-GAN).

    :param top: Rows removed at the top.
    :param bottom: Rows removed at the bottom.
    :param left: Columns removed on the left.
    :param right: Columns removed on the right.
    """

    def __init__(self, top: int, bottom: int, left: int, right: int) -> None:
        self.top, self.bottom, self.left, self.right = top, bottom, left, right

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        h, w = _check(sample)
        return crop(sample, self.left, self.top, w - self.left - self.right,
                    h - self.top - self.bottom)


class Resize:
    """
    Resample to a fixed size.

    :param width: Output width, pixels.
    :param height: Output height, pixels.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        return resize(sample, self.width, self.height)


class RandomScale:
    """
    Enlarge by a random factor s and divide depth by s (the scene moves closer).

    As CompletionFormer's training does; the intrinsics are scaled, so geometry stays
    consistent (the back-projected cloud shrinks by 1 / s).


    :param low: Smallest factor.
    :param high: Largest factor.
    """

    def __init__(self, low: float = 1.0, high: float = 1.5) -> None:
        self.low, self.high = low, high

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        s = float(rng.uniform(self.low, self.high))
        h, w = _check(sample)
        out = resize(sample, max(1, int(round(w * s))), max(1, int(round(h * s))))
        for key in _DEPTH_KEYS:
            if key in out:
                out[key] = (out[key] / s).astype(np.float32)
        return out


class RandomDepthScale:
    """
    Multiply every depth by a random factor s; colour and intrinsics unchanged.

    The whole scene scaled by s about the camera centre projects to the same image, so this is
    a consistent frame of a larger (s > 1) or smaller room: it shows the network depths beyond
    the simulator's rooms (real rooms and halls reach 5-8 m) without changing what it sees.
    Sensor holes and noise are those of the unscaled frame.

    :param low: Smallest factor (> 0).
    :param high: Largest factor (>= low); s is drawn log-uniformly from [low, high].
    :param p: Probability of scaling a frame.
    """

    def __init__(self, low: float = 1.0, high: float = 2.0, p: float = 0.5) -> None:
        if not 0 < low <= high:
            raise ValueError(f'depth scale range must satisfy 0 < low <= high, '
                             f'got [{low}, {high}]')
        self.low, self.high, self.p = low, high, _probability('depth scale', p)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        s = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return _multiply_depths(sample, s)


class SmoothDepthWarp:
    """
    Multiply depth and ground truth by a smooth random field: surfaces bent off their planes.

    The simulator's walls, floors and boxes are exact planes, so a network can learn to carry a
    plane across a hole; real tables, sofas, clutter and a sensor's own low-frequency depth
    error are not planes. The field is 1 + a * n(x, y), with n bicubically interpolated from
    unit-variance Gaussian values on a coarse grid (cells ``cell_px`` apart, drawn per sample)
    and clipped to [-2, 2], and a drawn uniformly from [0, ``amplitude``]; holes stay holes,
    colour and intrinsics are unchanged.

    :param p: Probability of warping a sample.
    :param amplitude: Largest a, a share of the depth. At 0.05 the field's standard deviation
        over a 320x240 frame has a median of 1.9% and reaches 4.7%; no depth moves by more than
        2a (200 draws).
    :param cell_px: Smallest and largest grid spacing in pixels, drawn log-uniformly.
    """

    def __init__(self, p: float = 0.5, amplitude: float = 0.05,
                 cell_px: Tuple[float, float] = (32.0, 128.0)) -> None:
        if not 0.0 < amplitude < 0.5:
            raise ValueError(f'depth warp amplitude must be in (0, 0.5), got {amplitude}')
        if not 2.0 <= cell_px[0] <= cell_px[1]:
            raise ValueError(f'depth warp cell_px must satisfy 2 <= low <= high, got {cell_px}')
        self.p = _probability('depth warp', p)
        self.amplitude = amplitude
        self.cell_px = cell_px

    def field(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """:return: float32 [h, w], the factor the depths are multiplied by (> 0)."""
        cell = float(np.exp(rng.uniform(np.log(self.cell_px[0]), np.log(self.cell_px[1]))))
        gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        # The grid resized over a slightly larger canvas and cropped, so the image border
        # is not where every cell lines up.
        big = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        y0 = int(rng.integers(0, big.shape[0] - h + 1))
        x0 = int(rng.integers(0, big.shape[1] - w + 1))
        noise = np.clip(big[y0:y0 + h, x0:x0 + w], -2.0, 2.0)
        return (1.0 + rng.uniform(0.0, self.amplitude) * noise).astype(np.float32)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        return _multiply_depths(sample, self.field(*_check(sample), rng))


class RandomCrop:
    """
    Crop a random window (padded with holes first if the image is smaller).

    :param width: Window width, pixels.
    :param height: Window height, pixels.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = _check(sample)
        if h < self.height or w < self.width:
            sample = pad_bottom_right(sample, max(w, self.width), max(h, self.height))
            h, w = _check(sample)
        x0 = int(rng.integers(0, w - self.width + 1))
        y0 = int(rng.integers(0, h - self.height + 1))
        return crop(sample, x0, y0, self.width, self.height)


class CenterCrop(RandomCrop):
    """Crop the central window of ``width`` x ``height``."""

    def __call__(self, sample: Sample, rng: Optional[np.random.Generator] = None) -> Sample:
        h, w = _check(sample)
        if h < self.height or w < self.width:
            raise ValueError(f'cannot crop {self.width}x{self.height} from a {w}x{h} image')
        return crop(sample, (w - self.width) // 2, (h - self.height) // 2, self.width,
                    self.height)


class RandomHorizontalFlip:
    """
    Mirror left-right with probability ``p``.

    :param p: Probability of flipping.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return hflip(sample) if rng.random() < self.p else sample


class SensorHoles:
    """
    Add the holes a simulated sensor would make on top of the measured input depth.

    For real data (NYU, SUN RGB-D, a user's bag): the target keeps every measured value, the
    input loses the pixels the sensor model drops (shadows at occluding edges, dark and shiny
    surfaces, grazing angles, range), so the network learns to fill realistic holes where the
    answer is known. The input's remaining values stay as measured (no simulated noise). Must
    run before colour jitter (the dropout model reads the colour image).

    :param sensor: A preset of :data:`s2ml_ros.simulation.SENSOR_PRESETS`.
    :param p: Probability of adding holes to a sample.
    """

    def __init__(self, sensor: str = 'structured_light', p: float = 1.0) -> None:
        from s2ml_ros.simulation import SensorModel
        self.model = SensorModel.from_preset(sensor)
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        from s2ml_ros.baselines import fill_nearest
        depth = sample['depth']
        # The sensor model needs a surface everywhere to cast shadows from; nearest-valid
        # filling gives one without inventing structure.
        surface = fill_nearest(sample['rgb'], depth) if np.any(depth <= 0) else depth
        simulated = self.model.apply(surface, sample['rgb'], sample['intrinsics'], rng)
        out = dict(sample)
        out['depth'] = np.where(simulated > 0, depth, np.float32(0)).astype(np.float32)
        return out


class BorderHoles:
    """
    Blank bands along the image border of the input depth, as registration to a wider colour view.

    A depth camera registered to a colour camera with a wider field of view leaves invalid
    bands along the frame border (Kinect v1 frames: about 40 px at the top and 30 px at the
    sides of 640x480; Azure Kinect NFOV in a 16:9 colour frame: 10-16% of the width at each
    side); the stereo overlap of active stereo cameras leaves one on the left. Holes that touch the
    border are otherwise mostly range dropouts in the simulator, whose answer is "far", and a
    network that has only seen those pushes depth beside a registration band away. The target
    keeps every value, so the band teaches extrapolation of the surfaces around it.

    A band is straight and slightly tilted, or, with probability ``hexagon_p``, cut as two sides
    of a hexagon: narrowest in the middle of the image side and up to twice ``max_fraction``
    wide at its ends, as the hexagonal field of view of an Azure Kinect NFOV depth camera leaves
    in a 16:9 colour frame (640x360: the left band 23% of the width at the top row, 8% in the
    middle rows, 18-20% near the bottom; the right band 27% at the top, 17% mid-height).

    :param p: Probability of adding bands to a sample.
    :param max_fraction: Widest band, as a fraction of the image side it cuts into (hexagonal
        bands: their narrowest width, mid-side).
    :param side_p: Probability of a band on each of the four sides.
    :param hexagon_p: Probability that a band is hexagonal (0: all straight, and the random
        draws are those of a version without the option).
    """

    def __init__(self, p: float = 0.5, max_fraction: float = 0.12, side_p: float = 0.6,
                 hexagon_p: float = 0.0) -> None:
        self.p = _probability('border hole', p)
        self.side_p = _probability('border hole side', side_p)
        self.hexagon_p = _probability('hexagonal border band', hexagon_p)
        if not 0.0 < max_fraction < 0.5:
            raise ValueError(f'border band fraction must be in (0, 0.5), got {max_fraction}')
        self.max_fraction = max_fraction

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        depth = sample['depth']
        h, w = depth.shape
        rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
        band = np.zeros((h, w), bool)
        # (distance from the side, position along it, side length, length along it)
        sides = ((rows, cols, h, w), (h - 1 - rows, cols, h, w),
                 (cols, rows, w, h), (w - 1 - cols, rows, w, h))
        for distance, along, side, length in sides:
            if rng.random() >= self.side_p:
                continue
            start, end = rng.uniform(0.02, self.max_fraction, 2)
            position = np.arange(length) / max(length - 1, 1)
            if self.hexagon_p and rng.random() < self.hexagon_p:
                # Narrowest (start) mid-side, widening linearly to both corners; below half the
                # side, so that opposite bands never meet.
                end = rng.uniform(start, min(2 * self.max_fraction, 0.45))
                position = np.abs(2 * position - 1)
            # Slightly tilted (registration is not a pure shift) and ragged by a pixel.
            width = (start + (end - start) * position) * side
            width = width + rng.integers(-1, 2, length)
            band |= distance < width[along]
        if not band.any():
            return sample
        out = dict(sample)
        out['depth'] = np.where(band, np.float32(0), depth).astype(np.float32, copy=False)
        return out


MAX_PLANTED_ZOOM = 8.0


def check_planted_zoom(max_zoom: float) -> float:
    """
    Check the largest enlargement of moved hole shapes (:class:`PlantedHoles`).

    :return: ``max_zoom`` as a float.
    :raises ValueError: Naming the value unless 1 <= max_zoom <= :data:`MAX_PLANTED_ZOOM`.
    """
    if not 1.0 <= max_zoom <= MAX_PLANTED_ZOOM:
        raise ValueError(f'planted hole zoom must be in [1, {MAX_PLANTED_ZOOM:g}], '
                         f'got {max_zoom}')
    return float(max_zoom)


def _zoom_mask(mask: np.ndarray, factor: float) -> np.ndarray:
    """:return: ``mask`` [H, W] bool enlarged by ``factor`` >= 1 about its centre, same shape."""
    h, w = mask.shape
    big = cv2.resize(mask.astype(np.uint8), (max(w, round(w * factor)), max(h, round(h * factor))),
                     interpolation=cv2.INTER_NEAREST)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return big[y0:y0 + h, x0:x0 + w] > 0


class PlantedHoles:
    """
    Hide measured input pixels under the frame's own hole shape, flipped and moved.

    The evaluation protocol for frames without ground truth (hidden valid pixels under real
    hole shapes moved from elsewhere, :class:`s2ml_ros.offline_eval.HolePlanter`) as a
    training augmentation. Natural holes are not independent of the scene (shadows lie beside
    occluding edges, dropouts on dark or shiny objects); moved holes also cover plain
    surfaces, so the network learns to continue a surface where the hole tells it nothing,
    instead of reading every hole as a cue for a different surface. The ground truth keeps
    every value, so the hidden pixels are scored like any hole.

    Every sample gets a 'planted' image (1 = hidden here, else 0; all 0 when nothing was
    hidden), so batches stack and the loss can weight these pixels (``--planted-weight``).

    :param p: Probability of hiding pixels in a sample.
    :param max_shift: Largest move, as a fraction of the image side.
    :param max_zoom: The shape is also enlarged about the image centre by a log-uniform factor
        in [1, max_zoom] (1: never). Real holes at 640x480 are larger in pixels than a
        320x240 training frame's, and large holes over plain walls are where a network that
        learnt "a hole hides something farther" pushes a surface away.
    """

    def __init__(self, p: float = 0.5, max_shift: float = 0.25, max_zoom: float = 1.0) -> None:
        self.p = _probability('planted hole', p)
        self.max_shift = max_shift
        self.max_zoom = check_planted_zoom(max_zoom)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        depth = sample['depth']
        out = dict(sample)
        out['planted'] = np.zeros(depth.shape, np.float32)
        if rng.random() >= self.p:
            return out
        valid = np.isfinite(depth) & (depth > 0)
        holes = ~valid
        if not holes.any() or not valid.any():
            return out
        if rng.random() < 0.5:
            holes = holes[::-1]
        if rng.random() < 0.5:
            holes = holes[:, ::-1]
        h, w = holes.shape
        if self.max_zoom > 1.0:
            holes = _zoom_mask(holes, float(np.exp(rng.uniform(0.0, np.log(self.max_zoom)))))
        dy = int(rng.integers(-int(h * self.max_shift), int(h * self.max_shift) + 1))
        dx = int(rng.integers(-int(w * self.max_shift), int(w * self.max_shift) + 1))
        hidden = shift_mask(holes, dy, dx) & valid
        out['depth'] = np.where(hidden, np.float32(0), depth).astype(np.float32)
        out['planted'] = hidden.astype(np.float32)
        return out


class ColorJitter:
    """
    Random brightness, contrast and saturation changes of the colour image only.

    :param strength: Each factor is drawn from [1 - strength, 1 + strength].
    """

    def __init__(self, strength: float = 0.4) -> None:
        self.strength = strength

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        s = self.strength
        b, c, sat = rng.uniform(1 - s, 1 + s, 3)
        img = sample['rgb'].astype(np.float32) * b
        mean = img.mean()
        img = (img - mean) * c + mean
        gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = (img - gray[..., None]) * sat + gray[..., None]
        out = dict(sample)
        out['rgb'] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        return out


class PaintedDecals:
    """
    Paint flat shapes on the colour image only: posters, labels, paper, stains.

    In procedural rooms nearly every colour edge is also a depth edge, so a network learns to
    bend depth along colour edges; real scenes are full of colour edges on flat surfaces.
    Shapes painted on the colour image alone (depth and ground truth untouched) teach that
    a colour edge is not evidence of a depth edge by itself.

    :param p: Probability of painting on a sample.
    :param max_decals: Most shapes per image (at least one when painting).
    """

    def __init__(self, p: float = 0.5, max_decals: int = 8) -> None:
        if max_decals < 1:
            raise ValueError(f'max_decals must be >= 1, got {max_decals}')
        self.p = _probability('decal', p)
        self.max_decals = max_decals

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        img = sample['rgb'].copy()
        h, w = img.shape[:2]
        for _ in range(int(rng.integers(1, self.max_decals + 1))):
            layer = img.copy()
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            size = max(2, int(rng.uniform(0.03, 0.25) * min(h, w)))
            kind = rng.integers(0, 3)
            if kind == 0:  # sheet of paper or poster, any rotation
                box = ((cx, cy), (size * rng.uniform(0.5, 2.0), size), rng.uniform(0, 180))
                cv2.fillPoly(layer, [cv2.boxPoints(box).astype(np.int32)], colour)
            elif kind == 1:  # label, stain
                axes = (size, max(1, int(size * rng.uniform(0.3, 1.0))))
                cv2.ellipse(layer, (cx, cy), axes, rng.uniform(0, 180), 0, 360, colour, -1)
            else:  # stripe, cable, printed line
                end = (cx + int(rng.integers(-2 * size, 2 * size + 1)),
                       cy + int(rng.integers(-2 * size, 2 * size + 1)))
                cv2.line(layer, (cx, cy), end, colour, int(rng.integers(1, 6)))
            alpha = rng.uniform(0.4, 1.0)
            img = cv2.addWeighted(layer, alpha, img, 1.0 - alpha, 0.0)
        out = dict(sample)
        out['rgb'] = img
        return out


class DeadLeavesTexture:
    """
    Lay patches of dead-leaves texture over the colour image only: wood, carpet, print, clutter.

    The dead-leaves model (overlapping discs whose radii follow a power law) has the
    scale-invariant edge statistics of natural images, which the simulator's stripes, checkers
    and noise lack: real tables, floors and shelves are covered in edges of every size that
    mean nothing about depth. The patch keeps the shading under it (the texture multiplies the
    image's luminance relative to its mean inside the patch), and depth and ground truth are
    untouched, so the network sees dense colour edges without depth edges.

    :param p: Probability of texturing a sample.
    :param max_patches: Most patches per image (at least one when texturing).
    """

    def __init__(self, p: float = 0.5, max_patches: int = 3) -> None:
        if max_patches < 1:
            raise ValueError(f'max_patches must be >= 1, got {max_patches}')
        self.p = _probability('dead-leaves texture', p)
        self.max_patches = max_patches

    @staticmethod
    def texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """
        :return: float32 [h, w, 3] in [0, 1]: discs of colours spread about one base colour.

        Radii are drawn from a density proportional to r^-3 between 1 px and a fifth of the
        longer side (the scale-invariant choice). Discs are painted one over another, enough
        to cover the canvas about twice (the base colour shows through the rest).
        """
        base = rng.uniform(0.15, 0.85, 3)
        spread = rng.uniform(0.05, 0.3)
        canvas = np.empty((h, w, 3), np.float32)
        canvas[:] = base
        r_min, r_max = 1.0, max(2.0, 0.2 * max(h, w))
        # Inverse CDF of p(r) ~ r^-3 on [r_min, r_max]; E[r^2] = 2 ln(r_max / r_min) / (a - b).
        a, b = r_min ** -2, r_max ** -2
        mean_area = np.pi * 2.0 * np.log(r_max / r_min) / (a - b)
        count = int(min(5000, 2.0 * h * w / mean_area))
        radii = np.rint((a - rng.random(count) * (a - b)) ** -0.5).astype(int)
        xs = rng.integers(-radii, w + radii)
        ys = rng.integers(-radii, h + radii)
        # Mostly lightness changes about the base colour, with a little hue: a material's look.
        lightness = rng.uniform(1.0 - spread, 1.0 + spread, (count, 1))
        colours = np.clip(base * lightness + 0.3 * spread * rng.standard_normal((count, 3)),
                          0.0, 1.0)
        for r, x, y, c in zip(radii, xs, ys, colours):
            cv2.circle(canvas, (int(x), int(y)), int(r), tuple(float(v) for v in c), -1)
        return canvas

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        img = sample['rgb'].astype(np.float32) / 255.0
        h, w = img.shape[:2]
        for _ in range(int(rng.integers(1, self.max_patches + 1))):
            pw = int(rng.uniform(0.15, 0.6) * w)
            ph = int(rng.uniform(0.15, 0.6) * h)
            x0, y0 = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
            mask = np.zeros((ph, pw), np.uint8)
            if rng.random() < 0.5:
                mask[:] = 1
            else:
                cv2.ellipse(mask, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, 1, -1)
            region = img[y0:y0 + ph, x0:x0 + pw]
            lum = region @ np.array([0.299, 0.587, 0.114], np.float32)
            shading = lum / max(float(lum[mask > 0].mean()), 1e-3)
            tex = self.texture(ph, pw, rng) * np.clip(shading, 0.0, 2.0)[..., None]
            alpha = rng.uniform(0.5, 1.0) * mask[..., None].astype(np.float32)
            img[y0:y0 + ph, x0:x0 + pw] = region * (1.0 - alpha) + tex * alpha
        out = dict(sample)
        out['rgb'] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out


class CameraColour:
    """
    What a real colour camera adds: gamma, blur, sensor noise and a small misregistration.

    The colour image is shifted by up to ``max_shift`` pixels against the depth (calibration
    error and rolling shutter in registered RGB-D streams); depth, ground truth and intrinsics
    are untouched, so the depth frame stays the reference.

    :param p: Probability of each effect, drawn independently.
    :param max_shift: Largest colour-to-depth shift in pixels, per axis.
    """

    def __init__(self, p: float = 0.5, max_shift: int = 2) -> None:
        if max_shift < 0:
            raise ValueError(f'max_shift must be >= 0 pixels, got {max_shift}')
        self.p = _probability('camera colour', p)
        self.max_shift = max_shift

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        img = sample['rgb'].astype(np.float32) / 255.0
        if rng.random() < self.p:
            img = img ** rng.uniform(0.7, 1.4)
        if rng.random() < self.p:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
        if rng.random() < self.p:
            sigma = np.float32(rng.uniform(1.0, 6.0) / 255.0)
            img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
        if self.max_shift and rng.random() < self.p:
            dx, dy = (int(v) for v in rng.integers(-self.max_shift, self.max_shift + 1, 2))
            img = shift_image(img, dy, dx)
        out = dict(sample)
        out['rgb'] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out


def to_tensor(sample: Sample) -> Dict[str, Any]:
    """
    Convert to the training batch layout.

    :return: {'rgb' float32 [3, H, W] in [0, 1], 'depth' float32 [1, H, W] meters,
        'gt' float32 [1, H, W] meters, 'intrinsics' float32 [4] (fx, fy, cx, cy)}, 'planted'
        float32 [1, H, W] if present, plus the other keys unchanged.
    """
    _check(sample)
    out = {k: v for k, v in sample.items() if k not in ('rgb', 'intrinsics') + _IMAGE_KEYS}
    out['rgb'] = torch.from_numpy(np.ascontiguousarray(sample['rgb'].transpose(2, 0, 1))).float()
    out['rgb'] /= 255.0
    for key in _IMAGE_KEYS:
        if key in sample:
            out[key] = torch.from_numpy(np.ascontiguousarray(sample[key], np.float32))[None]
    k: Intrinsics = sample['intrinsics']
    out['intrinsics'] = torch.tensor([k.fx, k.fy, k.cx, k.cy], dtype=torch.float32)
    return out


def train_transform(crop_width: int, crop_height: int, scale: Tuple[float, float] = (1.0, 1.5),
                    jitter: float = 0.4) -> Compose:
    """:return: The default training augmentation: scale, crop, flip, colour jitter."""
    steps: List[Any] = []
    if scale[1] > 1.0:
        steps.append(RandomScale(*scale))
    steps += [RandomCrop(crop_width, crop_height), RandomHorizontalFlip(0.5)]
    if jitter > 0:
        steps.append(ColorJitter(jitter))
    return Compose(steps)
