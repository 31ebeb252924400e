"""
SIGINT / SIGTERM landing while a callback or thread publishes still stops a process cleanly.

rclpy's signal handler shuts the context down under a publish in progress, which then raises
RCLError. Each process is run with its spin replaced by one that does exactly that (context
shut down, then a publish), so the race is hit every time instead of once in many runs.
"""

from pathlib import Path
import subprocess
import sys

from bag_helpers import synthetic_frames
import node_harness as nh
import numpy as np
import pytest

from s2ml_ros.geometry import Intrinsics
from s2ml_ros.realsense_source import write_recording

pytestmark = pytest.mark.ros


def _run(script: str, args: list, tmp_path: Path) -> subprocess.CompletedProcess:
    with nh.unique_domain_id() as domain:
        env = nh.ros_environment(domain, tmp_path / 'log')
        return subprocess.run([sys.executable, '-c', script, '--ros-args', *args], cwd=nh.REPO,
                              env=env, capture_output=True, text=True, timeout=120)


def test_publish_on_a_shut_down_context_is_told_apart_from_real_errors() -> None:
    import rclpy
    from s2ml_ros.ros_shutdown import raised_by_shutdown
    from std_msgs.msg import String
    with nh.unique_domain_id() as domain:
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        node = rclpy.create_node('shutdown_probe', context=context)
        publisher = node.create_publisher(String, 'probe', 1)
        assert not raised_by_shutdown(RuntimeError('inference failed'), context)
        rclpy.shutdown(context=context)
        with pytest.raises(RuntimeError) as raised:
            publisher.publish(String(data='late'))
        assert raised_by_shutdown(raised.value, context)
        assert not raised_by_shutdown(ValueError('bad frame'), context)
        node.destroy_node()


NODE_SCRIPT = """
import sys
import rclpy
from s2ml_ros import node as node_module

def signal_during_publish(node):
    # SIGTERM while the diagnostics timer publishes: the context goes first.
    rclpy.shutdown()
    node._on_diagnostics()

def bug(node):
    raise RuntimeError('a bug, not a shutdown')

rclpy.spin = {spin}
sys.exit(node_module.main(sys.argv[1:]))
"""


def test_node_exits_0_when_a_signal_lands_during_a_publish(tmp_path: Path) -> None:
    ckpt = nh.write_tiny_checkpoint(tmp_path / 'tiny.safetensors')
    args = ['-p', f'checkpoint:={ckpt}']
    done = _run(NODE_SCRIPT.format(spin='signal_during_publish'), args, tmp_path)
    assert done.returncode == 0, done.stderr
    # A runtime error while the context is still running is still a failure.
    bug = _run(NODE_SCRIPT.format(spin='bug'), args, tmp_path)
    assert bug.returncode != 0 and 'a bug, not a shutdown' in bug.stderr


SIM_CAMERA_SCRIPT = """
import sys, time
import rclpy
from s2ml_ros import sim_camera_publisher as cam_module

def spin_once(node, timeout_sec=None):
    deadline = time.monotonic() + 60
    while not node._ring and time.monotonic() < deadline:
        time.sleep(0.01)
    rclpy.shutdown()  # SIGTERM while the timer publishes a frame
    node._on_timer()

rclpy.spin_once = spin_once
sys.exit(cam_module.main(sys.argv[1:]))
"""


def test_sim_camera_exits_0_when_a_signal_lands_during_a_publish(tmp_path: Path) -> None:
    done = _run(SIM_CAMERA_SCRIPT, ['-p', 'width:=64', '-p', 'height:=48', '-p',
                                    'num_frames:=1'], tmp_path)
    assert done.returncode == 0, done.stderr


REALSENSE_SCRIPT = """
import sys, time
import rclpy
from s2ml_ros import realsense_node as rs_module

def spin_once(node, timeout_sec=None):
    deadline = time.monotonic() + 60
    while node.published == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    rclpy.shutdown()  # SIGTERM while the reader thread publishes framesets
    # The shutdown destroyed the node; its reader must be stopped by then, not left publishing
    # through destroyed publishers while rclpy finalizes.
    if node._thread.is_alive():
        sys.exit('reader thread still running after the context shut down')
    node.finished.wait(60)

rclpy.spin_once = spin_once
sys.exit(rs_module.main(sys.argv[1:]))
"""


def test_realsense_node_exits_0_when_a_signal_lands_during_a_publish(tmp_path: Path) -> None:
    rgbs, raws, _, k4 = synthetic_frames(3, 48, 32)
    depths = [np.rint(r * 1000).astype(np.uint16) for r in raws]
    path = tmp_path / 'walk.db3'
    write_recording(str(path), rgbs, depths, Intrinsics(*k4, 48, 32))
    done = _run(REALSENSE_SCRIPT, ['-p', f'recording:={path}', '-p', 'repeat:=true', '-p',
                                   'real_time:=false'], tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'stopped:' not in done.stderr
