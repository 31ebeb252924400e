"""Colour-to-depth registration offsets: shifting, estimating, and the predictor's estimate."""

from bag_helpers import boxes_frame
import numpy as np
import pytest
from s2ml_ros.model import build_s2ml
from s2ml_ros.model.checkpoint import CheckpointInfo
from s2ml_ros.pipeline import (DepthCompletionPredictor, estimate_colour_offset,
                               initial_fill_image, shift_image)
import torch


def _guided_fill(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    return initial_fill_image(rgb, depth, 'guided_multigrid', 20, 'sor', 'chroma')


def test_shift_image_moves_content_and_repeats_the_edge():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    moved = shift_image(image, 1, -2)
    assert moved[1:, :2].tolist() == image[:2, 2:].tolist()
    assert moved[0].tolist() == moved[1].tolist()          # top row repeated
    assert (moved[:, 2:] == moved[:, 1:2]).all()           # right columns repeated
    assert shift_image(image, 0, 0) is image
    # Any shape and dtype the node and the training transforms hand it, and moves past the edge.
    rng = np.random.default_rng(0)
    for shape, dtype in (((6, 7, 3), np.uint8), ((6, 7, 1), np.float32), ((6, 7), np.float32)):
        img = rng.integers(0, 255, shape).astype(dtype)
        for dy, dx in ((2, -3), (-1, 4), (9, -12)):
            ys = np.clip(np.arange(6) - dy, 0, 5)
            xs = np.clip(np.arange(7) - dx, 0, 6)
            np.testing.assert_array_equal(shift_image(img, dy, dx), img[ys[:, None], xs])


def test_estimate_finds_the_colour_moved_off_the_depth():
    rgb, raw = boxes_frame()
    aligned = estimate_colour_offset(rgb, raw, _guided_fill)
    assert (aligned.dy, aligned.dx) == (0, 0)
    moved = estimate_colour_offset(shift_image(rgb, 0, 2), raw, _guided_fill)
    assert (moved.dy, moved.dx) == (0, -2)
    assert moved.gain >= 0.15
    # The error of the offset found is the smallest of those tried.
    assert moved.errors[(0, -2)] == min(moved.errors.values())
    down = estimate_colour_offset(shift_image(rgb, -2, 0), raw, _guided_fill)
    assert (down.dy, down.dx) == (2, 0)


def test_estimate_rejects_bad_arguments_by_name():
    rgb, raw = boxes_frame()
    with pytest.raises(ValueError, match='max_offset must be >= 0 px, got -1'):
        estimate_colour_offset(rgb, raw, _guided_fill, max_offset=-1)
    with pytest.raises(ValueError, match='draws must be >= 1, got 0'):
        estimate_colour_offset(rgb, raw, _guided_fill, draws=0)
    with pytest.raises(ValueError, match=r'min_gain must be in \[0, 1\), got 1.5'):
        estimate_colour_offset(rgb, raw, _guided_fill, min_gain=1.5)
    with pytest.raises(ValueError, match='differ in size'):
        estimate_colour_offset(rgb[:, :-1], raw, _guided_fill)
    # A frame without holes gives nothing to hide and keeps offset zero.
    found = estimate_colour_offset(rgb, np.full(raw.shape, 2.0, np.float32), _guided_fill)
    assert (found.dy, found.dx, found.gain) == (0, 0, 0.0)


def test_predictor_estimate_and_its_initial_fill_alone():
    torch.manual_seed(0)
    model = build_s2ml('tiny')
    info = CheckpointInfo(path='random', variant='tiny', config=model.config, sha256='0' * 64)
    predictor = DepthCompletionPredictor(model, info, torch.device('cpu'))
    rgb, raw = boxes_frame()
    found = predictor.estimate_colour_offset(shift_image(rgb, 0, 2), raw)
    assert (found.dy, found.dx) == (0, -2)
    # D_0 alone is the one the network starts its cascade from.
    with torch.inference_mode():
        d0 = model(torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float()[None],
                   torch.from_numpy(raw)[None, None], with_initial=True)[0][0, 0].numpy()
    np.testing.assert_allclose(predictor.initial_fill(rgb, raw), d0, rtol=1e-4, atol=1e-4)
