"""
Integration tests: the node as a real process, fed and observed by a test node over DDS.

Every test runs in its own ROS domain (see node_harness) with small images, and checks the
outputs against the inputs: measured pixels, filled holes, headers, CameraInfo and the point
cloud geometry.
"""

import signal
import subprocess
import sys

import node_harness as nh
import numpy as np
import pytest
from s2ml_ros.conversions import (image_to_numpy, MASK_COMPLETED, MASK_INVALID,
                                  MASK_MEASURED)
from s2ml_ros.pointcloud import cloud_to_array, unpack_rgb

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return nh.write_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.safetensors')


@pytest.fixture
def graph(tmp_path):
    """Give the test a unique domain; close every node and client it made."""
    made = {'nodes': [], 'clients': []}

    class Graph:

        def __init__(self, domain):
            self.domain = domain
            self.env = nh.ros_environment(domain, tmp_path / 'ros_log')

        def node(self, ros_args, name='node'):
            proc = nh.NodeProcess(ros_args, self.env, tmp_path / f'{name}.log')
            made['nodes'].append(proc)
            return proc

        def client(self, **kwargs):
            c = nh.GraphClient(self.domain, **kwargs)
            made['clients'].append(c)
            return c

    with nh.unique_domain_id() as domain:
        yield Graph(domain)
        for c in made['clients']:
            c.close()
        for proc in made['nodes']:
            proc.stop(signal.SIGKILL, timeout=5)


def frame(rgb, depth, stamp_offset=0.0, depth_encoding='16UC1', color_encoding='rgb8',
          info=True, info_size=None):
    stamp = nh.stamp_now(stamp_offset)
    h, w = depth.shape
    color = rgb if color_encoding == 'rgb8' else np.ascontiguousarray(rgb[..., ::-1])
    out = {'color': nh.image_msg(color, color_encoding, stamp),
           'depth': nh.depth_msg(depth, stamp, depth_encoding)}
    if info:
        iw, ih = info_size or (w, h)
        out['info'] = nh.info_msg(stamp, iw, ih, scale=iw / w)
    return out


def test_outputs_preserve_measurements_fill_holes_and_match_intrinsics(graph, checkpoint):
    node = graph.node(nh.node_args(checkpoint))
    node.wait_ready()
    client = graph.client()
    client.wait_connected()
    rgb, depth, hole = nh.make_scene()
    sent = {}

    def make():
        sent.update(frame(rgb, depth))
        return dict(sent)

    assert nh.publish_until(client, make, lambda: all(
        client.messages(k) for k in ('depth', 'info', 'cloud', 'mask'))), node.log()

    out = client.messages('depth')[-1]
    assert (out.encoding, out.width, out.height) == ('32FC1', nh.WIDTH, nh.HEIGHT)
    assert out.header.frame_id == 'camera_optical'
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in client.messages('depth')}
    assert all(s in stamps for s in [(out.header.stamp.sec, out.header.stamp.nanosec)])
    completed = image_to_numpy(out)
    measured = depth > 0
    # keep_measured: measured pixels come back exactly (16UC1 mm -> m in float32).
    np.testing.assert_array_equal(completed[measured],
                                  (np.rint(depth * 1000).astype(np.uint16)
                                   .astype(np.float32) * np.float32(0.001))[measured])
    # Holes are filled with finite positive depth (untrained network: any value in range).
    assert np.isfinite(completed[hole]).all() and (completed[hole] > 0).all()

    info = client.messages('info')[-1]
    assert info.header == out.header or (info.header.frame_id == out.header.frame_id)
    assert (info.width, info.height) == (nh.WIDTH, nh.HEIGHT)
    assert list(info.k) == [nh.FX, 0.0, nh.CX, 0.0, nh.FY, nh.CY, 0.0, 0.0, 1.0]
    assert list(info.p) == [nh.FX, 0.0, nh.CX, 0.0, 0.0, nh.FY, nh.CY, 0.0, 0.0, 0.0, 1.0, 0.0]

    cloud = [c for c in client.messages('cloud') if c.header.stamp == out.header.stamp]
    assert cloud, 'no cloud with the depth stamp'
    cloud = cloud[-1]
    assert (cloud.height, cloud.width, cloud.is_dense) == (nh.HEIGHT, nh.WIDTH, False)
    assert cloud.header.frame_id == 'camera_optical'
    pts = cloud_to_array(cloud.data, cloud.height, cloud.width, cloud.fields, cloud.point_step)
    u, v = np.meshgrid(np.arange(nh.WIDTH), np.arange(nh.HEIGHT))
    z = completed.astype(np.float64)
    finite = np.isfinite(z)
    np.testing.assert_allclose(pts['z'][finite], z[finite], rtol=1e-6)
    np.testing.assert_allclose(pts['x'][finite], ((u - nh.CX) * z / nh.FX)[finite],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts['y'][finite], ((v - nh.CY) * z / nh.FY)[finite],
                               rtol=1e-5, atol=1e-6)
    assert np.isnan(pts['z'][~finite]).all()
    np.testing.assert_array_equal(unpack_rgb(pts['rgb']), rgb)

    mask = image_to_numpy(client.messages('mask')[-1])
    assert (mask[measured] == MASK_MEASURED).all()
    assert set(np.unique(mask[hole])) <= {MASK_COMPLETED, MASK_INVALID}
    assert node.stop(signal.SIGINT) == 0, node.log()


def test_bgr8_32fc1_and_a_larger_color_image_with_remaps(graph, checkpoint):
    node = graph.node(nh.node_args(
        checkpoint, '-p', 'output_encoding:=16UC1',
        '-r', 'rgb/image:=camera/color/image_raw',
        '-r', 'depth/image:=camera/aligned_depth/image_raw',
        '-r', 'rgb/camera_info:=camera/color/camera_info'))
    node.wait_ready()
    client = graph.client()
    from sensor_msgs.msg import CameraInfo, Image
    pub_c = client.node.create_publisher(Image, 'camera/color/image_raw', 10)
    pub_d = client.node.create_publisher(Image, 'camera/aligned_depth/image_raw', 10)
    pub_i = client.node.create_publisher(CameraInfo, 'camera/color/camera_info', 10)
    assert client.wait_for(lambda: all(p.get_subscription_count() for p in (pub_c, pub_d, pub_i)))
    rgb, depth, hole = nh.make_scene()
    big_rgb = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)  # color at 128x96

    def make():
        f = frame(big_rgb, depth, depth_encoding='32FC1', color_encoding='bgr8',
                  info_size=(128, 96))
        pub_i.publish(f['info'])
        pub_c.publish(f['color'])
        pub_d.publish(f['depth'])
        return {}

    assert nh.publish_until(client, make, lambda: client.messages('depth') and client.messages(
        'cloud') and client.messages('info')), node.log()
    out = client.messages('depth')[-1]
    assert (out.encoding, out.width, out.height) == ('16UC1', nh.WIDTH, nh.HEIGHT)
    mm = image_to_numpy(out)
    measured = depth > 0
    np.testing.assert_array_equal(mm[measured], np.rint(depth[measured] * 1000))
    assert (mm[hole] > 0).all()
    info = client.messages('info')[-1]
    # The 128x96 calibration is rescaled to the 64x48 output.
    assert (info.width, info.height) == (nh.WIDTH, nh.HEIGHT)
    np.testing.assert_allclose(info.k, [nh.FX, 0, nh.CX, 0, nh.FY, nh.CY, 0, 0, 1], atol=1e-9)
    cloud = client.messages('cloud')[-1]
    pts = cloud_to_array(cloud.data, cloud.height, cloud.width, cloud.fields, cloud.point_step)
    # Colors were downsampled 2x2 -> 1 (area average of equal pixels): exact.
    np.testing.assert_array_equal(unpack_rgb(pts['rgb']), rgb)
    assert node.stop(signal.SIGTERM) == 0, node.log()


