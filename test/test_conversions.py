"""Unit tests of s2ml_ros.conversions: decoding, encoding and CameraInfo, with no ROS graph."""

import array
from types import SimpleNamespace

import numpy as np
import pytest

from s2ml_ros import conversions as conv
from s2ml_ros.geometry import Intrinsics


def fake_image(arr, encoding, step=None, bigendian=False, data_type='bytes'):
    """Build an Image-like object from an array, with optional row padding and byte order."""
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    dt = arr.dtype.newbyteorder('>' if bigendian else '<') if arr.dtype.itemsize > 1 \
        else arr.dtype
    rows = np.ascontiguousarray(arr.astype(dt)).reshape(h, -1).view(np.uint8)
    step = rows.shape[1] if step is None else step
    padded = np.zeros((h, step), np.uint8)
    padded[:, :rows.shape[1]] = rows
    raw = padded.reshape(-1)
    data = {'bytes': raw.tobytes(), 'array': array.array('B', raw.tobytes()),
            'numpy': raw.copy()}[data_type]
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                           step=step, data=data)


@pytest.mark.parametrize('data_type', ['bytes', 'array', 'numpy'])
@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('pad', [0, 6])
def test_depth_16uc1_roundtrip_with_padding_and_byte_order(data_type, bigendian, pad):
    rng = np.random.default_rng(0)
    mm = rng.integers(0, 9000, size=(7, 11)).astype(np.uint16)
    mm[0, 0] = 0
    msg = fake_image(mm, '16UC1', step=11 * 2 + pad, bigendian=bigendian, data_type=data_type)
    np.testing.assert_array_equal(conv.image_to_numpy(msg), mm)
    depth = conv.depth_to_meters(msg)
    assert depth.dtype == np.float32 and depth.shape == (7, 11)
    np.testing.assert_allclose(depth, mm.astype(np.float32) * 0.001, rtol=1e-6)
    assert depth[0, 0] == 0


def test_depth_16uc1_scale_parameter():
    mm = np.array([[100, 0]], np.uint16)
    depth = conv.depth_to_meters(fake_image(mm, '16UC1'), depth_scale=0.0001)
    np.testing.assert_allclose(depth, [[0.01, 0.0]], rtol=1e-6)


def test_mono16_alias_is_millimeter_depth():
    mm = np.array([[1500, 0]], np.uint16)
    np.testing.assert_allclose(conv.depth_to_meters(fake_image(mm, 'mono16')), [[1.5, 0.0]])


def test_depth_32fc1_nan_inf_negative_become_zero():
    m = np.array([[1.5, np.nan, np.inf, -np.inf, -1.0, 0.0, 2.25]], np.float32)
    for big in (False, True):
        depth = conv.depth_to_meters(fake_image(m, '32FC1', bigendian=big))
        np.testing.assert_array_equal(depth, [[1.5, 0, 0, 0, 0, 0, 2.25]])


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'])
def test_color_encodings_to_rgb(encoding):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(5, 9, 3)).astype(np.uint8)
    if encoding == 'rgb8':
        src = rgb
    elif encoding == 'bgr8':
        src = rgb[..., ::-1]
    elif encoding == 'rgba8':
        src = np.concatenate([rgb, np.full((5, 9, 1), 7, np.uint8)], axis=2)
    elif encoding == 'bgra8':
        src = np.concatenate([rgb[..., ::-1], np.full((5, 9, 1), 7, np.uint8)], axis=2)
    else:
        src = rgb[..., 0]
        rgb = np.repeat(src[..., None], 3, axis=2)
    out = conv.color_to_rgb(fake_image(src, encoding, step=src[0].nbytes + 3))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_unknown_encoding_names_it_and_the_accepted_set():
    msg = fake_image(np.zeros((2, 2), np.uint8), 'yuv422')
    with pytest.raises(conv.ConversionError, match=r"'yuv422'.*accepted: 16UC1, 32FC1"):
        conv.depth_to_meters(msg)
    with pytest.raises(conv.ConversionError, match=r"'yuv422'.*rgb8, bgr8, rgba8, bgra8, mono8"):
        conv.color_to_rgb(msg)
    # A color encoding is not a depth encoding, and the other way round.
    with pytest.raises(conv.ConversionError, match='rgb8'):
        conv.depth_to_meters(fake_image(np.zeros((2, 2, 3), np.uint8), 'rgb8'))
    with pytest.raises(conv.ConversionError, match='16UC1'):
        conv.color_to_rgb(fake_image(np.zeros((2, 2), np.uint16), '16UC1'))


def test_truncated_buffer_is_a_clear_error():
    msg = fake_image(np.zeros((4, 4), np.uint16), '16UC1')
    msg.data = msg.data[:-3]
    with pytest.raises(conv.ConversionError, match=r'truncated: 29 bytes.*expected 32'):
        conv.depth_to_meters(msg)


def test_last_row_without_padding_is_accepted():
    mm = np.arange(12, dtype=np.uint16).reshape(3, 4)
    msg = fake_image(mm, '16UC1', step=10)
    msg.data = msg.data[:-2]  # last row has no padding bytes
    np.testing.assert_array_equal(conv.image_to_numpy(msg), mm)


