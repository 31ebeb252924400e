"""End-to-end tests of the offline bag evaluator on small synthetic realsense-ros bags."""

import json
from pathlib import Path

from bag_helpers import (COLOR, DEPTH, DEPTH_INFO, GT, image_msg, recompress_mcap, TS,
                         write_bag)
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from s2ml_ros import bag_eval
from s2ml_ros.bag_io import BagEvalError
from s2ml_ros.model import build_s2ml, save_checkpoint
from s2ml_ros.model.checkpoint import file_sha256
from s2ml_ros.offline_eval import OutputError
from s2ml_ros.params import NodeParams

W, H = 48, 32
BASELINES = ('nearest', 'telea')
NEW = ('/camera/camera/depth_completed/image', '/camera/camera/depth_completed/camera_info',
       '/camera/camera/points')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.safetensors'
    save_checkpoint(str(path), build_s2ml('tiny'), provenance={'note': 'random init, tests'})
    return str(path)


@pytest.fixture(scope='module')
def predictor(checkpoint):
    return bag_eval.load_predictor(checkpoint, 'cpu', 'fp32')


def _evaluate(bag, out, predictor, **kwargs):
    kwargs.setdefault('baselines', BASELINES)
    kwargs.setdefault('progress', False)
    return bag_eval.evaluate_bag(str(bag), str(out), predictor, NodeParams(device='cpu'),
                                 **kwargs)