def test_live_parameters_and_read_only_ones(graph, checkpoint):
    node = graph.node(nh.node_args(checkpoint))
    node.wait_ready()
    client = graph.client()
    client.wait_connected()
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    params = AsyncParameterClient(client.node, 's2ml_node')
    assert params.wait_for_services(timeout_sec=20.0)

    def set_params(*pairs):
        future = params.set_parameters([Parameter(n, value=v) for n, v in pairs])
        assert client.wait_for(future.done, 20.0)
        return future.result().results

    results = set_params(('max_depth_m', 1.9025), ('publish_cloud', False))
    assert all(r.successful for r in results), results
    bad = set_params(('checkpoint', '/elsewhere.safetensors'))
    assert not bad[0].successful and 'read-only' in bad[0].reason
    bad = set_params(('max_depth_m', -1.0))
    assert not bad[0].successful and 'max_depth_m' in bad[0].reason

    rgb, depth, hole = nh.make_scene()
    client.clear()
    assert nh.publish_until(client, lambda: frame(rgb, depth),
                            lambda: len(client.messages('depth')) >= 2), node.log()
    completed = image_to_numpy(client.messages('depth')[-1])
    # Input beyond 1.9025 m is ignored, output beyond it is NaN; the test checkpoint fills holes
    # with 2.0 m, so exactly the measured pixels up to 1.9025 m remain.
    np.testing.assert_array_equal(np.isfinite(completed), (depth > 0) & (depth <= 1.9025))
    assert not client.messages('cloud')  # publish_cloud false: no cloud

    assert all(r.successful for r in set_params(('keep_measured', False), ('max_depth_m', 10.0),
                                                ('flip_average', True)))
    client.clear()
    assert nh.publish_until(client, lambda: frame(rgb, depth),
                            lambda: len(client.messages('mask')) >= 2), node.log()
    mask = image_to_numpy(client.messages('mask')[-1])
    completed = image_to_numpy(client.messages('depth')[-1])
    assert not (mask == MASK_MEASURED).any()  # keep_measured false: the network everywhere
    # flip_average on: the test network is mirror-symmetric, so the average changes nothing.
    np.testing.assert_allclose(completed[depth > 0], depth[depth > 0] + 2.0, atol=2e-3)
    assert node.stop() == 0, node.log()


def test_nothing_is_computed_without_subscribers(graph, checkpoint):
    node = graph.node(nh.node_args(checkpoint))
    node.wait_ready()
    client = graph.client(subscribe_outputs=False)
    client.wait_connected(outputs=False)
    rgb, depth, _ = nh.make_scene()

    def skipped():
        d = client.diagnostics()
        return d and int(d['skipped (no subscribers)']) >= 3

    assert nh.publish_until(client, lambda: frame(rgb, depth), skipped), node.log()
    d = client.diagnostics()
    assert d['frames published'] == '0'
    assert d['model variant'] == 'tiny' and d['device'] == 'cpu'
    for key in ('input rate depth (Hz)', 'time inference median (ms)', 'input age median (ms)',
                'sets dropped (stale, replaced before processing)', 'checkpoint sha256'):
        assert key in d
    assert node.stop() == 0


def test_console_script_with_params_file_and_clean_signals(graph, checkpoint, tmp_path):
    script = nh.Path(sys.executable).with_name('s2ml_node')
    if not script.exists():
        pytest.skip(f'console script not installed at {script}')
    for sig in (signal.SIGINT, signal.SIGTERM):
        log = open(tmp_path / f'script_{sig}.log', 'w')
        proc = subprocess.Popen(
            [str(script), '--ros-args', '--params-file', str(nh.REPO / 'config' / 's2ml.yaml'),
             '-p', f'checkpoint:={checkpoint}', '-p', 'device:=cpu'],
            cwd=nh.REPO, env=graph.env, stdout=log, stderr=subprocess.STDOUT)
        holder = nh.NodeProcess.__new__(nh.NodeProcess)
        holder.proc, holder.log_path, holder._log = proc, tmp_path / f'script_{sig}.log', log
        holder.wait_ready()
        assert holder.stop(sig) == 0, holder.log()


def test_incompatible_qos_is_explained(graph, checkpoint):
    node = graph.node(nh.node_args(checkpoint, '-p', 'input_qos_reliability:=reliable',
                                   '-p', 'output_qos_reliability:=best_effort'))
    node.wait_ready()
    client = graph.client()  # publishes and subscribes reliable
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    client.node.create_publisher(Image, 'depth/image',
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    assert client.wait_for(lambda: 'a publisher offers a QoS incompatible' in node.log() and
                           'a subscriber requests a QoS this publisher' in node.log(), 30.0), \
        node.log()
    assert 'input_qos_reliability:=best_effort' in node.log()
    assert node.stop() == 0


@pytest.mark.parametrize('args,message', [
    (['-p', 'checkpoint:=/does/not/exist.safetensors'], "checkpoint file '/does/not/exist"),
    (['-p', 'precision:=fp8'], "precision='fp8' is not one of fp32, fp16, bf16"),
    (['-p', 'sync_queue_size:=0'], 'sync_queue_size'),
])
def test_bad_start_fails_with_a_clear_message(graph, checkpoint, args, message):
    full = ['-p', f'checkpoint:={checkpoint}', '-p', 'device:=cpu', *args]
    proc = graph.node(full)
    assert proc.proc.wait(60) == 1
    assert message in proc.log(), proc.log()
