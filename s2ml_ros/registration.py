"""
Colour-to-depth registration offsets: apply a known one, or estimate one from a frame alone.

Depth "registered to colour" by a driver is only as good as the factory calibration: Kinect v1
(OpenNI registration), Azure Kinect and RealSense frames are often a few pixels off. Every
colour-guided fill then carries the near surface of an occluding edge across it. A simulated
frame is registered exactly, so a network trained on the simulator cannot learn the offset.

The estimate needs no ground truth: measured pixels of the frame are hidden under its own hole
shapes moved elsewhere (:class:`s2ml_ros.offline_eval.HolePlanter`), filled by a colour-guided
fill with the colour moved by each candidate offset, and scored on the hidden pixels. The
offset is taken only when it lowers that error by a set share, so a frame that is registered
keeps offset zero. Pure numpy / OpenCV; no ROS, and no torch for :func:`shift_image`.
"""

from typing import Callable, Dict, NamedTuple, Tuple

import cv2
import numpy as np

#: fill(rgb uint8 [H, W, 3], depth float32 [H, W] m, 0 = hole) -> filled depth [H, W] m.
Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ColourOffset(NamedTuple):
    """
    An estimated registration offset.

    :param dy: Rows to move the colour content down (negative: up) so that it lines up with
        the depth, px.
    :param dx: Columns to move it right (negative: left), px.
    :param gain: Share by which the offset lowered the fill's RMSE on the hidden pixels
        against no offset (0 when none was taken).
    :param errors: (dy, dx) -> RMSE on the hidden pixels (m), mean over the draws, for every
        offset tried.
    """

    dy: int
    dx: int
    gain: float
    errors: Dict[Tuple[int, int], float]


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """
    Move an image's content by whole pixels, repeating the edge pixels into the gap.

    :param image: [H, W] or [H, W, C] array (C <= 4), a dtype OpenCV takes.
    :param dy: Rows down (negative: up); beyond the image, only its edge row is left.
    :param dx: Columns right (negative: left).
    :return: Shifted copy of the same shape and dtype; ``image`` itself for (0, 0).
    """
    h, w = image.shape[:2]
    # Clamped: a move past the image leaves every row (column) a copy of the edge.
    dy, dx = int(np.clip(dy, 1 - h, h - 1)), int(np.clip(dx, 1 - w, w - 1))
    if dy == 0 and dx == 0:
        return image
    # A crop and a border copy: a hundred times faster than fancy indexing on the node's
    # per-frame path (0.04 against 3.5 ms at 640x480).
    kept = image[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    moved = cv2.copyMakeBorder(kept, max(0, dy), max(0, -dy), max(0, dx), max(0, -dx),
                               cv2.BORDER_REPLICATE)
    return moved.reshape(image.shape)


def estimate_colour_offset(rgb: np.ndarray, depth_m: np.ndarray, fill: Fill,
                           max_offset: int = 3, draws: int = 3, min_gain: float = 0.15,
                           seed: int = 0) -> ColourOffset:
    """
    Estimate how far the colour sits from the depth in one frame.

    Offsets are searched one axis at a time (columns, rows, columns again) within
    ``max_offset``, each scored by ``fill`` on ``draws`` sets of hidden measured pixels.

    :param rgb: Colour, uint8 [H, W, 3].
    :param depth_m: Raw depth registered to the colour, float32 [H, W] m, 0 or NaN = hole.
    :param fill: Colour-guided fill used to score offsets (the network's initial fill).
    :param max_offset: Largest offset tried along each axis, px (0 turns the search off).
    :param draws: Sets of hidden pixels per offset (more: steadier, slower).
    :param min_gain: Smallest share by which an offset must lower the error to be taken.
    :param seed: Seed of the hidden pixels.
    :return: The offset, (0, 0) when none lowers the error by ``min_gain``.
    :raises ValueError: For a negative ``max_offset``, ``draws`` < 1, ``min_gain`` outside
        [0, 1) or images of different sizes.
    """
    # Imported here: the node's frame preparation uses shift_image and must not load torch,
    # which the offline evaluator's metrics do.
    from s2ml_ros.offline_eval import HolePlanter
    if max_offset < 0:
        raise ValueError(f'max_offset must be >= 0 px, got {max_offset}')
    if draws < 1:
        raise ValueError(f'draws must be >= 1, got {draws}')
    if not 0.0 <= min_gain < 1.0:
        raise ValueError(f'min_gain must be in [0, 1), got {min_gain}')
    depth = np.where(np.isfinite(depth_m), depth_m, 0).astype(np.float32)
    if rgb.shape[:2] != depth.shape:
        raise ValueError(f'colour {rgb.shape[:2]} and depth {depth.shape} differ in size')
    hidden_sets = []
    for k in range(draws):
        raw, hidden = HolePlanter(seed=seed + k).plant(depth)
        if hidden.any():
            hidden_sets.append((raw, hidden))
    errors: Dict[Tuple[int, int], float] = {}
    if not hidden_sets or max_offset == 0:
        return ColourOffset(0, 0, 0.0, errors)

    def error(offset: Tuple[int, int]) -> float:
        if offset not in errors:
            moved = shift_image(rgb, *offset)
            sq = [np.mean((fill(moved, raw)[hidden] - depth[hidden]) ** 2)
                  for raw, hidden in hidden_sets]
            errors[offset] = float(np.sqrt(np.mean(sq)))
        return errors[offset]

    best = (0, 0)
    steps = range(-max_offset, max_offset + 1)
    for axis in (1, 0, 1):
        line = [(best[0], s) if axis == 1 else (s, best[1]) for s in steps]
        best = min(line, key=lambda o: (error(o), abs(o[0]) + abs(o[1])))
    base = error((0, 0))
    gain = 1.0 - errors[best] / base if base > 0 else 0.0
    if best == (0, 0) or gain < min_gain:
        return ColourOffset(0, 0, 0.0, errors)
    return ColourOffset(best[0], best[1], float(gain), errors)
