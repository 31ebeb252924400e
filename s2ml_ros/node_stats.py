"""
Rolling rate and timing statistics for the node's diagnostics, without ROS.

Times are passed in explicitly (seconds on any monotonic clock), so the statistics are
deterministic under test.
"""

from collections import deque
import threading
from typing import Deque, Dict, Optional, Tuple

import numpy as np


class RateMeter:
    """
    Events per second over a sliding time window.

    :param window_s: Length of the window, seconds.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        self._window = float(window_s)
        self._times: Deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now: float) -> None:
        """Record one event at time ``now`` (seconds)."""
        with self._lock:
            self._times.append(now)
            self.count += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        """
        Events per second in the window ending at ``now``.

        :return: (n - 1) / (last - first) over the events in the window, 0.0 with fewer than 2,
            so a steady stream reads its true rate whatever the window length.
        """
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def last(self) -> Optional[float]:
        """:return: Time of the newest event, or None."""
        with self._lock:
            return self._times[-1] if self._times else None


class RollingStats:
    """
    Median and maximum of the last ``size`` samples of several named series.

    :param size: Samples kept per series.
    """

    def __init__(self, size: int = 100) -> None:
        self._size = int(size)
        self._series: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, value: float) -> None:
        """Append ``value`` to series ``name``."""
        with self._lock:
            self._series.setdefault(name, deque(maxlen=self._size)).append(float(value))

    def summary(self, name: str) -> Tuple[float, float, int]:
        """
        Summarize one series.

        :param name: Series name.
        :return: (median, max, number of samples); NaNs with 0 samples.
        """
        with self._lock:
            values = list(self._series.get(name, ()))
        if not values:
            return float('nan'), float('nan'), 0
        arr = np.asarray(values)
        return float(np.median(arr)), float(arr.max()), len(values)

    def names(self) -> Tuple[str, ...]:
        """:return: The series names, in insertion order."""
        with self._lock:
            return tuple(self._series)
