"""Unit tests of the latest-wins slot and its worker thread (s2ml_ros.frame_slot)."""

import threading

from s2ml_ros.frame_slot import LatestSlot, SlotWorker


def test_put_replaces_and_counts_drops():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0.01) is None
    assert (slot.put_count, slot.dropped) == (3, 2)


def test_close_wakes_a_waiting_taker():
    slot = LatestSlot()
    out = []
    t = threading.Thread(target=lambda: out.append(slot.take()))
    t.start()
    slot.close()
    t.join(2.0)
    assert not t.is_alive() and out == [None]


def test_worker_processes_latest_only_while_busy():
    slot = LatestSlot()
    gate = threading.Event()
    started = threading.Event()
    seen = []

    def handler(item):
        seen.append(item)
        started.set()
        gate.wait(2.0)

    worker = SlotWorker(slot, handler)
    worker.start()
    slot.put(0)
    assert started.wait(2.0)
    for i in range(1, 6):  # the worker is busy with 0: 1..4 are replaced, 5 waits
        slot.put(i)
    gate.set()
    deadline = threading.Event()
    for _ in range(200):
        if worker.processed == 2:
            break
        deadline.wait(0.01)
    assert worker.stop()
    assert seen == [0, 5]
    assert slot.dropped == 4


def test_worker_survives_handler_errors():
    slot = LatestSlot()
    errors = []
    done = threading.Event()

    def handler(item):
        if item == 'bad':
            raise ValueError('bad frame')
        done.set()

    worker = SlotWorker(slot, handler, on_error=errors.append)
    worker.start()
    slot.put('bad')
    for _ in range(200):
        if worker.errors:
            break
        done.wait(0.01)
    slot.put('good')
    assert done.wait(2.0)
    assert worker.stop()
    assert worker.errors == 1 and worker.processed == 1
    assert isinstance(errors[0], ValueError)
