"""The camera-less demo end to end: simulated camera process -> node process -> recorder."""

import json
import subprocess
import sys

import node_harness as nh
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_writes_previews_and_summary(tmp_path):
    out = tmp_path / 'demo'
    with nh.unique_domain_id() as domain:
        env = nh.ros_environment(domain, tmp_path / 'ros_log')
        proc = subprocess.run(
            [sys.executable, '-m', 's2ml_ros.demo', '--out', str(out), '--duration', '2',
             '--width', '160', '--height', '120', '--rate', '10', '--num-frames', '5',
             '--device', 'cpu', '--domain-id', str(domain)],
            cwd=nh.REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'output rate' in proc.stdout and 'latency' in proc.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['exit_codes'] == {'sim_camera': 0, 'node': 0}
    assert summary['outputs_received'] > 0 and summary['output_rate_hz'] > 0
    assert summary['latency_ms']['median'] > 0
    # Every completed frame is compared with its raw input, whichever reached the recorder first.
    assert summary['pixels']['frames_compared'] > 0, summary
    assert 0 < summary['pixels']['measured_fraction'] < 1, summary
    assert summary['pixels']['output_fraction'] >= summary['pixels']['measured_fraction']
    assert summary['model']['variant']  # the packaged weights' or the untrained tiny model
    if summary['model']['trained'] is False:
        assert 'UNTRAINED' in summary['model']['note']
    for name in ('color', 'depth_raw', 'depth_completed', 'cloud_view', 'preview'):
        assert (out / f'{name}.png').stat().st_size > 0


@pytest.mark.parametrize('output_first', [False, True])
def test_recorder_compares_a_frame_whichever_image_arrives_first(output_first):
    from builtin_interfaces.msg import Time
    from s2ml_ros.demo import Recorder
    rgb, depth, hole = nh.make_scene(32, 24)
    completed = np.where(hole, 2.0, depth).astype(np.float32)
    stamp = Time(sec=5, nanosec=7)
    raw_msg = nh.depth_msg(depth, stamp, '32FC1')
    out_msg = nh.image_msg(completed, '32FC1', stamp)
    with nh.unique_domain_id() as domain:
        recorder = Recorder(domain)
        try:
            # The callbacks the executor would run, in the order the images arrive.
            deliveries = [lambda: recorder._on_depth(out_msg),
                          lambda: recorder._keep('raw')(raw_msg)]
            for deliver in (deliveries if output_first else deliveries[::-1]):
                deliver()
            fractions = recorder.snapshot()['fractions']
        finally:
            recorder.close()
    assert len(fractions) == 1
    stats = fractions[0][1]
    assert stats['measured'] == pytest.approx(1 - hole.mean())
    assert stats['output'] == 1.0 and stats['holes_filled'] == 1.0
