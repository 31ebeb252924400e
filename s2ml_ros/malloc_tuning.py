"""
Keep large freed buffers in the process heap (glibc only), so big messages do not page-fault.

Every 640x480 frame allocates and frees several megabytes (serialized clouds, images). glibc
serves blocks above its mmap threshold with fresh ``mmap`` pages and returns freed heap tops to the
kernel, so each frame touches new pages; in virtual machines those page faults cost more than the
work itself (measured here: serializing a 4.9 MB cloud took 7-11 ms instead of 0.6 ms). Raising
the mmap and trim thresholds makes glibc reuse the memory. Pure ctypes; no ROS.
"""

import ctypes
import ctypes.util
import logging

_logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_large_buffers() -> bool:
    """
    Raise glibc's mmap and trim thresholds for this process.

    :return: True if glibc accepted both settings, False elsewhere (musl, macOS, Windows).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    _logger.debug('mallopt thresholds %s', 'set' if ok else 'refused')
    return ok
