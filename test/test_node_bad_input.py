"""
Bad input: each kind is sent to a running node, which must warn, count, drop and keep working.

Every test ends by sending good frames and waiting for output, so "the node never dies on a bad
message" is checked each time. Each test has its own node process and ROS domain.
"""

import signal
import time

import node_harness as nh
import numpy as np
import pytest

from s2ml_ros.conversions import image_to_numpy, MASK_COMPLETED, MASK_MEASURED

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return nh.write_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.safetensors')


@pytest.fixture
def running(tmp_path, checkpoint):
    """Start a node and a connected client in a fresh domain; yield (node, client)."""
    with nh.unique_domain_id() as domain:
        env = nh.ros_environment(domain, tmp_path / 'ros_log')
        node = nh.NodeProcess(nh.node_args(checkpoint), env, tmp_path / 'node.log')
        client = None
        try:
            node.wait_ready()
            client = nh.GraphClient(domain)
            client.wait_connected()
            yield node, client
        finally:
            if client is not None:
                client.close()
            code = node.stop(signal.SIGINT)
        assert code == 0, node.log()


SCENE = nh.make_scene()


def good_frame(offset=0.0, info=True):
    rgb, depth, _ = SCENE
    stamp = nh.stamp_now(offset)
    out = {'color': nh.image_msg(rgb, 'rgb8', stamp), 'depth': nh.depth_msg(depth, stamp)}
    if info:
        out['info'] = nh.info_msg(stamp)
    return out


def assert_recovers(node, client):
    """Good frames after the bad ones must produce output again."""
    before = len(client.messages('depth'))
    assert nh.publish_until(client, good_frame,
                            lambda: len(client.messages('depth')) > before), node.log()
    assert node.alive()


def diag_at_least(client, key, value):
    return lambda: int(client.diagnostics().get(key, -1)) >= value


def send_bad(client, make, key, timeout=20.0):
    """Publish bad sets until the diagnostics counter ``key`` moves."""
    assert nh.publish_until(client, make, diag_at_least(client, key, 1), timeout), \
        client.diagnostics()


def test_unknown_encoding_is_rejected_with_the_accepted_set(running):
    node, client = running

    def bad():
        f = good_frame()
        f['depth'].encoding = 'yuv422'
        return f

    send_bad(client, bad, 'bad messages')
    assert client.wait_for(lambda: "unsupported encoding 'yuv422'; accepted: 16UC1, 32FC1"
                           in node.log(), 5.0), node.log()
    assert not client.messages('depth')
    assert_recovers(node, client)


def test_truncated_data_buffer(running):
    node, client = running

    def bad():
        f = good_frame()
        f['depth'].data = f['depth'].data[:100]
        return f

    send_bad(client, bad, 'bad messages')
    assert client.wait_for(lambda: 'image data is truncated: 100 bytes' in node.log(), 5.0)
    assert not client.messages('depth')
    assert_recovers(node, client)


@pytest.mark.parametrize('field,value,text', [
    ('step', 10, 'step 10 is smaller than width 64'),
    ('height', 0, 'image size 64x0 is invalid'),
    ('width', 100, 'step 128 is smaller than width 100'),
])
def test_inconsistent_width_height_step(running, field, value, text):
    node, client = running

    def bad():
        f = good_frame()
        setattr(f['depth'], field, value)
        return f

    send_bad(client, bad, 'bad messages')
    assert client.wait_for(lambda: text in node.log(), 5.0), node.log()
    assert_recovers(node, client)


def test_nan_and_inf_in_32fc1_are_holes(running):
    node, client = running
    rgb, depth, hole = SCENE
    bad_px = np.zeros_like(hole)
    bad_px[40:44, 50:60] = True

    def make():
        stamp = nh.stamp_now()
        d = np.where(hole, np.nan, depth).astype(np.float32)
        d[40:42, 50:60] = np.inf
        d[42:44, 50:60] = -np.inf
        return {'color': nh.image_msg(rgb, 'rgb8', stamp), 'info': nh.info_msg(stamp),
                'depth': nh.image_msg(d, '32FC1', stamp)}

    assert nh.publish_until(client, make, lambda: client.messages('depth') and client.messages(
        'mask')), node.log()
    out = image_to_numpy(client.messages('depth')[-1])
    mask = image_to_numpy(client.messages('mask')[-1])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[hole | bad_px], 2.0, atol=1e-3)  # filled by the test model
    good = ~(hole | bad_px)
    np.testing.assert_array_equal(out[good], depth[good])
    assert (mask[hole | bad_px] == MASK_COMPLETED).all() and (mask[good] == MASK_MEASURED).all()
    assert_recovers(node, client)


def test_all_invalid_depth_still_publishes(running):
    node, client = running
    rgb, depth, _ = SCENE

    def make():
        stamp = nh.stamp_now()
        return {'color': nh.image_msg(rgb, 'rgb8', stamp), 'info': nh.info_msg(stamp),
                'depth': nh.depth_msg(np.zeros_like(depth), stamp)}

    assert nh.publish_until(client, make, lambda: client.messages('mask')), node.log()
    mask = image_to_numpy(client.messages('mask')[-1])
    assert not (mask == MASK_MEASURED).any()
    assert client.wait_for(lambda: client.diagnostics().get('measured fraction') == '0.000', 5.0)
    assert_recovers(node, client)


def test_missing_camera_info_publishes_depth_without_cloud(running):
    node, client = running
    assert nh.publish_until(client, lambda: good_frame(info=False),
                            lambda: len(client.messages('depth')) >= 2), node.log()
    assert not client.messages('cloud') and not client.messages('info')
    assert client.wait_for(lambda: 'no CameraInfo received' in node.log(), 5.0), node.log()
    assert client.wait_for(diag_at_least(client, 'frames without camera_info', 1), 5.0)
    # Once a CameraInfo arrives the cloud follows.
    assert nh.publish_until(client, good_frame, lambda: client.messages('cloud')), node.log()


def test_color_and_depth_stamps_never_matching_warns_about_sync(running):
    node, client = running
    rgb, depth, _ = SCENE

    def make():
        stamp = nh.stamp_now()
        # Color 3.3 s ahead: farther than the sync queues reach (10 messages at 10 Hz).
        return {'color': nh.image_msg(rgb, 'rgb8', nh.stamp_now(3.3)),
                'depth': nh.depth_msg(depth, stamp), 'info': nh.info_msg(stamp)}

    assert nh.publish_until(client, make, lambda: 'never synchronized' in node.log(), 15.0), \
        node.log()
    assert 'color - depth = 3' in node.log()  # the ~3300 ms difference is reported
    assert not client.messages('depth')
    assert client.wait_for(lambda: client.diagnostics().get('_level') == 1, 5.0)
    assert_recovers(node, client)


def test_out_of_order_stamps_are_dropped_and_counted(running):
    node, client = running
    assert nh.publish_until(client, good_frame, lambda: client.messages('depth')), node.log()
    time.sleep(0.5)
    newest = max(nh_stamp(m) for m in client.messages('depth'))
    for i in range(5):
        client.publish(**good_frame(newest / 1e9 - time.time() - 0.2 - 0.01 * i))
        time.sleep(0.05)
    assert client.wait_for(diag_at_least(client, 'messages out of order', 2), 10.0), \
        client.diagnostics()
    assert 'not newer than the last synchronized set' in node.log()
    time.sleep(0.5)
    # Nothing older than the last synchronized set came out.
    assert max(nh_stamp(m) for m in client.messages('depth')) == newest
    assert_recovers(node, client)


def nh_stamp(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
