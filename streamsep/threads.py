"""Helpers for the worker threads that sources and services own."""

from __future__ import annotations

import threading

__all__ = ["join_thread"]


def join_thread(thread: threading.Thread | None, timeout: float | None = None) -> bool:
    """Wait up to ``timeout`` seconds for ``thread`` (``None``: never started).

    Returns
    -------
    bool
        True when the thread has ended (or never existed), False on timeout.
    """
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()
