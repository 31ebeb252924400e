"""
Latest-wins hand-off between the ROS callbacks and the inference worker, without ROS.

The sync callback puts each matched set into a :class:`LatestSlot` and returns at once; a
:class:`SlotWorker` thread takes the newest set when it is free. A set that is replaced before the
worker took it is dropped and counted, so stale frames never queue behind the model.
"""

import threading
import time
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar('T')


class LatestSlot(Generic[T]):
    """A one-item mailbox: ``put`` replaces an item nobody took yet, ``take`` waits for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._has_item = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> bool:
        """
        Store ``item``, replacing any item not taken yet.

        :param item: The new item.
        :return: True if an older item was dropped to make room.
        """
        with self._cond:
            replaced = self._has_item
            if replaced:
                self.dropped += 1
            self._item, self._has_item = item, True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """
        Remove and return the item, waiting up to ``timeout`` seconds for one.

        :param timeout: Seconds to wait; None waits until an item arrives or the slot closes.
        :return: The item, or None on timeout or when closed.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiter; later ``take`` calls return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """:return: True after :meth:`close`."""
        return self._closed


class SlotWorker(Generic[T]):
    """
    Thread that runs ``handler`` on the newest item of a slot, one at a time.

    :param slot: The slot to drain.
    :param handler: Called with each item; its exceptions go to ``on_error``, never kill the
        thread.
    :param on_error: Called with the exception (default: ignore).
    :param name: Thread name.
    """

    def __init__(self, slot: LatestSlot, handler: Callable[[T], None],
                 on_error: Optional[Callable[[BaseException], None]] = None,
                 name: str = 'slot_worker') -> None:
        self._slot = slot
        self._handler = handler
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stop = threading.Event()
        self.processed = 0
        self.errors = 0
        self.busy = False
        self.last_duration_s = 0.0

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """
        Ask the thread to finish its current item and exit.

        :param timeout: Seconds to wait for it.
        :return: True if the thread has exited.
        """
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.1)
            if item is None:
                if self._slot.closed:
                    return
                continue
            self.busy = True
            start = time.perf_counter()
            try:
                self._handler(item)
                self.processed += 1
            except Exception as exc:  # noqa: B902 - a bad frame must not end the worker
                self.errors += 1
                if self._on_error is not None:
                    try:
                        self._on_error(exc)
                    except Exception:  # noqa: B902
                        pass
            finally:
                self.busy = False
                self.last_duration_s = time.perf_counter() - start
