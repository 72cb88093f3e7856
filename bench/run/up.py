"""`offload-bench up`: the stack in the foreground for interactive use (Locust web UI against it)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console

from bench.errors import UsageError, interrupt_on_sigterm
from bench.launch.stack import Stack, StackError
from service.settings import WorkProfile

console = Console(stderr=True, soft_wrap=True)  # paths must stay copyable: never hard-wrap them


def up_command(
    port: int = typer.Option(8000, help="API port on 127.0.0.1"),
    workers: int = typer.Option(1, min=0, max=64, help="arq worker processes"),
    redis_url: str = typer.Option(None, help="an external Redis (default: a private embedded one)"),
    admin_token: str = typer.Option(None, envvar="OFFLOAD_ADMIN_TOKEN", help="bearer token for /admin/*"),
    logs: Path = typer.Option(None, help="folder for the processes' logs (default: a temporary one)"),
) -> None:
    """Start Redis, the API and the workers in the foreground; restart dead workers; Ctrl-C stops all."""
    log_dir = logs or Path(tempfile.mkdtemp(prefix="offload-bench-up-"))
    extra = {"OFFLOAD_ADMIN_TOKEN": admin_token} if admin_token else {}
    stack = Stack(
        log_dir, workers=workers, work=WorkProfile(), redis_url=redis_url, api_port=port, extra_env=extra
    )
    interrupt_on_sigterm()
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
    console.print(f"API      {url}   (docs {url}/docs, metrics {url}/metrics, health {url}/healthz)")
    console.print(f"Redis    {stack.redis_url}")
    console.print(f"workers  {workers}   logs {log_dir}")
    console.print(
        f"load     locust -f loadtests/ --host {url} --redis-url {stack.redis_url}   (web UI on :8089)"
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
