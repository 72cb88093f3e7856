"""offload-bench: the command line. Every command is registered here, in one place; command modules do not
import this one (no import loop)."""

from __future__ import annotations

import os
import sys

import typer

from bench.capacity.command import capacity_command
from bench.dlq_cmd import dlq_app
from bench.errors import UsageError
from bench.judge.baseline import baseline_app
from bench.judge.compare import compare_command
from bench.judge.gate import gate_command
from bench.report_cmd import report_command
from bench.run.command import RUN_CONTEXT, RUN_EPILOG, run_command
from bench.run.up import up_command

app = typer.Typer(
    name="offload-bench",
    help="Measure what moving work out of an API's critical path into background jobs buys and costs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run", context_settings=RUN_CONTEXT, epilog=RUN_EPILOG)(run_command)
app.command("up")(up_command)
app.command("report")(report_command)
app.command("gate")(gate_command)
app.command("compare")(compare_command)
app.command("capacity")(capacity_command)
app.add_typer(baseline_app, name="baseline")
app.add_typer(dlq_app, name="dlq")


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