def _only_final_outputs(folder: Path, names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def _read(path):
    with AnyReader([Path(path)], default_typestore=TS) as reader:
        topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        raws = {}
        for conn, t, raw in reader.messages():
            raws.setdefault(conn.topic, []).append((t, bytes(raw)))
    return topics, raws


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_hidden_pixel_evaluation_writes_bag_and_reports(tmp_path, predictor, checkpoint,
                                                        storage):
    bag = tmp_path / 'walk'
    write_bag(bag, n=4, storage=storage, width=W, height=H, extra_topics=['/tf_static'])
    out = tmp_path / 'out'
    report = _evaluate(bag, out, predictor)
    _only_final_outputs(out, ['walk_completed', 'report.json', 'report.html'])

    # The output bag: every original message unchanged, three new topics, one per frame.
    topics_in, raws_in = _read(bag)
    topics_out, raws_out = _read(out / 'walk_completed')
    assert next((out / 'walk_completed').glob('*.mcap' if storage == 'mcap' else '*.db3'))
    for topic in topics_in:
        assert topics_out[topic] == topics_in[topic]
        assert raws_out[topic] == raws_in[topic]
    assert topics_out[NEW[0]] == ('sensor_msgs/msg/Image', 4)
    assert topics_out[NEW[1]] == ('sensor_msgs/msg/CameraInfo', 4)
    assert topics_out[NEW[2]] == ('sensor_msgs/msg/PointCloud2', 4)
    with AnyReader([out / 'walk_completed'], default_typestore=TS) as reader:
        conns = [c for c in reader.connections if c.topic in NEW]
        depth_stamps = [reader.deserialize(r, c.msgtype).header.stamp.nanosec
                        for c, _, r in reader.messages(connections=[
                            c for c in reader.connections if c.topic == DEPTH])]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            assert msg.header.frame_id == 'camera_color_optical_frame'
            assert msg.header.stamp.nanosec in depth_stamps
            if conn.topic == NEW[0]:
                assert (msg.encoding, msg.height, msg.width) == ('32FC1', H, W)
            if conn.topic == NEW[2]:
                assert (msg.height, msg.width) == (H, W)

    # The JSON report.
    on_disk = json.loads((out / 'report.json').read_text())
    assert on_disk['frame_count'] == report['frame_count'] == 4
    assert on_disk['protocol'] == 'hidden_pixels'
    assert on_disk['model']['variant'] == 'tiny'
    assert on_disk['model']['sha256'] == file_sha256(checkpoint)
    assert on_disk['model']['config']['variant'] == 'tiny'
    assert len(on_disk['input']['sha256']) == 64 and on_disk['input']['storage'] == storage
    assert on_disk['input']['topics'] == {'color': COLOR, 'depth': DEPTH,
                                          'camera_info': DEPTH_INFO, 'ground_truth': None}
    assert on_disk['config']['node_params']['sync_slop_s'] == 0.02
    assert list(on_disk['overall']) == ['s2ml', *BASELINES]
    for name, m in on_disk['overall'].items():
        assert m['pixels'] > 0 and m['images'] == 4, name
        assert m['latency_ms']['count'] == 4 and m['latency_ms']['mean'] > 0
        assert 0 < m['coverage'] <= 1
    assert on_disk['overall']['nearest']['coverage'] == 1.0
    assert on_disk['overall']['nearest']['rmse'] < 1.0
    assert len(on_disk['frames']) == 4
    frame = on_disk['frames'][0]
    assert frame['scored_hole_pixels'] > 0
    assert frame['input_hole_fraction'] > frame['hole_fraction'] > 0
    assert set(frame['methods']) == {'s2ml', *BASELINES}
    assert set(on_disk['error_by_distance']) == {'s2ml', *BASELINES}
    assert on_disk['pairing']['matched'] == 4
    assert on_disk['output']['messages_added'] == dict.fromkeys(NEW, 4)
    html = (out / 'report.html').read_text()
    assert html.count('data:image/png;base64,') == 4 and 'nearest' in html


def test_ground_truth_topic_is_used(tmp_path, predictor):
    bag = tmp_path / 'gt.mcap'
    folder = tmp_path / 'gtbag'
    write_bag(folder, n=3, width=W, height=H, with_gt=True)
    next(folder.glob('*.mcap')).rename(bag)  # a bare .mcap file, no metadata.yaml
    report = _evaluate(bag, tmp_path / 'out', predictor, baselines=('nearest',),
                       write_bag=False, html_report=False)
    assert report['protocol'] == 'ground_truth'
    assert report['input']['topics']['ground_truth'] == GT
    _only_final_outputs(tmp_path / 'out', ['report.json'])
    # Ground truth is exact, so the measured pixels score zero error and the holes do not.
    nearest = report['overall']['nearest']
    assert nearest['all_mae'] < nearest['mae']


@pytest.mark.parametrize('kind', ['humble_sqlite3', 'zstd_mcap_from_another_tool'])
def test_bags_without_type_hashes_are_copied(tmp_path, predictor, kind):
    bag = tmp_path / 'bag'
    if kind == 'humble_sqlite3':
        write_bag(bag, n=2, storage='sqlite3', width=W, height=H, version=8)
    else:
        write_bag(tmp_path / 'src', n=2, width=W, height=H)
        bag = recompress_mcap(tmp_path / 'src', tmp_path / 'other.mcap')
    report = _evaluate(bag, tmp_path / 'out', predictor, baselines=(), html_report=False)
    assert report['frame_count'] == 2
    completed = tmp_path / 'out' / report['output']['bag']
    topics, _ = _read(completed)
    assert topics[COLOR] == ('sensor_msgs/msg/Image', 2) and topics[NEW[0]][1] == 2


def test_params_file_and_topic_overrides_through_the_cli(tmp_path, checkpoint, capsys):
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, width=W, height=H, with_gt=True)
    params = tmp_path / 's2ml.yaml'
    params.write_text('/**:\n  ros__parameters:\n    exact_sync: true\n'
                      '    output_encoding: 16UC1\n    publish_cloud: false\n')
    out = tmp_path / 'out'
    code = bag_eval.main([str(bag), '-o', str(out), '--checkpoint', checkpoint, '--device', 'cpu',
                          '--params-file', str(params), '--no-gt', '--baselines', 'none', '-q',
                          '--info-topic', '/camera/camera/color/camera_info'])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / 'report.json').read_text())
    assert report['config']['node_params']['exact_sync'] is True
    assert report['protocol'] == 'hidden_pixels'
    assert report['input']['topics']['camera_info'] == '/camera/camera/color/camera_info'
    assert list(report['overall']) == ['s2ml']
    topics, _ = _read(out / 'bag_completed')
    assert NEW[2] not in topics and topics[NEW[0]][1] == 2
    assert 'wrote' in capsys.readouterr().out


def _fails(argv, capsys, match):
    code = bag_eval.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in err, err
    return err


