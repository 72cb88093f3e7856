"""`offload-bench dlq list|show|redrive|purge`: inspect and redrive the worker's dead-letter queue."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.errors import fail
from service import dlq, keys

T = TypeVar("T")

dlq_app = typer.Typer(
    help="Inspect and redrive the dead-letter queue (jobs that will not be retried).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RedisUrl = typer.Option(
    "redis://127.0.0.1:6379/0",
    "--redis-url",
    envvar=["OFFLOAD_REDIS_URL", "REDIS_URL"],
    help="Redis holding the queue (env OFFLOAD_REDIS_URL or REDIS_URL).",
)
CONNECT_TIMEOUT_S = 2.0


def _run(redis_url: str, action: Callable[[Redis], Awaitable[T]]) -> T:
    """Run one async DLQ action on a fresh client; Redis errors become one line and exit 2."""

    async def go() -> T:
        client = Redis.from_url(redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=10)
        try:
            await client.ping()
            return await action(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except dlq.DlqError as exc:
        fail(str(exc))
    except (RedisError, OSError) as exc:
        fail(f"cannot reach Redis at {redis_url}: {type(exc).__name__}", "is it running? pass --redis-url")
    except ValueError as exc:  # a malformed URL
        fail(f"bad Redis URL {redis_url!r}: {exc}", "e.g. redis://127.0.0.1:6379/0")


def _when(ts: Any) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(float(ts), tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@dlq_app.command("list")
def list_command(
    redis_url: str = RedisUrl,
    limit: int = typer.Option(50, min=1, max=10_000, help="records to show, most recent first"),
) -> None:
    """List dead-lettered jobs, most recent failure first."""

    async def action(client: Redis) -> tuple[int, list[dict[str, Any]]]:
        return await dlq.count(client), await dlq.list_records(client, limit)

    total, recs = _run(redis_url, action)
    console = Console()
    table = Table(title=f"dead-letter queue: {total} job(s)")
    for col in ("job id", "source", "error", "attempts", "redrives", "failed (UTC)"):
        table.add_column(col)
    for r in recs:
        error = f"{r.get('error_type')}: {r.get('error')}"
        table.add_row(
            str(r.get("job_id")),
            str(r.get("source_id")),
            error if len(error) <= 70 else error[:67] + "...",
            str(r.get("attempts")),
            str(r.get("redrives")),
            _when(r.get("failed_ts")),
        )
    console.print(table)
    if total > len(recs):
        console.print(f"({total - len(recs)} more; use --limit)")


@dlq_app.command("show")
def show_command(job_id: str = typer.Argument(..., help="job id"), redis_url: str = RedisUrl) -> None:
    """Show one record in full (payload, error, traceback)."""
    rec = _run(redis_url, lambda c: dlq.show(c, job_id))
    if rec is None:
        fail(f"job {job_id} is not in the dead-letter queue", "see `offload-bench dlq list`")
    tb = rec.pop("traceback", "")
    typer.echo(json.dumps(rec, indent=2))
    if tb:
        typer.echo(tb.rstrip())


@dlq_app.command("redrive")
def redrive_command(
    job_id: str | None = typer.Argument(None, help="job id (or --all)"),
    all_: bool = typer.Option(False, "--all", help="redrive every record"),
    redis_url: str = RedisUrl,
) -> None:
    """Re-enqueue dead-lettered jobs with fresh tries (same job ids)."""
    if (job_id is None) == (not all_):
        fail("give a job id or --all (not both)", "offload-bench dlq redrive ID | --all")
    if job_id is not None:
        rec = _run(redis_url, lambda c: dlq.redrive(c, job_id))
        typer.echo(f"redriven {job_id} (redrives: {rec['redrives']})")
        return
    ids: list[str] = _run(redis_url, _all_ids)
    done = 0
    skipped: list[str] = []

    async def redrive_each(client: Redis) -> None:
        nonlocal done
        for jid in track(ids, description="redriving", console=Console(stderr=True), disable=not ids):
            try:
                await dlq.redrive(client, jid)
                done += 1
            except dlq.DlqError:
                skipped.append(jid)

    _run(redis_url, redrive_each)
    typer.echo(
        f"redriven {done} job(s)" + (f"; skipped {len(skipped)}: {' '.join(skipped)}" if skipped else "")
    )


async def _all_ids(client: Redis) -> list[str]:
    raw = await client.zrange(keys.DLQ_INDEX, 0, -1)
    return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]


@dlq_app.command("purge")
def purge_command(
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
    redis_url: str = RedisUrl,
) -> None:
    """Delete every dead-letter record (their jobs are not re-run)."""
    total = _run(redis_url, dlq.count)
    if total and not yes:
        if not sys.stdin.isatty():
            fail(f"purge would delete {total} record(s)", "pass --yes to confirm")
        if not typer.confirm(f"delete {total} dead-letter record(s)?"):
            fail("purge cancelled", code=1)
    n = _run(redis_url, dlq.purge)
    typer.echo(f"purged {n} record(s)")
