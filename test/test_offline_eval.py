"""Tests of the hidden-pixel protocol, the per-method scoring and the staged outputs."""

import numpy as np
import pytest

from s2ml_ros.offline_eval import (Evaluation, HolePlanter, OutputError, path_sha256, shift_mask,
                                   StagedOutput)


def _depth(hole_at, shape=(40, 60)):
    depth = np.full(shape, 2.0, np.float32)
    y, x = hole_at
    depth[y:y + 8, x:x + 10] = 0
    return depth


def test_planter_hides_valid_pixels_with_moved_holes_of_other_frames():
    planter = HolePlanter(seed=1, min_fraction=0.01)
    first = _depth((5, 5))
    given, hidden = planter.plant(first)
    # First frame: its own hole shape, moved onto valid pixels.
    assert hidden.any() and not np.any(hidden & (first == 0))
    assert np.all(given[hidden] == 0) and np.all(given[~hidden] == first[~hidden])
    second = np.full((40, 60), 3.0, np.float32)  # no holes of its own
    given, hidden = planter.plant(second)
    assert 0 < hidden.sum() <= 80  # the 8 x 10 hole of the first frame, maybe clipped
    assert np.all(given[hidden] == 0) and np.all(given[~hidden] == 3.0)


def test_planter_is_deterministic_and_copes_without_holes():
    frames = [_depth((5 + i, 5 + 2 * i)) for i in range(4)]
    runs = []
    for _ in range(2):
        planter = HolePlanter(seed=7)
        runs.append([planter.plant(f)[1] for f in frames])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    given, hidden = HolePlanter().plant(np.ones((10, 10), np.float32))
    assert not hidden.any() and np.all(given == 1)


def test_evaluation_scores_holes_coverage_and_distance_bins():
    target = np.full((20, 20), 2.5, np.float32)
    given = target.copy()
    given[5:10, 5:10] = 0
    perfect = target.copy()
    half = np.where(given > 0, given, 0).astype(np.float32)
    half[5:10, 5:7] = 3.0  # fills 10 of 25 hidden pixels, 0.5 m off
    ev = Evaluation(['a', 'b'], 'hidden_pixels', keep_maps=1)
    rec = ev.add_frame(0, 123, np.zeros((20, 20, 3), np.uint8), target, given, target,
                       {'a': (perfect, 0.01), 'b': (half, 0.002)})
    assert rec['scored_hole_pixels'] == 25
    assert rec['methods']['a']['rmse'] == 0 and rec['methods']['a']['coverage'] == 1
    summary = ev.summary()
    assert summary['b']['coverage'] == pytest.approx(10 / 25)
    assert summary['b']['mae'] == pytest.approx(0.5)
    assert summary['a']['latency_ms']['mean'] == pytest.approx(10.0)
    bins = ev.error_by_distance()['b']
    assert [r['pixels'] for r in bins if r['pixels']] == [10]
    assert bins[2]['range_m'] == [2.0, 3.0] and bins[2]['mae'] == pytest.approx(0.5)
    assert len(ev.maps) == 1 and np.isnan(ev.maps[0]['errors']['a'][0, 0])
    with pytest.raises(ValueError, match='protocol'):
        Evaluation(['a'], 'guess')


def test_staged_output_publishes_all_or_nothing(tmp_path):
    out = tmp_path / 'out'
    with StagedOutput(str(out), ['a.json', 'bag']) as stage:
        stage.path('a.json').write_text('{}')
        stage.path('bag').mkdir()
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith('.')) == []
        stage.commit()
    assert sorted(p.name for p in out.iterdir()) == ['a.json', 'bag']
    with pytest.raises(OutputError, match='already exist'):
        StagedOutput(str(out), ['a.json'])
    with pytest.raises(RuntimeError):
        with StagedOutput(str(out), ['b.json'], overwrite=True) as stage:
            stage.path('b.json').write_text('partial')
            raise RuntimeError('boom')
    assert sorted(p.name for p in out.iterdir()) == ['a.json', 'bag']
    with StagedOutput(str(out), ['c'], overwrite=True) as stage:
        with pytest.raises(OutputError, match='not one of'):
            stage.path('d')
    assert sorted(p.name for p in out.iterdir()) == ['a.json', 'bag']


def test_path_sha256_covers_folders(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'x').write_bytes(b'1')
    first = path_sha256(str(tmp_path / 'd'))
    (tmp_path / 'd' / 'x').write_bytes(b'2')
    assert path_sha256(str(tmp_path / 'd')) != first and len(first) == 64


def test_shift_mask_moves_holes_and_drops_what_leaves_the_image():
    mask = np.zeros((4, 5), bool)
    mask[1, 1] = mask[3, 4] = True
    moved = shift_mask(mask, 1, -1)
    assert np.argwhere(moved).tolist() == [[2, 0]]  # (3, 4) left the image
    assert np.array_equal(shift_mask(mask, 0, 0), mask)
    assert not shift_mask(mask, 4, 0).any() and not shift_mask(mask, 0, -7).any()