@pytest.mark.parametrize('height,width,step,match', [
    (4, 4, 6, r'step 6 is smaller than width 4 x 1 channel\(s\) x 2 byte\(s\) = 8'),
    (0, 4, 8, r'image size 4x0 is invalid'),
    (4, -1, 8, r'image size -1x4 is invalid'),
    (100000, 4, 8, r'image size 4x100000 is invalid'),
])
def test_inconsistent_size_and_step(height, width, step, match):
    msg = SimpleNamespace(height=height, width=width, step=step, encoding='16UC1',
                          is_bigendian=0, data=bytes(64))
    with pytest.raises(conv.ConversionError, match=match):
        conv.image_to_numpy(msg)


def test_conversion_error_is_a_value_error():
    assert issubclass(conv.ConversionError, ValueError)


def test_depth_image_fields_32fc1_and_16uc1():
    depth = np.array([[1.0, 0.0, np.nan], [70.0, 0.0015, -2.0]], np.float32)
    f32 = conv.depth_image_fields(depth, '32FC1')
    assert (f32.encoding, f32.step, f32.is_bigendian) == ('32FC1', 12, 0)
    back = np.frombuffer(f32.data.tobytes(), '<f4').reshape(2, 3)
    np.testing.assert_array_equal(np.isnan(back), [[False, True, True], [False, False, True]])
    assert back[0, 0] == 1.0 and back[1, 0] == 70.0
    f16 = conv.depth_image_fields(depth, '16UC1')
    assert (f16.encoding, f16.step) == ('16UC1', 6)
    mm = np.frombuffer(f16.data.tobytes(), '<u2').reshape(2, 3)
    np.testing.assert_array_equal(mm, [[1000, 0, 0], [0, 2, 0]])  # 70 m does not fit: unknown
    with pytest.raises(conv.ConversionError, match='8UC1'):
        conv.depth_image_fields(depth, '8UC1')


def test_encode_decode_roundtrip_through_sensor_msgs():
    from sensor_msgs.msg import Image
    rgb = np.random.default_rng(2).integers(0, 256, (6, 8, 3)).astype(np.uint8)
    msg = conv.fill_image(Image(), conv.numpy_to_image_fields(rgb, 'rgb8'))
    assert isinstance(msg.data, array.array)
    np.testing.assert_array_equal(conv.color_to_rgb(msg), rgb)
    with pytest.raises(conv.ConversionError, match='does not fit encoding rgb8'):
        conv.numpy_to_image_fields(rgb[..., 0], 'rgb8')
    with pytest.raises(conv.ConversionError, match='dtype float32 does not fit'):
        conv.numpy_to_image_fields(rgb.astype(np.float32), 'rgb8')


def test_rosbags_deserialized_messages_are_accepted():
    from rclpy.serialization import serialize_message
    from rosbags.typesys import get_typestore, Stores
    from sensor_msgs.msg import Image
    ts = get_typestore(Stores.ROS2_KILTED)
    mm = np.arange(20, dtype=np.uint16).reshape(4, 5) * 100
    msg = conv.make_image(conv.numpy_to_image_fields(mm, '16UC1'))
    raw = serialize_message(msg)
    bag_msg = ts.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
    assert isinstance(bag_msg.data, np.ndarray)
    np.testing.assert_allclose(conv.depth_to_meters(bag_msg), mm * 0.001, rtol=1e-6)
    assert isinstance(msg, Image)


def camera_info(k, width=640, height=480, **kw):
    return SimpleNamespace(width=width, height=height, k=k, d=kw.get('d', [0.1, 0, 0, 0, 0]),
                           r=kw.get('r', [0.0] * 9), distortion_model='plumb_bob',
                           binning_x=kw.get('bx', 0), binning_y=kw.get('by', 0))


def test_intrinsics_from_camera_info():
    info = camera_info([500.0, 0, 320.5, 0, 510.0, 240.25, 0, 0, 1])
    k = conv.intrinsics_from_camera_info(info)
    assert k == Intrinsics(500.0, 510.0, 320.5, 240.25, 640, 480)


def test_intrinsics_with_binning_matches_resize():
    info = camera_info([500.0, 0, 320.5, 0, 510.0, 240.25, 0, 0, 1], bx=2, by=2)
    k = conv.intrinsics_from_camera_info(info)
    full = Intrinsics(500.0, 510.0, 320.5, 240.25, 640, 480)
    assert k == full.resized(320, 240)


@pytest.mark.parametrize('k,match', [
    ([0.0] * 9, 'all zero'),
    ([np.nan, 0, 1, 0, 1, 1, 0, 0, 1], 'not finite'),
    ([1.0, 2.0], '9 values'),
    ([-5.0, 0, 1, 0, 5, 1, 0, 0, 1], 'not a valid camera matrix'),
])
def test_bad_camera_info_is_rejected(k, match):
    with pytest.raises(conv.ConversionError, match=match):
        conv.intrinsics_from_camera_info(camera_info(k))


