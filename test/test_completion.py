"""Unit tests of the per-frame steps (s2ml_ros.completion) and the node statistics."""

from types import SimpleNamespace

import numpy as np
import pytest

from s2ml_ros import conversions as conv
from s2ml_ros.completion import (filled_fraction, finalize_depth, output_depth_fields,
                                 prepare_frame)
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.node_stats import RateMeter, RollingStats
from s2ml_ros.params import NodeParams
from s2ml_ros.pointcloud import (build_cloud, cloud_to_array, CloudBuilder, valid_depth,
                                 with_nan)


def image(arr, encoding):
    f = conv.numpy_to_image_fields(arr, encoding)
    return SimpleNamespace(height=f.height, width=f.width, encoding=f.encoding,
                           is_bigendian=0, step=f.step, data=f.data.tobytes())


def info(width, height, fx=100.0, cx=None, cy=None):
    cx = (width - 1) / 2 if cx is None else cx
    cy = (height - 1) / 2 if cy is None else cy
    return SimpleNamespace(width=width, height=height, k=[fx, 0, cx, 0, fx, cy, 0, 0, 1],
                           d=[0.0] * 5, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                           distortion_model='plumb_bob', binning_x=0, binning_y=0)


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    mm = rng.integers(300, 12000, (12, 16)).astype(np.uint16)
    mm[:3, :3] = 0
    return rgb, mm


def test_color_is_resized_to_depth_and_intrinsics_follow(inputs):
    rgb, mm = inputs
    frame = prepare_frame(image(rgb, 'rgb8'), image(mm, '16UC1'), info(32, 24), NodeParams())
    assert frame.resized and frame.size == (16, 12) and frame.rgb.shape == (12, 16, 3)
    assert frame.intrinsics == Intrinsics(100.0, 100.0, 15.5, 11.5, 32, 24).resized(16, 12)
    # Range filter: beyond max_depth_m (10 m) counts as missing.
    assert (frame.depth_m[mm > 10000] == 0).all()
    np.testing.assert_allclose(frame.depth_m[(mm > 0) & (mm <= 10000)],
                               mm[(mm > 0) & (mm <= 10000)] * 0.001, rtol=1e-6)


def test_output_size_color_upsamples_depth_nearest(inputs):
    rgb, mm = inputs
    p = NodeParams(output_size='color', max_depth_m=100.0)
    frame = prepare_frame(image(rgb, 'rgb8'), image(mm, '16UC1'), info(16, 12), p)
    assert frame.size == (32, 24)
    np.testing.assert_allclose(frame.depth_m[::2, ::2], mm * np.float32(0.001), rtol=1e-6)
    np.testing.assert_allclose(frame.depth_m[1::2, 1::2], mm * np.float32(0.001), rtol=1e-6)
    assert frame.intrinsics.size == (32, 24)


def test_colour_offset_moves_the_colour_the_network_and_cloud_see(inputs):
    rgb, mm = inputs
    p = NodeParams(colour_offset_x_px=-2, colour_offset_y_px=1)
    frame = prepare_frame(image(rgb[:12, :16], 'rgb8'), image(mm, '16UC1'), None, p)
    # Content moved 2 px left and 1 px down; the depth is untouched.
    np.testing.assert_array_equal(frame.rgb[1:, :-2], rgb[:11, 2:16])
    np.testing.assert_array_equal(frame.depth_m, prepare_frame(
        image(rgb[:12, :16], 'rgb8'), image(mm, '16UC1'), None, NodeParams()).depth_m)


def test_missing_or_bad_camera_info_is_reported_not_raised(inputs):
    rgb, mm = inputs
    frame = prepare_frame(image(rgb[:12, :16], 'rgb8'), image(mm, '16UC1'), None, NodeParams())
    assert frame.intrinsics is None and frame.intrinsics_error == 'no CameraInfo received'
    bad = info(16, 12)
    bad.k = [0.0] * 9
    frame = prepare_frame(image(rgb[:12, :16], 'rgb8'), image(mm, '16UC1'), bad, NodeParams())
    assert frame.intrinsics is None and 'all zero' in frame.intrinsics_error


