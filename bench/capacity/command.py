"""`offload-bench capacity`: per mode, the highest rate that holds the 100 ms / 1000 ms targets; per worker
count, the job rate; the USL fit; written to <out>/<id>/ (capacity.json, capacity.md, capacity.html, plots/).
With --repeat N the whole search runs N times (<out>/<id>/search-<i>/) and <out>/<id>/ holds the first
search's result with each quoted figure's median and spread (`repeat`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bench.capacity.config import CapacityConfig, CapacityConfigError, make_config, parse_workers
from bench.capacity.model import CapacityResult, ModeResult
from bench.capacity.runner import StepFailed, StepInterrupted
from bench.errors import UsageError, interrupt_on_sigterm
from bench.run.command import preflight
from bench.run.config import ConfigError, RunConfig, job_modes, load_config, parse_duration_s
from runfolder.rundir import new_run_id, run_metadata

# the search, its results and reports need numpy, pandas and matplotlib (~1-2 s of imports): they are imported
# inside the functions that run a search, so `offload-bench --help`, gate, baseline, dlq and report start
# without them; here only the session's type is needed
if TYPE_CHECKING:
    from bench.capacity.session import Session

console = Console(stderr=True, soft_wrap=True)
# a step does not wait for a backlog: its growth is the measurement, pending jobs are reconciled (and the
# settle before the next step waits for them, or restarts the stack)
DRAIN_S = 1.0


def _base_run_config(cfg: CapacityConfig, steps_dir: Path) -> RunConfig:
    overrides: dict[str, Any] = {
        "duration_s": cfg.step_duration_s, "warmup_s": cfg.warmup, "drain_timeout_s": DRAIN_S,
        "processes": cfg.processes, "max_in_flight": cfg.max_in_flight, "host": cfg.host, "out": steps_dir,
        "redis_url": cfg.redis_url,
        "workers": min(cfg.workers), "modes": cfg.modes, "work": {},
    }  # fmt: skip
    if cfg.target is not None:
        overrides["target"] = cfg.target
    try:
        return load_config(None, overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _result(session: Session, cap_dir: Path, status: str, extra_notes: list[str]) -> CapacityResult:
    from bench.capacity.result import assemble, headline, mode_result

    cfg = session.cfg
    modes: dict[str, ModeResult] = {
        m: mode_result(m, cfg.percentile, s, m in session.job_modes, _limits_ms())
        for m, s in session.searches.items()
        if s.steps
    }
    res = CapacityResult(
        id=cap_dir.name, created_ts=time.time(), status=status,
        meta=run_metadata(), config=cfg.model_dump(mode="json"), modes=modes,
    )  # fmt: skip
    # "at R req/s you need N workers" for the rates each mode holds (noop, the floor, creates no work)
    need_rates = [
        r
        for name, m in modes.items()
        if name != "noop"
        for r in (m.max_rate.ok, m.max_rate.fast)
        if r is not None
    ]
    meta_cores = res.meta.get("cpu_count")
    res = assemble(res, session.workers, meta_cores if isinstance(meta_cores, int) else None, need_rates)
    res.validity.notes += extra_notes
    res.validity.valid = not res.validity.notes
    res.headline = headline(res, *_limits_ms())
    res.wall_s = round(time.monotonic() - session.started, 1)
    return res


def _limits_ms() -> tuple[float, float]:
    """(fast_ms, slow_ms): the analysis thresholds every step was judged by."""
    from analysis.config import load_thresholds

    th = load_thresholds()
    return th.fast_ms, th.slow_ms


def _one_search(
    cfg: CapacityConfig, base: RunConfig, out_dir: Path, progress: Progress, jobs_side: set[str]
) -> tuple[CapacityResult, int]:
    """One whole search into out_dir: (its result, written; exit code)."""
    from bench.capacity.render import write_outputs
    from bench.capacity.session import Session
    from bench.capacity.stackrun import build_reports

    session = Session(cfg, base, out_dir, progress, console)
    session.job_modes = jobs_side
    status, code, notes = "complete", 0, []
    try:
        for i, mode in enumerate(base.modes):
            session.search_mode(mode, len(base.modes) - i)
        offload = [m for m in base.modes if m in session.job_modes]
        if offload and cfg.host is None:
            session.measure_workers(offload[0])
        session.resume()
    except (KeyboardInterrupt, StepInterrupted):
        status, code = "interrupted", 130
        notes.append("interrupted (Ctrl-C): the step under way was dropped; the others are kept")
    except StepFailed as exc:
        status, code = "partial", 1
        notes.append(f"a step failed: {exc}")
    if session.current in session.searches:
        session.searches[session.current].cut_by = "interrupted"
    if code != 130:  # after Ctrl-C, out at once: `offload-bench report DIR` builds a step's report later
        build_reports(session.run_dirs, progress)
    res = _result(session, out_dir, status, notes)
    write_outputs(res, out_dir, *_limits_ms())
    return res, code


def capacity_command(
    modes: str = typer.Option(None, help="comma-separated modes to search (default: all)"),
    target: Path = typer.Option(None, help="a target file (TOML): the service to start and its requests"),
    host: str = typer.Option(None, help="an API already running at this URL (its API side only)"),
    redis_url: str = typer.Option(None, help="with --host: the service's Redis, to watch its job side too"),
    percentile: str = typer.Option("p95", help="the percentile judged against 100 ms / 1000 ms"),
    step_duration: str = typer.Option(
        "20s", help="the longest a step lasts (whole seconds; its length comes from the samples it needs)"
    ),
    warmup: str = typer.Option(None, help="excluded from each step (default: 1s)"),
    min_rate: float = typer.Option(10.0, help="first rate tried, req/s"),
    max_rate: float = typer.Option(5000.0, help="highest rate tried, req/s"),
    workers: str = typer.Option("1,2", help="worker counts whose job rate is measured, e.g. 1,2,4"),
    processes: int = typer.Option(
        1, help="Locust load processes (add some when steps are generator-limited)"
    ),
    max_in_flight: int = typer.Option(1000, help="open model: cap on requests in flight"),
    max_steps: int = typer.Option(20, help="at most this many steps per mode (the --budget usually ends it)"),
    factor: float = typer.Option(4.0, help="exponential phase: multiply the rate by this per step"),
    precision: float = typer.Option(1.10, help="narrow each bracket until high <= PRECISION x low"),
    budget: str = typer.Option("6m", help="wall time of one whole search, e.g. 6m, 15m"),
    repeat: int = typer.Option(1, help="run the whole search N times: each figure's median and spread"),
    out: Path = typer.Option(Path("reports/capacity"), help="capacity results go to OUT/<id>/"),
) -> None:
    """Find where each mode stops holding 100 ms / 1000 ms, and how many workers keep up."""
    try:
        cfg = make_config({
            "modes": [m.strip() for m in modes.split(",") if m.strip()] if modes is not None else None,
            "target": target, "host": host, "redis_url": redis_url, "percentile": percentile,
            "step_duration_s": parse_duration_s(step_duration),
            "warmup_s": parse_duration_s(warmup) if warmup is not None else None,
            "min_rate": min_rate, "max_rate": max_rate, "workers": parse_workers(workers),
            "processes": processes, "max_in_flight": max_in_flight, "max_steps": max_steps, "factor": factor, "out": out,
            "precision": precision, "budget_s": parse_duration_s(budget), "repeat": repeat,
        })  # fmt: skip
    except (CapacityConfigError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    cap_dir = cfg.out / new_run_id()
    base = _base_run_config(cfg, cap_dir / "steps")
    preflight(base)
    interrupt_on_sigterm()
    cap_dir.mkdir(parents=True)
    console.print(f"capacity folder: {cap_dir}")
    if cfg.host:
        console.print("--host: the API side only (the workers of an API started elsewhere are not measured)")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    try:
        jobs_side = set(job_modes(base))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if jobs_side and cfg.host and not base.redis_url:
        # the job side is watched through the service's Redis: without it only the API side is measured
        console.print(
            f"{', '.join(sorted(jobs_side))}: API side only (give --redis-url to watch the jobs too)"
        )
        jobs_side = set()
    results: list[CapacityResult] = []
    folders: list[Path] = []
    code = 0
    with Progress(*columns, console=console) as progress:
        for i in range(cfg.repeat):
            out_dir = cap_dir if cfg.repeat == 1 else cap_dir / f"search-{i + 1}"
            if cfg.repeat > 1:
                console.rule(f"search {i + 1} of {cfg.repeat}")
            search_base = base.model_copy(update={"out": out_dir / "steps"})
            res, code = _one_search(cfg, search_base, out_dir, progress, jobs_side)
            results.append(res)
            folders.append(out_dir)
            if cfg.repeat > 1:
                for line in res.headline:
                    console.print(f"  {line}", highlight=False)
            if code == 130:
                break
    res = results[0]
    if cfg.repeat > 1:
        from bench.capacity.render import write_outputs
        from bench.capacity.repeat import aggregate, repeat_lines

        rep = aggregate(results, [str(f) for f in folders])
        notes = [f"search {k + 1}: {n}" for k, r in enumerate(results) for n in r.validity.notes]
        validity = res.validity.model_copy(update={"notes": notes, "valid": not notes and code == 0})
        res = res.model_copy(update={"id": cap_dir.name, "repeat": rep, "validity": validity,
                                     "headline": [*res.headline, *repeat_lines(rep)]})  # fmt: skip
        write_outputs(res, cap_dir, *_limits_ms())
    for line in res.headline:
        typer.echo(line)
    for note in res.validity.notes:
        console.print(f"  - {note}", highlight=False)
    if res.status != "complete" or code:
        console.print(
            f"{res.status if code != 130 else 'interrupted'}: what was measured is kept in {cap_dir}"
        )
    console.print(
        f"capacity: {cap_dir / 'capacity.html'}  (also capacity.md, capacity.json, plots/, "
        + ("search-*/)" if cfg.repeat > 1 else "steps/)")
    )
    raise typer.Exit(code)
