"""`offload-bench run`: start the stack, run Locust once per mode, drain, collect, analyse, print."""

from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bench.errors import UsageError, interrupt_on_sigterm, signals_deferred
from bench.launch.redis_server import port_in_use
from bench.launch.shell import http_status
from bench.launch.stack import Stack, StackError, TargetStartError, check_redis
from bench.launch.startfail import no_auth_warning
from bench.run.config import ConfigError, RunConfig, job_modes, load_config, target_of
from bench.run.faults import REDIS_FAULTS, Fault, FaultError, FaultInjector, parse_fault, rate_overrides
from bench.run.loadrun import LoadError, run_mode
from bench.run.options import overrides, run_parameters
from bench.run.results import print_results
from runfolder.load import load_section
from runfolder.rundir import create_run_dir, update_run_json
from runfolder.schema import FAULTS_FILE
from targets import Target

console = Console(stderr=True, soft_wrap=True)  # paths must stay copyable: never hard-wrap them


def preflight(cfg: RunConfig) -> None:
    """Usage errors found before anything starts: a busy port, an unreachable Redis or host, a bad target."""
    try:
        target, _ = target_of(cfg)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if cfg.port and port_in_use(cfg.port):
        raise UsageError(f"port {cfg.port} is already in use (pick another with --port, or 0 for a free one)")
    try:
        if cfg.redis_url:
            check_redis(cfg.redis_url)
    except StackError as exc:
        raise UsageError(str(exc)) from None
    if cfg.host:
        if http_status(cfg.host + target.ready_path, timeout_s=3) == 0:
            raise UsageError(f"the API at {cfg.host} does not answer (GET {target.ready_path})")


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
    if faults and not job_modes(cfg):
        raise UsageError(
            "--fault acts during the offload phase: add an offload-like mode (one with job_id) to --modes"
        )
    needs_stack = [f.name for f in faults if f.name.startswith(("worker-", "redis-", "api-"))]
    if needs_stack and cfg.host:
        raise UsageError(f"--fault {needs_stack[0]} needs the stack this command starts (drop --host)")
    on_redis = [name for name in needs_stack if name in REDIS_FAULTS]
    if on_redis and cfg.redis_url:
        raise UsageError(f"--fault {on_redis[0]} needs the embedded Redis (drop --redis-url)")
    return faults


def fault_phase(cfg: RunConfig) -> str:
    """The mode whose load faults hit: offload when selected, else the first offload-like mode."""
    jobs = job_modes(cfg)
    return "offload" if "offload" in jobs else (jobs[0] if jobs else "")


def target_section(cfg: RunConfig, target: Target, path: Path) -> dict[str, Any]:
    """run.json "target": which file was measured and what each mode sends."""
    return {
        "file": str(path),
        "builtin": cfg.target is None,
        "tracker": target.jobs.tracker,
        "starts": "url" if target.service.url else "api",
        # does the embedded Redis take a password ([service] redis_auth; None: not embedded)? Not named
        # *auth*: run.json is redacted, and a key naming a secret is masked
        "redis_requirepass": None if cfg.redis_url or cfg.host else target.service.redis_auth,
        "modes": {m: {"method": target.modes[m].method, "path": target.modes[m].path,
                      "job_id": target.modes[m].job_id} for m in cfg.modes},
    }  # fmt: skip


def run_once(cfg: RunConfig, faults: list[Fault], out: Console | None = None) -> tuple[Path, int]:
    """One full comparison into a new run folder; returns (run folder, exit code). Progress and results go
    to `out` (default: stderr; capacity gives each step a log of its own)."""
    out = out or console
    target, target_file = target_of(cfg)
    run_dir = create_run_dir(cfg.out)
    update_run_json(
        run_dir,
        {
            "load": load_section(cfg),
            "work_profile": cfg.work.model_dump(),
            "workers": cfg.workers if cfg.host is None else None,
            "redis": "external" if cfg.redis_url else ("unknown" if cfg.host else "embedded"),
            "config": json.loads(cfg.model_dump_json()),
            "target": target_section(cfg, target, target_file),
            # service settings set in the environment (e.g. OFFLOAD_INJECT_DELAY_MS, OFFLOAD_JOB_TIMEOUT_S)
            "service_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("OFFLOAD_")},
        },
    )  # fmt: skip
    out.print(f"run folder: {run_dir}")
    stack: Stack | None = None
    injector = FaultInjector(None, faults, fault_phase(cfg))
    status, code, error = "interrupted", 130, ""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as progress:
        try:
            if cfg.host is None:
                stack = Stack(
                    run_dir / "logs", target=target, target_dir=target_file.parent, workers=cfg.workers,
                    work=cfg.work, redis_url=cfg.redis_url, api_port=cfg.port, redis_dir=None,
                )  # fmt: skip
                if stack.passwordless_redis:
                    out.print(no_auth_warning(target_file))
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
        except TargetStartError as exc:  # the target's commands did not come up: a usage error
            status, code, error = "failed", 2, str(exc)
        except (StackError, LoadError) as exc:
            status, code, error = "partial", 1, str(exc)
        finally:
            with signals_deferred():  # a second Ctrl-C/SIGTERM cannot cut the stop short (issue 14.11)
                if faults:
                    records = injector.join()
                    # stored once, in faults.json (analysis reads run.json "faults" only from older folders)
                    (run_dir / FAULTS_FILE).write_text(json.dumps(records, indent=2) + "\n")
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
        # markup off: a log tail or a hint may hold [brackets] (e.g. "[service]") that rich would eat
        out.print(f"error: {error}; what was collected is kept in {run_dir}", markup=False)
    if summary:
        print_results(out, summary)
        out.print(f"report: {run_dir / 'report.html'}  (also report.md, summary.json)")
    return run_dir, code


RUN_CONTEXT = {"allow_extra_args": True}
RUN_EPILOG = "Extra Locust arguments go after `--`, e.g. `offload-bench run -- --stop-timeout 5`."


def run_command(ctx: typer.Context, **options: Any) -> None:
    """Run the sync-vs-offload comparison and write the report to reports/runs/<run-id>/."""
    config, given = overrides(options, list(ctx.args))
    try:
        cfg = load_config(config, given)
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


# The options are derived from RunConfig (one declaration per setting: runfolder/load.py, bench/run/config.py).
run_command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        *run_parameters(),
    ]
)
