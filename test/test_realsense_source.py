"""Tests of the pyrealsense2 frame source on synthetic librealsense recordings (no camera)."""

import builtins
import ctypes

import numpy as np
import pytest

from s2ml_ros import realsense_source as rsrc
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.realsense_source import (FILTER_NAMES, RealSenseConfig, RealSenseDepthFilters,
                                       RealSenseError, RealSenseSource, write_recording)

W, H, N = 64, 48, 5
COLOR = Intrinsics(56.0, 55.0, 31.0, 24.0, W, H)
DEPTH = Intrinsics(50.0, 50.0, 31.5, 23.5, W, H)


def _frames(n=N, seed=0):
    rng = np.random.default_rng(seed)
    rgbs, depths = [], []
    for i in range(n):
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        depth = np.full((H, W), 1000 + 20 * i, np.uint16)
        depth[:, W // 2:] += 500
        depth[5:12, 8:20] = 0  # a hole
        rgbs.append(rgb)
        depths.append(depth)
    return rgbs, depths


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    """Colour and depth share one camera model and the extrinsics are zero: align is a no-op."""
    rgbs, depths = _frames()
    path = str(tmp_path_factory.mktemp('rs') / 'same.db3')
    write_recording(path, rgbs, depths, COLOR)
    return path, rgbs, depths


def test_playback_gives_every_frame_with_colour_intrinsics(recording):
    path, rgbs, depths = recording
    with RealSenseSource(RealSenseConfig(recording=path)) as source:
        assert source.is_playback
        assert source.depth_scale == pytest.approx(0.001)
        frames = list(source.frames())
    assert [f.frame_number for f in frames] == list(range(N))
    stamps = [f.timestamp_ms for f in frames]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == pytest.approx(1000 / 30, 1e-3)
    for f in frames:
        i = f.frame_number
        assert f.intrinsics == COLOR
        assert f.camera.distortion_model == 'plumb_bob' and f.camera.distortion == (0.0,) * 5
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (H, W, 3)
        np.testing.assert_array_equal(f.rgb, rgbs[i])
        assert f.depth_raw.dtype == np.uint16 and f.depth_raw.shape == (H, W)
        # Same camera, no baseline: aligned depth equals the recorded depth almost everywhere
        # (align splats each pixel's footprint, which can touch a neighbour at edges).
        assert np.mean(f.depth_raw == depths[i]) > 0.9
        assert f.depth_raw[8, 12] == 0 and f.depth_raw[30, 5] == 1000 + 20 * i
        np.testing.assert_allclose(f.depth_m[30, 5], (1000 + 20 * i) / 1000.0, rtol=1e-6)
        np.testing.assert_array_equal(f.depth_mm, f.depth_raw)


def test_depth_is_aligned_to_colour_with_another_camera_model(tmp_path):
    rgbs, depths = _frames(3)
    path = str(tmp_path / 'baseline.db3')
    write_recording(path, rgbs, depths, COLOR, depth_intrinsics=DEPTH,
                    depth_to_color_m=(0.015, 0.0, 0.0))
    with RealSenseSource(RealSenseConfig(recording=path)) as source:
        assert source.camera.intrinsics == COLOR
        frames = list(source.frames())
    assert len(frames) == 3
    for f in frames:
        assert f.intrinsics == COLOR
        assert f.depth_raw.shape == (H, W)
        valid = f.depth_raw[f.depth_raw > 0]
        assert valid.size > 0.5 * W * H
        # Re-projection keeps the measured values (fronto-parallel planes).
        assert set(np.unique(valid)) <= set(np.unique(depths[f.frame_number])) - {0}


def test_depth_mm_rounds_other_device_units(tmp_path):
    rgbs, depths = _frames(2)
    path = str(tmp_path / 'd405.db3')
    write_recording(path, rgbs, depths, COLOR, depth_scale=0.0001)
    with RealSenseSource(RealSenseConfig(recording=path)) as source:
        frame = next(source.frames())
    assert frame.depth_scale == pytest.approx(0.0001)
    assert frame.depth_mm[30, 5] == 100  # 1000 units of 0.1 mm
    assert frame.depth_m[30, 5] == pytest.approx(0.1, rel=1e-5)


def test_missing_and_unreadable_recordings_raise(tmp_path):
    with pytest.raises(RealSenseError, match='does not exist'):
        RealSenseSource(RealSenseConfig(recording=str(tmp_path / 'nope.db3'))).start()
    junk = tmp_path / 'junk.db3'
    junk.write_bytes(b'not a recording' * 10)
    with pytest.raises(RealSenseError, match='junk.db3'):
        RealSenseSource(RealSenseConfig(recording=str(junk))).start()


def test_read_before_start_and_bad_config():
    with pytest.raises(RealSenseError, match='not started'):
        RealSenseSource(RealSenseConfig(recording='x.db3')).read()
    with pytest.raises(ValueError, match='fps'):
        RealSenseConfig(fps=0)


def test_no_camera_gives_clear_error():
    rs = rsrc.load_pyrealsense2()
    if len(rs.context().query_devices()) > 0:
        pytest.skip('a RealSense camera is connected')
    with pytest.raises(RealSenseError, match='no RealSense camera found'):
        RealSenseSource(RealSenseConfig()).start()


def test_write_recording_rejects_bad_input(tmp_path, recording):
    rgbs, depths = _frames(2)
    with pytest.raises(ValueError, match='.db3'):
        write_recording(str(tmp_path / 'x.bag'), rgbs, depths, COLOR)
    with pytest.raises(ValueError, match='already exists'):
        write_recording(recording[0], rgbs, depths, COLOR)
    with pytest.raises(ValueError, match='as many'):
        write_recording(str(tmp_path / 'y.db3'), rgbs, depths[:1], COLOR)


def test_filters_fill_holes_and_keep_state():
    depth = np.full((H, W), 1500, np.uint16)
    depth[10:20, 10:20] = 0
    with RealSenseDepthFilters(COLOR) as filters:
        assert filters.names == FILTER_NAMES
        outs = [filters.apply(depth) for _ in range(3)]
    for out in outs:
        assert set(out) == set(FILTER_NAMES)
        for name, filled in out.items():
            assert filled.dtype == np.uint16 and filled.shape == (H, W), name
    assert np.all(outs[0]['rs_hole_filling'][10:20, 10:20] == 1500)
    assert np.all(outs[0]['rs_spatial'][10:20, 10:20] == 0)  # default: no hole filling
    assert np.all(outs[-1]['rs_chain'] > 0)
    # Valid pixels of a flat plane survive every filter.
    for name in FILTER_NAMES:
        assert abs(int(outs[-1][name][30, 40]) - 1500) <= 2, name


def test_filters_reject_bad_input():
    with pytest.raises(ValueError, match='unknown filter'):
        RealSenseDepthFilters(COLOR, names=('median',))
    with RealSenseDepthFilters(COLOR, names=('rs_hole_filling',)) as filters:
        with pytest.raises(ValueError, match='does not match'):
            filters.apply(np.zeros((H + 1, W), np.uint16))


def test_libusb_missing_gives_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_libusb_package(name, *args, **kwargs):
        if name == 'libusb_package':
            raise ImportError('No module named libusb_package')
        return real_import(name, *args, **kwargs)

    def no_cdll(name, *args, **kwargs):
        raise OSError(f'{name}: cannot open shared object file')

    monkeypatch.setattr(builtins, '__import__', no_libusb_package)
    monkeypatch.setattr(ctypes, 'CDLL', no_cdll)
    with pytest.raises(RealSenseError, match='pip install libusb-package'):
        rsrc._preload_libusb()


def test_libusb_falls_back_to_the_system_library(monkeypatch):
    real_import = builtins.__import__
    loaded = []

    def no_libusb_package(name, *args, **kwargs):
        if name == 'libusb_package':
            raise ImportError('No module named libusb_package')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_libusb_package)
    monkeypatch.setattr(ctypes, 'CDLL', lambda name, *a, **k: loaded.append(name))
    assert rsrc._preload_libusb() == 'libusb-1.0.so.0'
    assert loaded == ['libusb-1.0.so.0']
