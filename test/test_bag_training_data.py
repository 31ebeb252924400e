"""Training on the user's own recordings: rosbag2 frames and simulated holes over real depth."""

from pathlib import Path

from bag_helpers import COLOR, GT, image_msg, write_bag
import numpy as np
import pytest
from s2ml_ros.geometry import Intrinsics
from training.datasets import DatasetError, RosbagFrames
from training.transforms import SensorHoles


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_frames_are_paired_and_decoded_like_the_node(tmp_path: Path, storage: str) -> None:
    written = write_bag(tmp_path / 'bag', n=5, storage=storage, with_gt=True)
    frames = RosbagFrames(tmp_path / 'bag')
    assert len(frames) == 5
    assert frames.topics.ground_truth == GT
    sample = frames.sample(2)
    np.testing.assert_array_equal(sample['rgb'], written['rgb'][2])
    # 16UC1 millimetres -> meters, holes stay 0.
    np.testing.assert_allclose(sample['depth'], np.rint(written['raw'][2] * 1000) / 1000,
                               atol=1e-6)
    np.testing.assert_allclose(sample['gt'], written['gt'][2], atol=1e-6)
    fx, fy, cx, cy = written['k']
    assert sample['intrinsics'] == Intrinsics(fx, fy, cx, cy, 40, 30)


def test_without_ground_truth_the_raw_depth_is_the_target(tmp_path: Path) -> None:
    write_bag(tmp_path / 'bag', n=4)
    frames = RosbagFrames(tmp_path / 'bag', every=2)
    assert len(frames) == 2
    sample = frames.sample(1)
    np.testing.assert_array_equal(sample['gt'], sample['depth'])


def test_a_bad_frame_is_skipped_and_counted(tmp_path: Path) -> None:
    bad = image_msg(np.zeros((30, 40), np.uint16), '16UC1', 1)  # depth on the colour topic
    write_bag(tmp_path / 'bag', n=4, overrides={COLOR: {1: bad}})
    frames = RosbagFrames(tmp_path / 'bag')
    assert len(frames) == 3
    assert frames.pairing.bad_encoding[COLOR] == 1


def test_missing_or_unusable_bags_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match='nowhere.mcap does not exist'):
        RosbagFrames(tmp_path / 'nowhere.mcap')
    write_bag(tmp_path / 'bag', n=2)
    with pytest.raises(DatasetError, match='/no/such/topic'):
        RosbagFrames(tmp_path / 'bag', color_topic='/no/such/topic')


def test_sensor_holes_hide_measured_pixels_and_keep_the_rest_exact() -> None:
    rng = np.random.default_rng(0)
    h, w = 60, 80
    depth = np.full((h, w), 3.0, np.float32)
    depth[20:40, 30:50] = 1.0  # a box in front of the wall: a shadow must appear beside it
    depth[:5, :5] = 0.0        # an existing hole stays a hole
    rgb = rng.integers(80, 160, (h, w, 3)).astype(np.uint8)
    sample = {'rgb': rgb, 'depth': depth.copy(), 'gt': depth.copy(),
              'intrinsics': Intrinsics(70.0, 70.0, 39.5, 29.5, w, h), 'name': 'x'}
    out = SensorHoles('structured_light')(sample, np.random.default_rng(1))
    added = (out['depth'] == 0) & (depth > 0)
    assert added.any(), 'no simulated hole was added'
    kept = out['depth'] > 0
    np.testing.assert_array_equal(out['depth'][kept], depth[kept])  # no simulated noise
    assert np.all(out['depth'][:5, :5] == 0)
    np.testing.assert_array_equal(out['gt'], depth)  # the target keeps every measurement
    # Occlusion shadows fall next to the box, not in the middle of the flat wall.
    assert added[18:42, 20:60].sum() > added[45:, :].sum()


def test_training_on_a_recorded_bag_with_simulated_holes(tmp_path: Path) -> None:
    import math

    from s2ml_ros.model import load_checkpoint
    import torch
    from training import train
    write_bag(tmp_path / 'bag', n=4, width=64, height=48)
    row = train.main(['--variant', 'test', '--data', 'bag', '--data-path', str(tmp_path / 'bag'),
                      '--extra-holes', 'structured_light', '--crop', '48', '32',
                      '--batch-size', '2', '--epochs', '1', '--workers', '0', '--device', 'cpu',
                      '--output-dir', str(tmp_path / 'run'), '--no-progress'])
    assert row['step'] == 2 and math.isfinite(row['train_loss'])
    first = tmp_path / 'run' / 'last.safetensors'
    # Fine-tuning starts from existing weights with a fresh optimizer.
    row = train.main(['--variant', 'test', '--data', 'bag', '--data-path', str(tmp_path / 'bag'),
                      '--extra-holes', 'active_stereo', '--crop', '48', '32',
                      '--batch-size', '2', '--epochs', '1', '--workers', '0', '--device', 'cpu',
                      '--init-from', str(first), '--lr', '0',
                      '--output-dir', str(tmp_path / 'tuned'), '--no-progress'])
    before = load_checkpoint(first)[0].state_dict()
    after = load_checkpoint(tmp_path / 'tuned' / 'last.safetensors')[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # lr 0: weights unchanged
