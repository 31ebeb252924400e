"""Tests of rosbag2 reading, topic detection, stamp pairing and writing (rosbags, no ROS)."""

from pathlib import Path

from bag_helpers import (COLOR, COLOR_INFO, DEPTH, DEPTH_INFO, GT, image_msg, TS, write_bag)
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from s2ml_ros import conversions as conv
from s2ml_ros.bag_io import (BagEvalError, BagReader, BagWriter, detect_topics, iter_framesets,
                             MessageFactory, PairingStats)
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.params import NodeParams
from s2ml_ros.pointcloud import build_cloud


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_detects_realsense_topics_and_pairs_every_frame(tmp_path, storage):
    bag = tmp_path / 'bag'
    written = write_bag(bag, n=4, storage=storage, extra_topics=['/chatter'])
    with BagReader(str(bag)) as reader:
        assert reader.storage == storage
        sel = detect_topics(reader)
        assert (sel.color, sel.depth, sel.camera_info, sel.ground_truth) == (
            COLOR, DEPTH, DEPTH_INFO, None)
        stats = PairingStats()
        sets = list(iter_framesets(reader, sel, NodeParams(), stats))
    assert [s.index for s in sets] == [0, 1, 2, 3]
    assert [s.stamp_ns for s in sets] == written['stamps']
    assert stats.matched == 4 and not stats.unmatched and stats.without_info == 0
    for s, raw in zip(sets, written['raw']):
        np.testing.assert_allclose(conv.depth_to_meters(s.depth), raw, atol=5e-4)
        # The info of a frame is recorded after its images: the newest earlier one is used.
        assert conv.intrinsics_from_camera_info(s.info).fx == pytest.approx(written['k'][0])
        assert s.color.encoding == 'rgb8'


def test_single_mcap_file_and_ground_truth_topic(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, n=3, with_gt=True)
    mcap = next(bag.glob('*.mcap'))
    with BagReader(str(mcap)) as reader:
        sel = detect_topics(reader)
        assert sel.ground_truth == GT and sel.depth == DEPTH
        sets = list(iter_framesets(reader, sel, NodeParams(), PairingStats()))
    assert len(sets) == 3 and all(s.ground_truth is not None for s in sets)
    assert sets[0].ground_truth.encoding == '32FC1'


def test_overrides_and_missing_topics(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, with_gt=True)
    with BagReader(str(bag)) as reader:
        sel = detect_topics(reader, camera_info=COLOR_INFO, ground_truth='')
        assert sel.camera_info == COLOR_INFO and sel.ground_truth is None
        with pytest.raises(BagEvalError, match="depth topic '/nope' is not in the bag"):
            detect_topics(reader, depth='/nope')
        with pytest.raises(BagEvalError, match='has type sensor_msgs/msg/CameraInfo'):
            detect_topics(reader, color=COLOR_INFO)


def test_bag_without_depth_or_info_is_a_clear_error(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, skip={DEPTH: [0, 1]})
    with BagReader(str(bag)) as reader:
        with pytest.raises(BagEvalError, match='no depth image topic'):
            detect_topics(reader)
    bag2 = tmp_path / 'bag2'
    write_bag(bag2, n=2, skip={COLOR_INFO: [0, 1], DEPTH_INFO: [0, 1]})
    with BagReader(str(bag2)) as reader:
        with pytest.raises(BagEvalError, match='no sensor_msgs/msg/CameraInfo'):
            detect_topics(reader)


def test_ambiguous_depth_topics_ask_for_a_flag(tmp_path):
    bag = tmp_path / 'bag'
    written = write_bag(bag, n=1)
    second = image_msg(np.zeros((30, 40), np.uint16), '16UC1', written['stamps'][0])
    for name, extra in (('pref', '/other/depth/image_raw'),
                        ('two', '/cam2/aligned_depth_to_color/image_raw')):
        out = BagWriter(str(tmp_path / name), 'mcap')
        with BagReader(str(bag)) as reader:
            for conn, t, raw in reader.messages(()):
                out.copy(conn, t, raw)
        out.write(extra, 'sensor_msgs/msg/Image', 1, second)
        out.close()
    with BagReader(str(tmp_path / 'pref')) as reader:
        assert detect_topics(reader).depth == DEPTH  # aligned depth is preferred
    with BagReader(str(tmp_path / 'two')) as reader:
        with pytest.raises(BagEvalError, match='--depth-topic'):
            detect_topics(reader)


