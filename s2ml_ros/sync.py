"""
Header-stamp synchronizer for N message streams (exact or approximate), without ROS.

message_filters is not installable from PyPI and its Python ApproximateTimeSynchronizer calls
the user callback inside its lock, so the node uses this small policy instead. It is pure: the
caller passes ``(stream index, stamp in ns, item)`` and gets back a matched tuple or None, so
every behaviour is unit-tested without a ROS graph.

Policy. Each stream has a queue bounded to ``queue_size`` (oldest evicted first). When an item
arrives, the synchronizer looks for a set that contains it: in each other stream it takes the
queued item whose stamp is closest to the new one (ties go to the newer item); the set is emitted
when the spread of its stamps is at most ``slop_ns`` (0 in exact mode: identical stamps). Every
set completes when its last member arrives, so checking only sets that contain the new item finds
it. After a match, items at or before the matched stamps are removed: older ones were never
matched and are counted as dropped. Items stamped at or before the last emitted set of their
stream arrive out of order; they are counted and discarded, never emitted.
"""

import bisect
from dataclasses import dataclass, field
import threading
from typing import Any, Generic, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar('T')


class SyncError(ValueError):
    """Raised for an invalid synchronizer configuration or stream index."""


@dataclass
class SyncStats:
    """
    Counters of a :class:`StampSynchronizer` (monotonic, per stream where a list).

    :param received: Items offered per stream.
    :param matched: Sets emitted.
    :param dropped: Items per stream removed without being part of a set (evicted from a full
        queue, skipped by a newer match, or replaced by an item with the same stamp).
    :param out_of_order: Items per stream discarded because their stamp was not newer than the
        last set emitted on that stream.
    """

    received: List[int] = field(default_factory=list)
    matched: int = 0
    dropped: List[int] = field(default_factory=list)
    out_of_order: List[int] = field(default_factory=list)


class StampSynchronizer(Generic[T]):
    """
    Match items of several streams by header stamp.

    :param num_streams: Number of streams (>= 1).
    :param slop_s: Largest spread of stamps in a set, seconds (approximate mode).
    :param queue_size: Items kept per stream while waiting for partners (>= 1).
    :param exact: Require identical stamps (slop ignored).
    """

    def __init__(self, num_streams: int, slop_s: float = 0.02, queue_size: int = 10,
                 exact: bool = False) -> None:
        if int(num_streams) < 1:
            raise SyncError(f'num_streams must be >= 1, got {num_streams}')
        if int(queue_size) < 1:
            raise SyncError(f'queue_size must be >= 1, got {queue_size}')
        if not exact and not slop_s >= 0:
            raise SyncError(f'slop must be >= 0 seconds, got {slop_s}')
        self._n = int(num_streams)
        self._queue_size = int(queue_size)
        self._exact = bool(exact)
        self._slop_ns = 0 if exact else int(round(float(slop_s) * 1e9))
        self._lock = threading.Lock()
        self._stamps: List[List[int]] = [[] for _ in range(self._n)]
        self._items: List[List[Any]] = [[] for _ in range(self._n)]
        self._last_emitted: List[Optional[int]] = [None] * self._n
        self._latest: List[Optional[int]] = [None] * self._n
        self.stats = SyncStats([0] * self._n, 0, [0] * self._n, [0] * self._n)

    @property
    def slop_ns(self) -> int:
        """:return: The largest accepted stamp spread in nanoseconds (0 in exact mode)."""
        return self._slop_ns

    @property
    def exact(self) -> bool:
        """:return: True in exact mode."""
        return self._exact

    def latest_stamps(self) -> List[Optional[int]]:
        """:return: Per stream, the newest stamp received (ns) or None; for sync diagnostics."""
        with self._lock:
            return list(self._latest)

    def reset(self) -> None:
        """Forget queued items and the last emitted stamps (counters are kept)."""
        with self._lock:
            for i in range(self._n):
                self._stamps[i].clear()
                self._items[i].clear()
            self._last_emitted = [None] * self._n
            self._latest = [None] * self._n

    def add(self, stream: int, stamp_ns: int, item: T) -> Optional[Tuple[T, ...]]:
        """
        Offer one item; return a complete set if this item completes one.

        :param stream: Stream index in [0, num_streams).
        :param stamp_ns: Header stamp in nanoseconds.
        :param item: Anything (usually the message); returned in the matched tuple.
        :return: A tuple with one item per stream, in stream order, or None.
        """
        if not 0 <= stream < self._n:
            raise SyncError(f'stream index {stream} out of range [0, {self._n})')
        stamp_ns = int(stamp_ns)
        with self._lock:
            st = self.stats
            st.received[stream] += 1
            if self._latest[stream] is None or stamp_ns > self._latest[stream]:
                self._latest[stream] = stamp_ns
            last = self._last_emitted[stream]
            if last is not None and stamp_ns <= last:
                st.out_of_order[stream] += 1
                return None
            stamps, items = self._stamps[stream], self._items[stream]
            pos = bisect.bisect_left(stamps, stamp_ns)
            if pos < len(stamps) and stamps[pos] == stamp_ns:
                items[pos] = item  # same stamp again: the newer message wins
                st.dropped[stream] += 1
            else:
                stamps.insert(pos, stamp_ns)
                items.insert(pos, item)
                if len(stamps) > self._queue_size:
                    stamps.pop(0)
                    items.pop(0)
                    st.dropped[stream] += 1
                    pos -= 1
                    if pos < 0:
                        return None  # the new item itself was the oldest and got evicted
            return self._match(stream, stamp_ns)

    def _match(self, pivot: int, pivot_ns: int) -> Optional[Tuple[T, ...]]:
        chosen: List[int] = []
        for s in range(self._n):
            stamps = self._stamps[s]
            if not stamps:
                return None
            if s == pivot:
                chosen.append(bisect.bisect_left(stamps, pivot_ns))
                continue
            j = bisect.bisect_left(stamps, pivot_ns)
            best = None
            for k in (j, j - 1):
                if 0 <= k < len(stamps):
                    if best is None or abs(stamps[k] - pivot_ns) < abs(stamps[best] - pivot_ns):
                        best = k
            chosen.append(best)
        picked = [self._stamps[s][chosen[s]] for s in range(self._n)]
        if max(picked) - min(picked) > self._slop_ns:
            return None
        out = tuple(self._items[s][chosen[s]] for s in range(self._n))
        for s in range(self._n):
            k = chosen[s]
            self.stats.dropped[s] += k  # older items that will never be matched
            del self._stamps[s][:k + 1]
            del self._items[s][:k + 1]
            self._last_emitted[s] = picked[s]
        self.stats.matched += 1
        return out


def closest_or_newest(stamped: Sequence[Tuple[int, T]], stamp_ns: int,
                      slop_ns: int) -> Optional[T]:
    """
    Pick the item stamped closest to ``stamp_ns``, or else the newest one.

    Used for CameraInfo, which is not part of the stamp match: some drivers stamp it differently
    (or with 0), and intrinsics are constant, so the newest message is the right fallback.

    :param stamped: (stamp in ns, item) pairs, oldest first.
    :param stamp_ns: Stamp of the frame, ns.
    :param slop_ns: Largest difference that still counts as the frame's own item, ns (at least
        1 ms is allowed).
    :return: The item, or None if ``stamped`` is empty.
    """
    if not stamped:
        return None
    best = min(stamped, key=lambda pair: abs(pair[0] - stamp_ns))
    return best[1] if abs(best[0] - stamp_ns) <= max(slop_ns, 1_000_000) else stamped[-1][1]
