"""Holding a first Ctrl-C while a few milliseconds of bookkeeping must not be cut in half."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def hold_ctrl_c() -> Iterator[None]:
    """Hold a first Ctrl-C until the block is done (a second one goes through at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.getsignal(signal.SIGINT)

    def hold(signum: int, frame: Any) -> None:
        caught.append(signum)
        signal.signal(signal.SIGINT, previous)

    try:
        signal.signal(signal.SIGINT, hold)
    except ValueError:  # pragma: no cover - not the main interpreter
        yield
        return
    try:
        yield
    finally:
        if not caught:
            signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