def test_skips_bad_encodings_and_undecodable_messages(tmp_path):
    bag = tmp_path / 'bag'
    written = write_bag(bag, n=4, overrides={
        DEPTH: {1: image_msg(np.zeros((30, 40), np.uint8), 'mono8', 0)},
        COLOR: {2: b'\x00\x01\x00\x00garbage'}})
    with BagReader(str(bag)) as reader:
        sel = detect_topics(reader)
        stats = PairingStats()
        sets = list(iter_framesets(reader, sel, NodeParams(), stats))
    assert [s.stamp_ns for s in sets] == [written['stamps'][0], written['stamps'][3]]
    assert stats.bad_encoding[DEPTH] == 1 and stats.undecodable[COLOR] == 1
    assert stats.unmatched[COLOR] == 1 and stats.unmatched[DEPTH] == 1


def test_stamps_too_far_apart_do_not_pair(tmp_path):
    bag = tmp_path / 'bag'
    written = write_bag(bag, n=3)
    late = image_msg(np.zeros((30, 40, 3), np.uint8), 'rgb8', written['stamps'][1] + 15_000_000)
    bag2 = tmp_path / 'bag2'
    write_bag(bag2, n=3, overrides={COLOR: {1: late}})
    with BagReader(str(bag2)) as reader:
        sel = detect_topics(reader)
        exact = list(iter_framesets(reader, sel, NodeParams(exact_sync=True), PairingStats()))
        loose = list(iter_framesets(reader, sel, NodeParams(sync_slop_s=0.02), PairingStats()))
    assert len(exact) == 2 and len(loose) == 3


def test_missing_and_corrupted_bags(tmp_path):
    with pytest.raises(BagEvalError, match='does not exist'):
        BagReader(str(tmp_path / 'nope'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(BagEvalError, match='no .mcap or .db3'):
        BagReader(str(empty))
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'\x89MCAP0\r\n' + b'\x00' * 64)
    with pytest.raises(BagEvalError, match='junk.mcap'):
        with BagReader(str(junk)):
            pass


def test_truncated_mcap_is_an_error(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, n=3)
    mcap = next(bag.glob('*.mcap'))
    cut = tmp_path / 'cut.mcap'
    cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagEvalError, match='cut.mcap'):
        with BagReader(str(cut)) as reader:
            sel = detect_topics(reader)
            list(iter_framesets(reader, sel, NodeParams(), PairingStats()))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_writer_copies_originals_and_adds_new_topics(tmp_path, storage):
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, storage=storage)
    out_path = tmp_path / 'out'
    factory = MessageFactory()
    intr = Intrinsics(36.0, 36.0, 19.5, 14.5, 40, 30)
    with BagReader(str(bag)) as reader:
        writer = BagWriter(str(out_path), storage)
        sel = detect_topics(reader)
        for fs in iter_framesets(reader, sel, NodeParams(), PairingStats(),
                                 on_message=writer.copy):
            depth = np.full((30, 40), 2.0, np.float32)
            writer.write('/s2ml/depth_completed/image', 'sensor_msgs/msg/Image', fs.log_time_ns,
                         factory.image(conv.depth_image_fields(depth), fs.depth.header))
            writer.write('/s2ml/depth_completed/camera_info', 'sensor_msgs/msg/CameraInfo',
                         fs.log_time_ns, factory.camera_info(
                             conv.camera_info_fields(intr, fs.info), fs.depth.header))
            writer.write('/s2ml/points', 'sensor_msgs/msg/PointCloud2', fs.log_time_ns,
                         factory.point_cloud(build_cloud(depth, intr, conv.color_to_rgb(
                             fs.color)), fs.depth.header))
        writer.close()
    assert (out_path / 'metadata.yaml').is_file()
    with AnyReader([Path(out_path)], default_typestore=TS) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts[COLOR] == 2 and counts[DEPTH] == 2 and counts[DEPTH_INFO] == 2
        assert counts['/s2ml/depth_completed/image'] == 2 and counts['/s2ml/points'] == 2
        qos = [c.ext.offered_qos_profiles for c in reader.connections if c.topic == COLOR][0]
        assert qos and qos[0].depth == 1
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == '/s2ml/depth_completed/image':
                assert msg.encoding == '32FC1'
                np.testing.assert_array_equal(conv.depth_to_meters(msg), 2.0)
                assert msg.header.frame_id == 'camera_color_optical_frame'
            elif conn.topic == '/s2ml/points':
                assert (msg.height, msg.width, msg.point_step) == (30, 40, 16)
                assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'rgb']
            elif conn.topic == '/s2ml/depth_completed/camera_info':
                assert conv.intrinsics_from_camera_info(msg) == intr
