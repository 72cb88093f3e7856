"""`offload-bench up`: the stack in the foreground for interactive use (Locust web UI against it)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console

from bench.errors import UsageError, interrupt_on_sigterm
from bench.launch.stack import Stack, StackError
from bench.launch.startfail import no_auth_warning
from runfolder.redact import redact
from service.settings import WorkProfile
from targets import TargetError, load_target

console = Console(stderr=True, soft_wrap=True)  # paths must stay copyable: never hard-wrap them


def _write_private(path: Path, text: str) -> None:
    """Write text to a file only its owner can read (created 0600 before the secret goes in)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)


def _admin_token(ctx: typer.Context, token: str | None, token_file: Path | None) -> str | None:
    """The admin token from $OFFLOAD_ADMIN_TOKEN or a file; on the command line it works, with a warning."""
    if token_file is not None:
        try:
            return token_file.read_text().strip() or None
        except OSError as exc:
            raise UsageError(f"cannot read --admin-token-file {token_file}: {exc.strerror or exc}") from None
    source = ctx.get_parameter_source("admin_token")
    if token and source is not None and source.name == "COMMANDLINE":
        console.print(
            "warning: --admin-token is visible to every user on the process list; "
            "set OFFLOAD_ADMIN_TOKEN or use --admin-token-file instead"
        )
    return token


def up_command(
    ctx: typer.Context,
    port: int = typer.Option(8000, help="API port on 127.0.0.1"),
    workers: int = typer.Option(
        1, min=0, max=64, help="worker processes: the target's worker command, started N times"
    ),
    redis_url: str = typer.Option(None, help="an external Redis (default: a private embedded one)"),
    admin_token: str = typer.Option(
        None, envvar="OFFLOAD_ADMIN_TOKEN", help="bearer token for /admin/* (prefer $OFFLOAD_ADMIN_TOKEN)"
    ),
    admin_token_file: Path = typer.Option(
        None, help="file holding the admin token (kept off the process list)"
    ),
    logs: Path = typer.Option(None, help="folder for the processes' logs (default: a temporary one)"),
    target: Path = typer.Option(None, help="target file: the service to start (default: the built-in one)"),
) -> None:
    """Start Redis, the API and the workers in the foreground; restart dead workers; Ctrl-C stops all."""
    try:
        spec, target_file = load_target(target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    log_dir = logs or Path(tempfile.mkdtemp(prefix="offload-bench-up-"))
    token = _admin_token(ctx, admin_token, admin_token_file)
    extra = {"OFFLOAD_ADMIN_TOKEN": token} if token else {}
    stack = Stack(
        log_dir, target=spec, target_dir=target_file.parent, workers=workers, work=WorkProfile(),
        redis_url=redis_url, api_port=port, extra_env=extra,
    )  # fmt: skip
    interrupt_on_sigterm()
    if stack.passwordless_redis:
        console.print(no_auth_warning(target_file))
    try:
        with console.status("starting Redis, the API and the workers"):
            stack.start()
    except StackError as exc:
        stack.stop(5)
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        stack.stop(5)
        raise
    url = stack.api_url
    if target is None:
        console.print(f"API      {url}   (docs {url}/docs, metrics {url}/metrics, health {url}/healthz)")
    else:
        console.print(f"API      {url}   (ready {url}{spec.ready_path}; target {target_file})")
    # the URL carries the embedded Redis's password: shown redacted, handed over in a 0600 file (issue 14.9)
    env_file = log_dir / "redis.env"
    _write_private(env_file, f"REDIS_URL={stack.redis_url}\n")
    console.print(f"Redis    {redact(stack.redis_url)}   (full URL in {env_file})")
    console.print(f"workers  {len(stack.workers)}   logs {log_dir}")
    with_target = f" --target {target_file}" if target is not None else ""
    console.print(
        f"load     set -a; . {env_file}; set +a; locust -f loadtests/ --config loadtests/locust.conf "
        f"--host {url}{with_target}   (web UI on http://127.0.0.1:8089, loopback only)"
    )
    console.print("Ctrl-C stops everything.")
    code = 0
    try:
        while True:
            time.sleep(1)
            if stack.api is not None and not stack.api.alive():
                console.print(f"error: the API exited ({stack.api.returncode}): {stack.api.log_tail(3)}")
                code = 1
                break
            for name in stack.restart_dead_workers():
                console.print(f"{name} died; started a replacement")
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping"):
            stack.stop()
        console.print("stopped")
    raise typer.Exit(code)
