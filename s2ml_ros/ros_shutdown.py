"""
Clean stops on SIGINT / SIGTERM for this package's ROS processes.

rclpy's signal handler shuts the context down at once, also while a timer callback or a
publishing thread is in the middle of ``publish``; that call then raises ``RCLError``
("publisher's context is invalid"). That error is the stop the user asked for, not a failure,
so the processes still exit 0.
"""

from typing import Optional

import rclpy
from rclpy.context import Context


def raised_by_shutdown(exc: BaseException, context: Optional[Context] = None) -> bool:
    """
    Tell whether ``exc`` came from using ROS after the context was shut down beneath it.

    :param exc: What a spin, a callback or a publishing thread raised.
    :param context: The context the node runs in (None = the global one).
    :return: True for rclpy's runtime errors (``RCLError`` is a ``RuntimeError``) once that
        context is shut down; False while it is still running, so real errors stay errors.
    """
    return isinstance(exc, RuntimeError) and not rclpy.ok(context=context)
