"""`offload-bench run`: start the stack, run Locust once per mode, drain, collect, analyse, print."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bench.errors import UsageError, interrupt_on_sigterm
from bench.launch.redis_server import port_in_use
from bench.launch.stack import Stack, StackError, check_redis, http_get_json
from bench.run.config import ConfigError, RunConfig, load_config
from bench.run.faults import Fault, FaultError, FaultInjector, parse_fault, rate_overrides
from bench.run.loadrun import LoadError, run_mode
from bench.run.results import print_results
from runfolder.rundir import create_run_dir, update_run_json
from runfolder.schema import FAULTS_FILE

console = Console(stderr=True, soft_wrap=True)  # paths must stay copyable: never hard-wrap them


def preflight(cfg: RunConfig) -> None:
    """Usage errors found before anything starts: a busy port, an unreachable Redis or host."""
    if cfg.port and port_in_use(cfg.port):
        raise UsageError(f"port {cfg.port} is already in use (pick another with --port, or 0 for a free one)")
    try:
        if cfg.redis_url:
            check_redis(cfg.redis_url)
    except StackError as exc:
        raise UsageError(str(exc)) from None
    if cfg.host:
        status, _ = http_get_json(cfg.host + "/healthz", timeout_s=3)
        if status == 0:
            raise UsageError(f"the API at {cfg.host} does not answer (GET /healthz)")


def _analyse(run_dir: Path, progress: Progress) -> dict[str, Any] | None:
    from analysis.report import build_report  # heavy imports (pandas, matplotlib) only when needed

    task = progress.add_task("analysing", total=None)
    try:
        return build_report(run_dir)
    finally:
        progress.update(task, description="analysed", total=1, completed=1)


def _parse_faults(cfg: RunConfig) -> list[Fault]:
    try:
        faults = [parse_fault(spec, cfg.duration_s) for spec in cfg.faults]
    except FaultError as exc:
        raise UsageError(str(exc)) from None
    if faults and "offload" not in cfg.modes:
        raise UsageError("--fault acts during the offload phase: add offload to --modes")
    needs_stack = [f.name for f in faults if f.name.startswith(("worker-", "redis-"))]
    if needs_stack and cfg.host:
        raise UsageError(f"--fault {needs_stack[0]} needs the stack this command starts (drop --host)")
    if "redis-restart" in needs_stack and cfg.redis_url:
        raise UsageError("--fault redis-restart needs the embedded Redis (drop --redis-url)")
    return faults


def run_once(cfg: RunConfig, faults: list[Fault]) -> tuple[Path, int]:
    """One full comparison into a new run folder; returns (run folder, exit code)."""
    run_dir = create_run_dir(cfg.out)
    update_run_json(
        run_dir,
        {
            "load": {
                "model": cfg.model, "users": cfg.users, "spawn_rate": cfg.spawn_rate,
                "arrival_rate": cfg.arrival_rate, "arrival": cfg.arrival, "shape": cfg.shape,
                "duration_s": cfg.duration_s, "warmup_s": cfg.warmup_s, "processes": cfg.processes,
                "max_in_flight": cfg.max_in_flight, "seed": cfg.seed,
            },
            "work_profile": cfg.work.model_dump(),
            "workers": cfg.workers if cfg.host is None else None,
            "redis": "external" if cfg.redis_url else ("unknown" if cfg.host else "embedded"),
            "config": json.loads(cfg.model_dump_json()),
            # service settings set in the environment (e.g. OFFLOAD_INJECT_DELAY_MS, OFFLOAD_JOB_TIMEOUT_S)
            "service_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("OFFLOAD_")},
        },
    )  # fmt: skip
    console.print(f"run folder: {run_dir}")
    stack: Stack | None = None
    injector = FaultInjector(None, faults)
    status, code, error = "interrupted", 130, ""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        try:
            if cfg.host is None:
                stack = Stack(
                    run_dir / "logs", workers=cfg.workers, work=cfg.work,
                    redis_url=cfg.redis_url, api_port=cfg.port, redis_dir=None,
                )  # fmt: skip
                task = progress.add_task("starting the stack", total=None)
                stack.start(step=lambda msg: progress.update(task, description=msg))
                progress.update(task, description=f"stack up: API {stack.api_url}", total=1, completed=1)
                injector.stack = stack
                update_run_json(run_dir, {"stack": {"api_url": stack.api_url, "redis_url": stack.redis_url}})
            host = cfg.host or (stack.api_url if stack else "")
            redis_url = cfg.redis_url or (stack.redis_url if stack else None)
            for mode in cfg.modes:
                run_mode(cfg, mode, host, run_dir, redis_url, progress, on_tick=injector.tick)
            status, code = "complete", 0
        except KeyboardInterrupt:
            error = "interrupted: stopped every process this run started"
        except (StackError, LoadError) as exc:
            status, code, error = "partial", 1, str(exc)
        finally:
            if faults:
                records = injector.join()
                (run_dir / FAULTS_FILE).write_text(json.dumps(records, indent=2) + "\n")
                update_run_json(run_dir, {"faults": records})
            if stack is not None:
                task = progress.add_task("stopping the stack", total=None)
                stack.stop()
                progress.update(task, description="stack stopped", total=1, completed=1)
            update_run_json(run_dir, {"status": status, "finished_ts": time.time()})
        summary = None
        if any((run_dir / "samples").glob("*.csv")):
            try:
                summary = _analyse(run_dir, progress)
            except KeyboardInterrupt:
                code = 130
    if error:
        console.print(f"error: {error}; what was collected is kept in {run_dir}")
    if summary:
        print_results(console, summary)
        console.print(f"report: {run_dir / 'report.html'}  (also report.md, summary.json)")
    return run_dir, code


RUN_CONTEXT = {"allow_extra_args": True}
RUN_EPILOG = "Extra Locust arguments go after `--`, e.g. `offload-bench run -- --stop-timeout 5`."


def run_command(
    ctx: typer.Context,
    modes: str = typer.Option(None, help="comma-separated modes: noop,sync,offload"),
    users: int = typer.Option(None, help="closed model: concurrent users"),
    spawn_rate: float = typer.Option(None, help="closed model: users started per second"),
    arrival_rate: float = typer.Option(None, help="open model: requests/s (0 = closed model)"),
    arrival: str = typer.Option(None, help="open model arrivals: constant or poisson"),
    shape: str = typer.Option(None, help="load shape: constant, step, ramp, spike"),
    duration: str = typer.Option(None, help="load time per mode, e.g. 30s, 2m"),
    warmup: str = typer.Option(None, help="excluded from the numbers, e.g. 5s"),
    drain_timeout: str = typer.Option(None, help="how long to wait for the offload backlog, e.g. 60s"),
    max_in_flight: int = typer.Option(
        None, help="open model: cap on requests in flight (all load processes)"
    ),
    seed: int = typer.Option(None, help="seed of arrivals and payloads"),
    workers: int = typer.Option(None, help="arq worker processes"),
    processes: int = typer.Option(None, help="Locust load processes"),
    pages: int = typer.Option(None, help="work profile: pages per backfill"),
    io_ms: float = typer.Option(None, help="work profile: mean I/O wait per page"),
    cpu_ms: float = typer.Option(None, help="work profile: CPU per page"),
    transient_rate: float = typer.Option(None, help="work profile: transient failure rate"),
    poison_rate: float = typer.Option(None, help="work profile: poison rate"),
    redis_url: str = typer.Option(None, help="an external Redis (default: a private embedded one)"),
    host: str = typer.Option(None, help="an API already running at this URL: start nothing of the service"),
    port: int = typer.Option(None, help="API port (default: a free one)"),
    out: Path = typer.Option(None, help="where run folders go (default reports/runs)"),
    repeat: int = typer.Option(None, help="run the whole comparison N times (for the gate)"),
    fault: list[str] = typer.Option(None, help="inject a fault in the offload phase (repeatable)"),
    config: Path = typer.Option(
        None, help="TOML file with any of these options (default ./offload-bench.toml)"
    ),
) -> None:
    """Run the sync-vs-offload comparison and write the report to reports/runs/<run-id>/."""
    work = {
        k: v
        for k, v in {
            "pages": pages,
            "io_ms": io_ms,
            "cpu_ms": cpu_ms,
            "transient_rate": transient_rate,
            "poison_rate": poison_rate,
        }.items()
        if v is not None
    }
    overrides: dict[str, Any] = {
        "modes": [m.strip() for m in modes.split(",") if m.strip()] if modes is not None else None,
        "users": users, "spawn_rate": spawn_rate, "arrival_rate": arrival_rate, "arrival": arrival, "shape": shape,
        "duration_s": duration, "warmup_s": warmup,
        "drain_timeout_s": drain_timeout,
        "max_in_flight": max_in_flight,
        "seed": seed, "workers": workers, "processes": processes, "redis_url": redis_url,
        "host": host, "port": port, "out": out, "repeat": repeat, "faults": fault or None,
        "locust_args": list(ctx.args) or None, "work": work,
    }  # fmt: skip
    try:
        cfg = load_config(config, overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    faults = _parse_faults(cfg)
    if rate_overrides(faults):
        cfg.work = cfg.work.model_copy(update=rate_overrides(faults))
    preflight(cfg)
    interrupt_on_sigterm()
    codes = []
    for i in range(cfg.repeat):
        if cfg.repeat > 1:
            console.rule(f"repeat {i + 1} of {cfg.repeat}")
        _, code = run_once(cfg, faults)
        codes.append(code)
        if code == 130:
            break
    raise typer.Exit(max(codes))
