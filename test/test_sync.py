"""Unit tests of the header-stamp synchronizer (s2ml_ros.sync)."""

import pytest

from s2ml_ros.sync import closest_or_newest, StampSynchronizer, SyncError

MS = 1_000_000


def test_exact_matches_identical_stamps_only():
    sync = StampSynchronizer(2, exact=True)
    assert sync.add(0, 100 * MS, 'c100') is None
    assert sync.add(1, 101 * MS, 'd101') is None
    assert sync.add(1, 100 * MS, 'd100') == ('c100', 'd100')
    assert sync.stats.matched == 1
    assert sync.exact and sync.slop_ns == 0


def test_approximate_within_slop_and_not_beyond():
    sync = StampSynchronizer(2, slop_s=0.01)
    assert sync.add(0, 100 * MS, 'c100') is None
    assert sync.add(1, 111 * MS, 'd111') is None  # 11 ms > slop
    assert sync.add(0, 115 * MS, 'c115') == ('c115', 'd111')
    # c100 was never matched and is older than the matched set: dropped.
    assert sync.stats.dropped == [1, 0]


def test_three_streams_pick_closest():
    sync = StampSynchronizer(3, slop_s=0.005)
    sync.add(0, 100 * MS, 'a100')
    sync.add(0, 103 * MS, 'a103')
    sync.add(1, 104 * MS, 'b104')
    assert sync.add(2, 102 * MS, 'c102') == ('a103', 'b104', 'c102')


def test_set_completes_when_last_member_arrives_in_any_order():
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        sync = StampSynchronizer(3, slop_s=0.002)
        stamps = {0: 50 * MS, 1: 51 * MS, 2: 49 * MS}
        results = [sync.add(i, stamps[i], i) for i in order]
        assert results[:2] == [None, None]
        assert results[2] == (0, 1, 2)


def test_newer_items_stay_queued_after_a_match():
    sync = StampSynchronizer(2, slop_s=0.001)
    sync.add(0, 10 * MS, 'c10')
    sync.add(0, 20 * MS, 'c20')
    assert sync.add(1, 10 * MS, 'd10') == ('c10', 'd10')
    assert sync.add(1, 20 * MS, 'd20') == ('c20', 'd20')
    assert sync.stats.dropped == [0, 0] and sync.stats.matched == 2


def test_queue_is_bounded_and_evictions_are_counted():
    sync = StampSynchronizer(2, slop_s=0.001, queue_size=3)
    for i in range(10):
        sync.add(0, i * 100 * MS, i)
    assert sync.stats.dropped == [7, 0]
    assert sync.add(1, 0, 'd0') is None  # its partner was evicted
    assert sync.add(1, 900 * MS, 'd900') == (9, 'd900')


def test_out_of_order_items_are_discarded_and_counted():
    sync = StampSynchronizer(2, slop_s=0.001)
    sync.add(0, 50 * MS, 'c50')
    assert sync.add(1, 50 * MS, 'd50') == ('c50', 'd50')
    assert sync.add(0, 40 * MS, 'c40') is None
    assert sync.add(1, 40 * MS, 'd40') is None
    assert sync.add(0, 50 * MS, 'c50b') is None
    assert sync.stats.out_of_order == [2, 1]
    # A late item that is still newer than the last set can match.
    sync.add(0, 70 * MS, 'c70')
    sync.add(0, 60 * MS, 'c60')
    assert sync.add(1, 60 * MS, 'd60') == ('c60', 'd60')
    assert sync.add(1, 70 * MS, 'd70') == ('c70', 'd70')


def test_duplicate_stamp_replaces_and_counts():
    sync = StampSynchronizer(2, exact=True)
    sync.add(0, 5, 'a')
    sync.add(0, 5, 'b')
    assert sync.stats.dropped == [1, 0]
    assert sync.add(1, 5, 'x') == ('b', 'x')


def test_never_matching_streams_report_latest_stamps():
    sync = StampSynchronizer(2, slop_s=0.01, queue_size=5)
    for i in range(20):
        assert sync.add(0, i * 33 * MS, i) is None
        assert sync.add(1, i * 33 * MS + 500 * MS, i) is None
    assert sync.stats.matched == 0
    assert sync.stats.received == [20, 20]
    c, d = sync.latest_stamps()
    assert d - c == 500 * MS


def test_reset_forgets_queues_and_last_set():
    sync = StampSynchronizer(2, exact=True)
    sync.add(0, 5, 'a')
    assert sync.add(1, 5, 'b') == ('a', 'b')
    sync.reset()
    sync.add(0, 1, 'a1')
    assert sync.add(1, 1, 'b1') == ('a1', 'b1')


def test_single_stream_passes_through():
    sync = StampSynchronizer(1)
    assert sync.add(0, 1, 'x') == ('x',)


@pytest.mark.parametrize('kwargs,match', [
    ({'num_streams': 0}, 'num_streams'),
    ({'num_streams': 2, 'queue_size': 0}, 'queue_size'),
    ({'num_streams': 2, 'slop_s': -1.0}, 'slop'),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(SyncError, match=match):
        StampSynchronizer(**kwargs)


def test_bad_stream_index():
    with pytest.raises(SyncError, match='out of range'):
        StampSynchronizer(2).add(2, 0, None)


def test_camera_info_pick_prefers_the_frames_own_stamp_then_the_newest():
    infos = [(1_000_000_000, 'a'), (1_033_000_000, 'b'), (5_000_000_000, 'c')]
    assert closest_or_newest(infos, 1_034_000_000, slop_ns=2_000_000) == 'b'
    # A driver that stamps camera_info differently (or with 0): fall back to the newest.
    assert closest_or_newest([(0, 'x'), (0, 'y')], 1_500_000_000, slop_ns=2_000_000) == 'y'
    assert closest_or_newest([], 1, slop_ns=0) is None