def test_bad_images_raise_conversion_error(inputs):
    rgb, mm = inputs
    with pytest.raises(conv.ConversionError):
        prepare_frame(image(rgb, 'rgb8'), image(rgb, 'rgb8'), None, NodeParams())


def test_finalize_depth_and_mask():
    completed = np.array([[1.0, 2.0, 0.0, np.nan, 20.0, 3.0]], np.float32)
    measured = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 3.0]], np.float32)
    out, mask = finalize_depth(completed, measured, NodeParams(min_depth_m=0.5,
                                                               max_depth_m=10.0))
    np.testing.assert_array_equal(np.isnan(out), [[False, False, True, True, True, False]])
    np.testing.assert_array_equal(mask, [[conv.MASK_MEASURED, conv.MASK_COMPLETED, 0, 0, 0,
                                          conv.MASK_MEASURED]])
    _, mask = finalize_depth(completed, measured, NodeParams(keep_measured=False))
    assert not (mask == conv.MASK_MEASURED).any()
    out2, none = finalize_depth(completed, measured, NodeParams(), with_mask=False)
    assert none is None
    assert filled_fraction(measured, out) == (pytest.approx(2 / 6), pytest.approx(3 / 6))
    f16 = output_depth_fields(out2, '16UC1')
    assert f16.encoding == '16UC1'
    assert output_depth_fields(out2, '32FC1').encoding == '32FC1'


def reference_finalize(completed, measured, params):
    """finalize_depth written out plainly, as the node first did it."""
    depth = np.asarray(completed, np.float32)
    lo_ok = depth >= np.float32(params.min_depth_m) if params.min_depth_m > 0 else depth > 0
    valid = (depth <= np.float32(params.max_depth_m)) & lo_ok
    mask = np.where(valid, conv.MASK_COMPLETED, conv.MASK_INVALID).astype(np.uint8)
    if params.keep_measured:
        mask[valid & (measured > 0)] = conv.MASK_MEASURED
    return np.where(valid, depth, np.float32(np.nan)), mask


@pytest.mark.parametrize('params', [NodeParams(), NodeParams(min_depth_m=0.5),
                                    NodeParams(keep_measured=False, max_depth_m=3.0)])
@pytest.mark.parametrize('shape', [(24, 32), (7,), (2, 3, 4)])
def test_finalize_depth_matches_reference_on_edge_values(params, shape):
    rng = np.random.default_rng(5)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1.0, 0.5,
                         np.nextafter(np.float32(0.5), np.float32(0)), 3.0, 10.0, 10.5],
                        np.float32)
    completed = np.where(rng.random(shape) < 0.5, rng.choice(specials, shape),
                         rng.uniform(-1, 12, shape)).astype(np.float32)
    measured = np.where(rng.random(shape) < 0.5, rng.uniform(0.1, 5, shape), 0)
    measured = measured.astype(np.float32)
    ref_out, ref_mask = reference_finalize(completed, measured, params)
    pool = conv.BufferPool()
    for allocate in (None, pool.take):
        out, mask = finalize_depth(completed, measured, params, allocate=allocate)
        assert out.dtype == np.float32 and mask.dtype == np.uint8 and out.shape == shape
        # Bit for bit, NaN included (always the quiet NaN 0x7FC00000).
        np.testing.assert_array_equal(out.view(np.uint32),
                                      np.where(np.isnan(ref_out), np.uint32(0x7FC00000),
                                               ref_out.view(np.uint32)))
        np.testing.assert_array_equal(mask, ref_mask)
    # Non-contiguous input.
    out, _ = finalize_depth(np.asfortranarray(completed), measured, params,
                            allocate=pool.take)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref_out))


