"""Errors every command shares: usage errors (exit 2) as one line on stderr, SIGTERM as an interrupt."""

from __future__ import annotations

import signal
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
