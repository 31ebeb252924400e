"""Colour-to-depth registration offsets: shifting, estimating, and the predictor applying them."""

from bag_helpers import boxes_frame
import numpy as np
import pytest
from s2ml_ros.model import build_s2ml
from s2ml_ros.model.checkpoint import CheckpointInfo
from s2ml_ros.pipeline import DepthCompletionPredictor, estimate_colour_offset, shift_image
import torch


def _fill(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    from s2ml_ros.model.layers import initial_fill
    valid = depth > 0
    d = torch.from_numpy(np.where(valid, depth, 0).astype(np.float32))[None, None]
    colour = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    return initial_fill(d, torch.from_numpy(valid)[None, None].float(), colour,
                        'guided_multigrid', 20)[0, 0].numpy()


def test_shift_image_moves_content_and_repeats_the_edge():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    moved = shift_image(image, 1, -2)
    assert moved[1:, :2].tolist() == image[:2, 2:].tolist()
    assert moved[0].tolist() == moved[1].tolist()          # top row repeated
    assert (moved[:, 2:] == moved[:, 1:2]).all()           # right columns repeated
    assert shift_image(image, 0, 0) is image


def test_estimate_finds_the_colour_moved_off_the_depth():
    rgb, raw = boxes_frame()
    aligned = estimate_colour_offset(rgb, raw, _fill)
    assert (aligned.dy, aligned.dx) == (0, 0)
    moved = estimate_colour_offset(shift_image(rgb, 0, 2), raw, _fill)
    assert (moved.dy, moved.dx) == (0, -2)
    assert moved.gain >= 0.15
    # The error of the offset found is the smallest of those tried.
    assert moved.errors[(0, -2)] == min(moved.errors.values())
    down = estimate_colour_offset(shift_image(rgb, -2, 0), raw, _fill)
    assert (down.dy, down.dx) == (2, 0)


def test_estimate_rejects_bad_arguments_by_name():
    rgb, raw = boxes_frame()
    with pytest.raises(ValueError, match='max_offset must be >= 0 px, got -1'):
        estimate_colour_offset(rgb, raw, _fill, max_offset=-1)
    with pytest.raises(ValueError, match='draws must be >= 1, got 0'):
        estimate_colour_offset(rgb, raw, _fill, draws=0)
    with pytest.raises(ValueError, match=r'min_gain must be in \[0, 1\), got 1.5'):
        estimate_colour_offset(rgb, raw, _fill, min_gain=1.5)
    with pytest.raises(ValueError, match='differ in size'):
        estimate_colour_offset(rgb[:, :-1], raw, _fill)
    # A frame without holes gives nothing to hide and keeps offset zero.
    found = estimate_colour_offset(rgb, np.full(raw.shape, 2.0, np.float32), _fill)
    assert (found.dy, found.dx, found.gain) == (0, 0, 0.0)


def test_predictor_moves_the_colour_by_its_offset():
    torch.manual_seed(0)
    model = build_s2ml('tiny')
    info = CheckpointInfo(path='random', variant='tiny', config=model.config, sha256='0' * 64)
    predictor = DepthCompletionPredictor(model, info, torch.device('cpu'))
    rgb, raw = boxes_frame()
    moved = shift_image(rgb, 0, 2)
    predictor.colour_offset = (0, -2)
    shifted_back = shift_image(moved, 0, -2)
    plain = DepthCompletionPredictor(model, info, torch.device('cpu'))
    expected = plain.predict(shifted_back, raw)
    np.testing.assert_array_equal(predictor.predict(moved, raw), expected)
    found = predictor.estimate_colour_offset(moved, raw)
    assert (found.dy, found.dx) == (0, -2)
    np.testing.assert_allclose(predictor.initial_fill(rgb, raw), _fill(rgb, raw), atol=1e-4)