def test_published_messages_are_never_changed_by_later_frames():
    pytest.importorskip('sensor_msgs.msg', reason='builds sensor_msgs messages')
    # The node's per-frame sequence with its reused buffers: depth and mask written into pooled
    # message buffers, the cloud built by one CloudBuilder into pooled buffers, messages that
    # take the buffers without a copy. Every message built is kept here, as a subscriber or a
    # queue elsewhere in the process might keep it; none may change when later frames reuse
    # buffers, and buffers are still reused once their messages are gone.
    k = Intrinsics(40.0, 40.0, 15.5, 11.5, 32, 24)
    params = NodeParams()
    pool = conv.BufferPool()
    builder = CloudBuilder()
    rng = np.random.default_rng(8)
    kept, expected = [], []
    for frame in range(6):
        completed = rng.uniform(0.5, 4.0, (24, 32)).astype(np.float32)
        completed[frame, :] = np.nan
        measured = np.where(rng.random((24, 32)) < 0.5, completed, 0).astype(np.float32)
        rgb = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
        out, mask = finalize_depth(completed, measured, params, allocate=pool.take)
        msgs = [conv.make_image(output_depth_fields(out, '32FC1'), share=True),
                conv.make_image(conv.numpy_to_image_fields(mask, 'mono8'), share=True),
                conv.make_point_cloud(builder.build(out, k, rgb, allocate=pool.take,
                                                    nan_is_only_invalid=True))]
        assert msgs[0].data is conv.whole_byte_array(out)  # no copy
        reference = [conv.to_byte_array(out).tobytes(), mask.tobytes(),
                     build_cloud(out, k, rgb).data.tobytes()]
        assert [bytes(m.data) for m in msgs] == reference
        if frame < 3:
            kept.append(msgs)
            expected.append(reference)
        del out, mask, msgs
    buffers = [id(m.data) for msgs in kept for m in msgs]
    assert len(set(buffers)) == len(buffers)  # no two kept messages share a buffer
    for msgs, reference in zip(kept, expected):
        assert [bytes(m.data) for m in msgs] == reference


def test_buffers_are_reused_once_the_messages_are_gone():
    pool = conv.BufferPool()
    completed = np.full((6, 8), 2.0, np.float32)
    first = finalize_depth(completed, completed, NodeParams(), allocate=pool.take)
    ids = [id(conv.whole_byte_array(a)) for a in first]
    del first
    again = finalize_depth(completed, completed, NodeParams(), allocate=pool.take)
    assert [id(conv.whole_byte_array(a)) for a in again] == ids


def test_with_nan_matches_where():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 9)).astype(np.float32)
    x[0, 0], x[1, 1] = np.inf, np.nan
    valid = valid_depth(x)
    assert not valid[0, 0] and not valid[1, 1] and (valid == ((x > 0) & np.isfinite(x))).all()
    out = with_nan(x, valid)
    np.testing.assert_array_equal(out[valid], x[valid])
    assert np.isnan(out[~valid]).all()


def test_cloud_into_a_message_buffer_without_copy():
    pytest.importorskip('sensor_msgs.msg', reason='builds sensor_msgs messages')
    k = Intrinsics(10.0, 10.0, 3.5, 2.5, 8, 6)
    depth = np.full((6, 8), 2.0, np.float32)
    rgb = np.zeros((6, 8, 3), np.uint8)
    cloud = build_cloud(depth, k, rgb, allocate=conv.byte_array)
    msg = conv.make_point_cloud(cloud)
    assert msg.data is cloud.data  # the array.array is handed over, not copied
    pts = cloud_to_array(msg.data, 6, 8, msg.fields, msg.point_step)
    assert (pts['z'] == 2.0).all()


def test_rate_meter_and_rolling_stats():
    meter = RateMeter(window_s=2.0)
    assert meter.rate(0.0) == 0.0
    for i in range(11):
        meter.tick(10.0 + 0.1 * i)
    assert meter.rate(11.0) == pytest.approx(10.0)
    assert meter.last() == pytest.approx(11.0)
    assert meter.rate(20.0) == 0.0 and meter.count == 11
    stats = RollingStats(size=3)
    for v in (1.0, 2.0, 3.0, 10.0):
        stats.add('a', v)
    assert stats.summary('a') == (3.0, 10.0, 3)
    med, mx, n = stats.summary('missing')
    assert n == 0 and np.isnan(med)
    assert stats.names() == ('a',)
