"""Tests of the offline RealSense recording evaluator (S2ML vs baselines vs librealsense)."""

import json

from bag_helpers import synthetic_frames
import cv2
import numpy as np
import pytest

from s2ml_ros import realsense_offline
from s2ml_ros.geometry import Intrinsics
from s2ml_ros.model import build_s2ml, save_checkpoint
from s2ml_ros.realsense_source import FILTER_NAMES, write_recording

W, H, N = 48, 32, 3


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp('rsoff')
    rgbs, raws, _, k4 = synthetic_frames(N, W, H)
    path = str(folder / 'walk.db3')
    depths = [np.rint(r * 1000).astype(np.uint16) for r in raws]
    write_recording(path, rgbs, depths, Intrinsics(*k4, W, H))
    ckpt = folder / 'tiny.safetensors'
    save_checkpoint(str(ckpt), build_s2ml('tiny'), provenance={'note': 'tests'})
    return path, str(ckpt), depths


def test_recording_is_completed_and_compared_with_librealsense(tmp_path, recording, capsys):
    path, ckpt, depths = recording
    out = tmp_path / 'out'
    code = realsense_offline.main([path, '-o', str(out), '--checkpoint', ckpt, '--device', 'cpu',
                                   '--baselines', 'nearest', '-q'])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ['depth_completed', 'report.html',
                                                     'report.json']
    pngs = sorted((out / 'depth_completed').iterdir())
    assert [p.name for p in pngs] == [f'{i:06d}.png' for i in range(N)]
    first = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert first.dtype == np.uint16 and first.shape == (H, W)
    measured = depths[0] > 0
    # keep_measured: the measured pixels come back as measured (align is exact here).
    assert np.mean(first[measured] == depths[0][measured]) > 0.9
    report = json.loads((out / 'report.json').read_text())
    assert report['frame_count'] == N and report['protocol'] == 'hidden_pixels'
    assert list(report['overall']) == ['s2ml', 'nearest', *FILTER_NAMES]
    assert report['input']['depth_scale'] == pytest.approx(0.001)
    assert report['input']['camera']['width'] == W
    for name, m in report['overall'].items():
        assert m['pixels'] > 0 or m['coverage'] == 0, name
        assert m['latency_ms']['count'] == N
    assert report['overall']['rs_hole_filling']['coverage'] > 0.9
    assert report['overall']['rs_spatial']['coverage'] < 0.5  # default: fills no holes
    assert 'rs_chain' in (out / 'report.html').read_text()
    assert 'rs_hole_filling' in capsys.readouterr().out


def test_bad_recording_and_filters_exit_2_without_outputs(tmp_path, recording, capsys):
    path, ckpt, _ = recording
    out = tmp_path / 'out'
    common = ['-o', str(out), '--checkpoint', ckpt, '--device', 'cpu', '-q']
    assert realsense_offline.main([str(tmp_path / 'none.db3')] + common) == 2
    assert 'does not exist' in capsys.readouterr().err
    junk = tmp_path / 'junk.db3'
    junk.write_bytes(b'junk' * 100)
    assert realsense_offline.main([str(junk)] + common) == 2
    assert 'junk.db3' in capsys.readouterr().err
    assert realsense_offline.main([path, '--filters', 'median'] + common) == 2
    assert "unknown filter set-up(s) ['median']" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []
