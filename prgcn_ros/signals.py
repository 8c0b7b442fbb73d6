"""The stop signals (Ctrl-C's SIGINT, and SIGTERM from systemd, docker stop, launch or a job
scheduler), and a block they cannot break into."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stops_held() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside the block are noted and raised again when it
    ends, to the handlers that were there. (Python runs every handler in the main thread, so
    only a block there can be broken into; blocking the signals there would not do, as the
    process's other threads, torch's among them, would take them.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    handlers = {stop: signal.signal(stop, lambda signum, frame: arrived.append(signum))
                for stop in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop, handler in handlers.items():
            signal.signal(stop, handler)
        for stop in dict.fromkeys(arrived):
            signal.raise_signal(stop)