def test_camera_info_fields_fill_p_and_follow_a_resize():
    info = camera_info([500.0, 0, 319.5, 0, 500.0, 239.5, 0, 0, 1])
    k = conv.intrinsics_from_camera_info(info).resized(320, 240)
    fields = conv.camera_info_fields(k, info)
    assert (fields['width'], fields['height']) == (320, 240)
    assert fields['k'] == [250.0, 0.0, 159.5, 0.0, 250.0, 119.5, 0.0, 0.0, 1.0]
    assert fields['p'] == [250.0, 0.0, 159.5, 0.0, 0.0, 250.0, 119.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert fields['r'] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]  # all-zero R replaced by identity
    assert fields['d'] == [0.1, 0, 0, 0, 0]
    msg = conv.make_camera_info(fields)
    assert list(msg.p) == fields['p'] and msg.distortion_model == 'plumb_bob'
    assert conv.intrinsics_from_camera_info(msg) == k


def test_intrinsics_follow_the_camera_info_content():
    # Conversions are cached by content: a changed calibration gives new intrinsics, and a bad
    # one is rejected every time it arrives.
    info = camera_info([500.0, 0, 320.5, 0, 510.0, 240.25, 0, 0, 1])
    first = conv.intrinsics_from_camera_info(info)
    info.k = [400.0, 0, 300.0, 0, 410.0, 200.0, 0, 0, 1]
    assert conv.intrinsics_from_camera_info(info) == Intrinsics(400.0, 410.0, 300.0, 200.0,
                                                                640, 480)
    info.width = 320
    assert conv.intrinsics_from_camera_info(info).width == 320
    assert first == Intrinsics(500.0, 510.0, 320.5, 240.25, 640, 480)
    for _ in range(2):
        with pytest.raises(conv.ConversionError, match='all zero'):
            conv.intrinsics_from_camera_info(camera_info([0.0] * 9))


@pytest.mark.parametrize('data_type', ['bytes', 'array'])
def test_depth_range_limits_are_applied_while_decoding(data_type):
    mm = np.array([[0, 250, 499, 500, 9999, 10000, 10001, 65535]], np.uint16)
    msg = fake_image(mm, '16UC1', data_type=data_type)
    scaled = mm.astype(np.float32) * np.float32(0.001)
    np.testing.assert_array_equal(conv.depth_to_meters(msg), scaled)
    np.testing.assert_array_equal(conv.depth_to_meters(msg, max_depth_m=10.0),
                                  np.where(mm <= 10000, scaled, 0))
    np.testing.assert_array_equal(conv.depth_to_meters(msg, min_depth_m=0.5, max_depth_m=10.0),
                                  np.where((mm >= 500) & (mm <= 10000), scaled, 0))
    # Everything in range: the values are the plain scaled depth.
    np.testing.assert_array_equal(conv.depth_to_meters(msg, max_depth_m=65.535), scaled)
    m = np.array([[0.2, np.nan, 5.0, 12.0]], np.float32)
    np.testing.assert_array_equal(
        conv.depth_to_meters(fake_image(m, '32FC1'), min_depth_m=0.3, max_depth_m=10.0),
        [[0, 0, 5.0, 0]])


def test_buffer_pool_reuses_only_buffers_nothing_else_holds():
    pool = conv.BufferPool(capacity=4)
    a = pool.take(64)
    assert isinstance(a, array.array) and a.typecode == 'B' and len(a) == 64
    b = pool.take(64)
    assert b is not a  # a is still held here
    a_id = id(a)
    view = np.frombuffer(a, np.uint8)
    del a
    assert pool.take(64) is not view.base.obj  # a numpy view keeps it in use
    del view
    c = pool.take(64)
    assert id(c) == a_id  # released: reused
    assert pool.take(32) is not c and len(pool.take(32)) == 32
    # A message that keeps the buffer keeps it out of the pool.
    from sensor_msgs.msg import Image
    msg = conv.new_message(Image)
    msg.data = c
    del c
    assert pool.take(64) is not msg.data


def test_make_image_shares_only_whole_message_buffers():
    pool = conv.BufferPool()
    depth = np.frombuffer(pool.take(6 * 8 * 4), np.float32).reshape(6, 8)
    depth[...] = 1.5
    fields = conv.numpy_to_image_fields(depth, '32FC1')
    shared = conv.make_image(fields, share=True)
    copied = conv.make_image(fields)
    assert shared.data is conv.whole_byte_array(depth) and copied.data is not shared.data
    assert bytes(copied.data) == bytes(shared.data)
    # Part of a buffer, or a plain numpy array, is always copied.
    part = conv.make_image(conv.numpy_to_image_fields(depth[:3], '32FC1'), share=True)
    assert conv.whole_byte_array(depth[:3]) is None and part.data is not shared.data
    assert conv.whole_byte_array(np.zeros(4, np.uint8)) is None
    np.testing.assert_array_equal(conv.image_to_numpy(part), depth[:3])


def test_stamp_to_ns():
    assert conv.stamp_to_ns(SimpleNamespace(sec=3, nanosec=5)) == 3_000_000_005
