"""Classical hole fills: contract, exactness on simple geometry, use of the colour edges."""

import numpy as np
import pytest
from s2ml_ros.baselines import BASELINES, fill_nearest, guided_filter


def _ramp() -> np.ndarray:
    """Make a slanted plane: depth 1 m to 3 m across 64 columns, 48 rows."""
    return np.tile(np.linspace(1.0, 3.0, 64, dtype=np.float32), (48, 1))


def _textured_rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(90, 160, (48, 64, 3)).astype(np.uint8)


@pytest.mark.parametrize('name', sorted(BASELINES))
def test_fill_contract_and_plane_accuracy(name: str) -> None:
    gt = _ramp()
    raw = gt.copy()
    raw[15:30, 20:40] = 0
    raw[:, :3] = 0
    out = BASELINES[name](_textured_rgb(), raw)
    assert out.dtype == np.float32 and out.shape == gt.shape
    np.testing.assert_array_equal(out[raw > 0], raw[raw > 0])
    if name == 'librealsense':
        # One raster pass from the top-left: the left border band is never filled.
        assert np.all(out[:, 0] == 0) and np.all(out[15:30, 20:40] > 0)
        raw = np.where(out > 0, raw, -1.0)  # score only what it filled
    else:
        assert np.all(out > 0)
    hole = raw == 0
    tol = {'nearest': 0.4, 'telea': 0.15, 'navier_stokes': 0.1, 'guided': 0.2,
           'colorization': 0.1, 'librealsense': 0.4}[name]
    assert np.abs(out[hole] - gt[hole]).mean() < tol


@pytest.mark.parametrize('name', sorted(BASELINES))
def test_fill_without_valid_pixels_or_holes(name: str) -> None:
    rgb = _textured_rgb()
    empty = np.zeros((48, 64), np.float32)
    np.testing.assert_array_equal(BASELINES[name](rgb, empty), empty)
    full = _ramp()
    np.testing.assert_array_equal(BASELINES[name](rgb, full), full)
    with pytest.raises(ValueError, match='does not match'):
        BASELINES[name](rgb[:10], full)


@pytest.mark.parametrize('name', ['guided', 'colorization'])
def test_rgb_guided_fills_follow_the_colour_edge(name: str) -> None:
    # Dark object at 1 m on the left, bright wall at 3 m on the right; the hole straddles the
    # boundary and is wider on the object side, so nearest-style fills bleed across the edge.
    gt = np.full((48, 64), 3.0, np.float32)
    gt[:, :32] = 1.0
    rgb = np.full((48, 64, 3), 220, np.uint8)
    rgb[:, :32] = 30
    raw = gt.copy()
    raw[10:38, 14:36] = 0
    out = BASELINES[name](rgb, raw)
    hole = raw == 0
    err = np.abs(out - gt)[hole]
    naive = np.abs(fill_nearest(rgb, raw) - gt)[hole]
    assert np.median(err) < 0.05
    assert err.mean() < naive.mean()


def test_nearest_modes() -> None:
    raw = np.array([[0, 2, 0, 0, 5]], np.float32)
    np.testing.assert_array_equal(fill_nearest(None, raw), [[2, 2, 2, 5, 5]])
    np.testing.assert_array_equal(fill_nearest(None, raw, mode='left'), [[2, 2, 2, 2, 5]])
    with pytest.raises(ValueError, match='mode'):
        fill_nearest(None, raw, mode='up')


def test_guided_filter_keeps_constants_and_smooths_noise() -> None:
    guide = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    const = np.full((32, 32), 2.0, np.float32)
    np.testing.assert_allclose(guided_filter(guide, const, 3, 1e-2), const, atol=1e-4)
    noisy = const + np.random.default_rng(2).normal(0, 0.1, (32, 32)).astype(np.float32)
    assert guided_filter(np.zeros_like(guide), noisy, 3, 1e-2).std() < noisy.std() / 3


def _rs_reference(depth: np.ndarray, mode: str) -> np.ndarray:
    """Make a line-by-line port of librealsense's hole-filling loops (the reference)."""
    d = depth.astype(np.float64).copy()
    h, w = d.shape
    if mode == 'fill_from_left':
        for j in range(h):
            for i in range(1, w):
                if d[j, i] == 0:
                    d[j, i] = d[j, i - 1]
        return d
    for j in range(1, h - 1):
        for i in range(1, w):
            if d[j, i] == 0:
                tmp = d[j - 1, i]
                for q in (d[j - 1, i - 1], d[j, i - 1], d[j + 1, i - 1], d[j + 1, i]):
                    if mode == 'farthest_from_around' and q > tmp:
                        tmp = q
                    if mode == 'nearest_from_around' and q != 0 and q < tmp:
                        tmp = q
                d[j, i] = tmp
    return d


@pytest.mark.parametrize('mode', ['fill_from_left', 'farthest_from_around',
                                  'nearest_from_around'])
def test_librealsense_filter_matches_its_loops(mode: str) -> None:
    from s2ml_ros.baselines import fill_librealsense
    rng = np.random.default_rng(3)
    for _ in range(5):
        depth = rng.uniform(0.5, 4.0, (17, 23)).astype(np.float32)
        depth[rng.random((17, 23)) < 0.4] = 0
        depth[5:9, 6:15] = 0
        out = fill_librealsense(None, depth, mode)
        np.testing.assert_allclose(out, _rs_reference(depth, mode), rtol=0, atol=1e-6)
