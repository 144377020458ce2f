"""SIGINT and SIGTERM as a request to stop: one way for every long-running command."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stop_on_signals(
    stopping: threading.Event, log: Callable[[str], None] | None = None, said: str = "stopping"
) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set `stopping` (and log "<SIGNAL>: <said>"): the work
    in hand is finished and recorded first. The previous handlers come back afterwards.
    (Signals reach only the main thread; elsewhere this does nothing.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        if log is not None:
            log(f"{signal.Signals(signum).name}: {said}")
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
