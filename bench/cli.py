"""offload-bench: the command line. Each subcommand lives in its own module and registers here."""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="offload-bench",
    help="Measure what moving work out of an API's critical path into background jobs buys and costs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class UsageError(Exception):
    """A usage error found after parsing (bad value, port in use, unreachable Redis): exit 2."""


def fail(message: str, hint: str | None = None, code: int = 2) -> None:
    """Print one line `error: ...` (and a hint) on stderr and exit with code."""
    line = f"error: {message}" + (f" ({hint})" if hint else "")
    typer.echo(line, err=True)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: one line for people, the traceback on request
        if os.environ.get("OFFLOAD_BENCH_DEBUG"):
            raise
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (rerun with OFFLOAD_BENCH_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(1)


# Subcommands register themselves on `app` when imported; each module imports `app` from here.
from bench import run_cmd, up_cmd  # noqa: E402, F401
from bench.baseline import baseline_app  # noqa: E402
from bench.compare_cmd import compare_command  # noqa: E402
from bench.dlq_cmd import dlq_app  # noqa: E402
from bench.gate import gate_command  # noqa: E402
from bench.report_cmd import report_command  # noqa: E402

app.command("gate")(gate_command)
app.add_typer(baseline_app, name="baseline")
app.add_typer(dlq_app, name="dlq")
app.command("compare")(compare_command)
app.command("report")(report_command)
