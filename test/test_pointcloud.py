"""Unit tests of s2ml_ros.pointcloud against an independent per-pixel back-projection."""

import numpy as np
import pytest

from s2ml_ros import conversions as conv
from s2ml_ros.geometry import GeometryError, Intrinsics
from s2ml_ros.pointcloud import (build_cloud, cloud_to_array, CloudBuilder, pack_rgb,
                                 unpack_rgb, XYZ_FIELDS, XYZRGB_FIELDS)


def reference_points(depth, fx, fy, cx, cy):
    """Back-project pixel by pixel with plain Python floats (independent of the numpy code)."""
    h, w = depth.shape
    out = np.full((h, w, 3), np.nan)
    for v in range(h):
        for u in range(w):
            z = float(depth[v, u])
            if np.isfinite(z) and z > 0:
                out[v, u] = ((u - cx) * z / fx, (v - cy) * z / fy, z)
    return out


@pytest.fixture
def scene():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.3, 5.0, size=(12, 17)).astype(np.float32)
    depth[2, 3] = 0.0
    depth[5, :4] = np.nan
    depth[7, 9] = -1.0
    depth[8, 8] = np.inf
    rgb = rng.integers(0, 256, size=(12, 17, 3)).astype(np.uint8)
    k = Intrinsics(21.0, 23.5, 8.25, 5.75, 17, 12)
    return depth, rgb, k


def test_xyzrgb_cloud_matches_reference(scene):
    depth, rgb, k = scene
    cloud = build_cloud(depth, k, rgb)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (12, 17, 16, 16 * 17)
    assert cloud.fields == XYZRGB_FIELDS and not cloud.is_dense and not cloud.is_bigendian
    assert cloud.data.size == 12 * 17 * 16
    pts = cloud_to_array(cloud.data, cloud.height, cloud.width, cloud.fields, cloud.point_step)
    xyz = np.stack([pts['x'], pts['y'], pts['z']], axis=-1)
    ref = reference_points(depth, k.fx, k.fy, k.cx, k.cy)
    np.testing.assert_array_equal(np.isnan(xyz), np.isnan(ref))
    np.testing.assert_allclose(xyz[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(unpack_rgb(pts['rgb']), rgb)


def test_invalid_pixels_are_nan_in_every_coordinate(scene):
    depth, rgb, k = scene
    pts = cloud_to_array(*(lambda c: (c.data, c.height, c.width, c.fields, c.point_step))(
        build_cloud(depth, k)))
    for v, u in [(2, 3), (5, 0), (7, 9), (8, 8)]:
        assert np.isnan(pts['x'][v, u]) and np.isnan(pts['y'][v, u]) and np.isnan(pts['z'][v, u])


def test_xyz_only_cloud(scene):
    depth, _, k = scene
    cloud = build_cloud(depth, k)
    assert cloud.fields == XYZ_FIELDS and cloud.point_step == 12


def test_decimation_keeps_the_grid_and_the_geometry(scene):
    depth, rgb, k = scene
    cloud = build_cloud(depth, k, rgb, decimation=3)
    assert (cloud.height, cloud.width) == (4, 6)
    pts = cloud_to_array(cloud.data, cloud.height, cloud.width, cloud.fields, cloud.point_step)
    ref = reference_points(depth, k.fx, k.fy, k.cx, k.cy)[::3, ::3]
    valid = ~np.isnan(ref[..., 2])
    np.testing.assert_allclose(pts['x'][valid], ref[..., 0][valid], rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(unpack_rgb(pts['rgb']), rgb[::3, ::3])


def test_shape_errors(scene):
    depth, rgb, k = scene
    with pytest.raises(GeometryError, match='does not match intrinsics'):
        build_cloud(depth[:5], k)
    with pytest.raises(GeometryError, match='rgb shape'):
        build_cloud(depth, k, rgb[:, :5])
    with pytest.raises(GeometryError, match='decimation'):
        build_cloud(depth, k, decimation=0)


def test_pack_rgb_bits():
    packed = pack_rgb(np.array([[255, 128, 1]], np.uint8))
    assert packed.view(np.uint32)[0] == 0x00FF8001


def test_point_cloud2_message_roundtrip(scene):
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2
    depth, rgb, k = scene
    cloud = build_cloud(depth, k, rgb)
    msg = conv.make_point_cloud(cloud)
    back = deserialize_message(serialize_message(msg), PointCloud2)
    assert (back.height, back.width, back.is_dense) == (12, 17, False)
    assert [(f.name, f.offset, f.datatype, f.count) for f in back.fields] == list(XYZRGB_FIELDS)
    pts = cloud_to_array(back.data, back.height, back.width, back.fields, back.point_step)
    np.testing.assert_array_equal(pts['z'][np.isfinite(pts['z'])],
                                  depth[np.isfinite(depth) & (depth > 0)])


def test_clean_input_shortcut_gives_the_same_cloud(scene):
    depth, rgb, k = scene
    clean = np.where((depth > 0) & np.isfinite(depth), depth, np.nan).astype(np.float32)
    a = build_cloud(depth, k, rgb)
    b = build_cloud(clean, k, rgb, nan_is_only_invalid=True)
    assert a.data.tobytes() == b.data.tobytes()


def test_cloud_builder_gives_the_same_bytes_frame_after_frame(scene):
    # One builder keeps ray factors and scratch planes between calls; whatever changes between
    # calls (camera model, size, decimation, colors), each cloud equals a one-off build_cloud,
    # and a returned cloud is not changed by later calls.
    depth, rgb, k = scene
    builder = CloudBuilder()
    other_k = Intrinsics(30.0, 31.0, 7.0, 6.0, 17, 12)
    small = depth[:6, :9]
    small_k = Intrinsics(21.0, 23.5, 4.0, 2.5, 9, 6)
    calls = [(depth, k, rgb, 1), (depth, k, rgb, 1), (depth, other_k, rgb, 1),
             (depth, other_k, None, 1), (depth, k, rgb, 3), (small, small_k, rgb[:6, :9], 1),
             (depth * 2, k, rgb[::-1], 1), (depth, k, rgb, 1)]
    kept = []
    for d, intr, colors, n in calls:
        got = builder.build(d, intr, colors, n, allocate=conv.byte_array)
        want = build_cloud(d, intr, colors, n)
        assert (got.height, got.width, got.fields, got.point_step) == \
            (want.height, want.width, want.fields, want.point_step)
        assert got.data.tobytes() == want.data.tobytes()
        kept.append((got, want.data.tobytes()))
    assert all(got.data.tobytes() == want for got, want in kept)
