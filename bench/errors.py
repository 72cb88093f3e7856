"""Errors every command shares: usage errors (exit 2) as one line on stderr, SIGTERM as an interrupt.

Signals during cleanup (issue 14.11): the first Ctrl-C or SIGTERM interrupts a command; once it is stopping
its processes, further ones are noted and ignored, so a second signal cannot abort the stop halfway and leave
workers or Redis running.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

import typer


class UsageError(Exception):
    """A usage error found after parsing (bad value, port in use, unreachable Redis): exit 2."""


def fail(message: str, hint: str | None = None, code: int = 2) -> NoReturn:
    """Print one line `error: ...` (and a hint) on stderr and exit with code."""
    typer.echo(f"error: {message}" + (f" ({hint})" if hint else ""), err=True)
    raise typer.Exit(code)


def _raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Make SIGTERM stop a long command like Ctrl-C does, so every started process is stopped."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Inside, SIGINT and SIGTERM are recorded (in the yielded list), not raised: cleanup runs to its end."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda number, _frame: received.append(number))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
