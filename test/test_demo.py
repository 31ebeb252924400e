"""The camera-less demo end to end: simulated camera process -> node process -> recorder."""

import json
import subprocess
import sys

import node_harness as nh
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
    assert 0 < summary['pixels']['measured_fraction'] < 1
    assert summary['pixels']['output_fraction'] >= summary['pixels']['measured_fraction']
    assert summary['model']['variant']  # the packaged weights' or the untrained tiny model
    if summary['model']['trained'] is False:
        assert 'UNTRAINED' in summary['model']['note']
    for name in ('color', 'depth_raw', 'depth_completed', 'cloud_view', 'preview'):
        assert (out / f'{name}.png').stat().st_size > 0