def test_bad_inputs_exit_2_and_leave_no_output(tmp_path, checkpoint, capsys):
    common = ['--checkpoint', checkpoint, '--device', 'cpu', '-q', '--baselines', 'nearest']
    out = tmp_path / 'out'
    # Missing bag.
    _fails([str(tmp_path / 'nope'), '-o', str(out)] + common, capsys, 'does not exist')
    # Missing topic.
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, width=W, height=H)
    _fails([str(bag), '-o', str(out), '--depth-topic', '/missing'] + common, capsys,
           "'/missing' is not in the bag")
    # No pairs: the color stamps are 0.5 s off.
    shifted = tmp_path / 'shifted'
    stamps = write_bag(tmp_path / 'ref', n=2, width=W, height=H)['stamps']
    write_bag(shifted, n=2, width=W, height=H, overrides={COLOR: {
        i: image_msg(np.zeros((H, W, 3), np.uint8), 'rgb8', s + 500_000_000)
        for i, s in enumerate(stamps)}})
    _fails([str(shifted), '-o', str(out)] + common, capsys, 'no color/depth pair matched')
    # Every depth message has a bad encoding: counted, then no pairs.
    bad = tmp_path / 'bad'
    write_bag(bad, n=2, width=W, height=H, overrides={DEPTH: {
        i: image_msg(np.zeros((H, W), np.uint8), 'mono8', s) for i, s in enumerate(stamps)}})
    _fails([str(bad), '-o', str(out), '--depth-topic', DEPTH] + common, capsys,
           "skipped for bad encoding: {'" + DEPTH + "': 2}")
    # Truncated and unreadable bags.
    cut = tmp_path / 'cut.mcap'
    data = next(bag.glob('*.mcap')).read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    _fails([str(cut), '-o', str(out)] + common, capsys, 'cut.mcap')
    junk = tmp_path / 'junk.db3'
    junk.write_bytes(b'SQLite format 3\x00' + b'\x01' * 200)
    _fails([str(junk), '-o', str(out)] + common, capsys, 'junk.db3')
    # Missing checkpoint and unknown baseline.
    _fails([str(bag), '-o', str(out), '--checkpoint', str(tmp_path / 'x.safetensors')],
           capsys, 'checkpoint file does not exist')
    _fails([str(bag), '-o', str(out), '--baselines', 'magic'] + common[:-2], capsys,
           "unknown baseline(s) ['magic']")
    assert not out.exists() or list(out.iterdir()) == []


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, checkpoint, capsys):
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, width=W, height=H)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'report.json').write_text('{"old": true}')
    common = ['--checkpoint', checkpoint, '--device', 'cpu', '-q', '--baselines', 'none']
    _fails([str(bag), '-o', str(out)] + common, capsys, 'report.json already exist')
    assert json.loads((out / 'report.json').read_text()) == {'old': True}
    assert bag_eval.main([str(bag), '-o', str(out), '--overwrite'] + common) == 0
    assert json.loads((out / 'report.json').read_text())['frame_count'] == 2
    _only_final_outputs(out, ['bag_completed', 'report.json', 'report.html'])


def test_a_failure_mid_run_removes_the_partial_outputs(tmp_path, predictor):
    bag = tmp_path / 'bag'
    write_bag(bag, n=3, width=W, height=H)

    class Exploding:
        info = predictor.info
        keep_measured = True
        calls = 0

        def predict(self, rgb, depth):
            Exploding.calls += 1
            if Exploding.calls == 3:
                raise RuntimeError('device lost')
            return predictor.predict(rgb, depth)

    out = tmp_path / 'out'
    with pytest.raises(RuntimeError, match='device lost'):
        _evaluate(bag, out, Exploding(), baselines=())
    assert list(out.iterdir()) == []


def test_evaluating_an_output_bag_again_needs_another_namespace(tmp_path, predictor):
    bag = tmp_path / 'bag'
    write_bag(bag, n=2, width=W, height=H)
    _evaluate(bag, tmp_path / 'o1', predictor, baselines=(), html_report=False)
    again = tmp_path / 'o1' / 'bag_completed'
    with pytest.raises(BagEvalError, match='already has the output topic'):
        _evaluate(again, tmp_path / 'o2', predictor, baselines=(), html_report=False)
    report = _evaluate(again, tmp_path / 'o3', predictor, baselines=(), html_report=False,
                       output_namespace='/second')
    assert report['input']['topics']['depth'] == DEPTH  # outputs are never taken as inputs
    assert report['output']['topics']['depth'] == '/second/depth_completed/image'


def test_output_error_types():
    assert issubclass(BagEvalError, ValueError) and issubclass(OutputError, ValueError)


def test_params_file_formats_and_errors(tmp_path):
    flat = tmp_path / 'flat.yaml'
    flat.write_text('sync_slop_s: 0.05\n')
    assert bag_eval.load_params_file(str(flat)) == {'sync_slop_s': 0.05}
    node = tmp_path / 'node.yaml'
    node.write_text('s2ml_node:\n  ros__parameters:\n    max_depth_m: 4.0\n')
    assert bag_eval.load_params_file(str(node)) == {'max_depth_m': 4.0}
    with pytest.raises(BagEvalError, match='cannot read'):
        bag_eval.load_params_file(str(tmp_path / 'missing.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('- a list\n')
    with pytest.raises(BagEvalError, match='mapping'):
        bag_eval.load_params_file(str(bad))
