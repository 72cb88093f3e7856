"""`offload-bench capacity`: per mode, the highest rate that holds the 100 ms / 1000 ms targets; per worker
count, the job rate; the USL fit; written to <out>/<id>/ (capacity.json, capacity.md, capacity.html, plots/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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
from bench.capacity.measure import loop_lag_text
from bench.capacity.model import CapacityResult, ModeResult, WorkerPoint
from bench.capacity.render import write_outputs
from bench.capacity.result import assemble, headline, mode_result, rate_text
from bench.capacity.runner import StepFailed, StepInterrupted, run_step
from bench.capacity.search import Search
from bench.errors import UsageError, interrupt_on_sigterm
from bench.run.command import preflight
from bench.run.config import ConfigError, RunConfig, job_modes, load_config, parse_duration_s
from runfolder.rundir import new_run_id, run_metadata

console = Console(stderr=True, soft_wrap=True)
DRAIN_S = (
    2.0  # a step does not wait for a backlog: its growth is the measurement, pending jobs are reconciled
)
# a worker step offers n x 2 x the job rate one worker completed when it fell behind in the search (which a
# short step understates): above what n workers can do (scaling is at most linear), and no more API and
# generator load than needed, which would take CPU from them
SATURATE = 2.0
# a worker step is this many search steps long: its completion rate is measured after the start-up, and a
# steadier rate is worth a few seconds (the job side's capacity and the USL fit come from it)
WORKER_STEP_FACTOR = 2.0


def _bracket_text(search: Search) -> str:
    parts = []
    for name, b in search.brackets().items():
        if b.low is None and b.high is None:
            continue
        low = rate_text(b.low) if b.low is not None else "-"
        high = rate_text(b.high) if b.high is not None else "…"
        parts.append(f"{name} [{low}, {high})")
    return " ".join(parts)


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


class _Session:
    """The state of one capacity command: searches so far, worker points, progress."""

    def __init__(self, cfg: CapacityConfig, base: RunConfig, progress: Progress) -> None:
        self.cfg, self.base, self.progress = cfg, base, progress
        self.searches: dict[str, Search] = {}
        self.workers: dict[int, WorkerPoint] = {}
        self._steps = 0
        self.job_modes: set[str] = set()

    def _index(self) -> int:
        self._steps += 1
        return self._steps

    def search_mode(self, mode: str) -> None:
        cfg = self.cfg
        jobs = mode in self.job_modes
        targets = ("fast", "ok", "jobs") if jobs else ("fast", "ok")
        # the job side is judged at every step; its capacity comes from the saturated worker steps after it
        # (bisecting a backlog's growth near the workers' rate would need long steps to see it)
        narrow = ("fast", "ok") if jobs and cfg.host is None else None
        search = Search(
            cfg.min_rate, cfg.max_rate, targets, cfg.precision, cfg.factor, cfg.max_steps, narrow=narrow
        )
        self.searches[mode] = search
        task = self.progress.add_task(f"{mode:>7}: starting", total=cfg.max_steps)
        while (rate := search.next_rate()) is not None:
            what = (
                f"{mode:>7}: step {len(search.steps) + 1} at {rate_text(rate)} req/s  {_bracket_text(search)}"
            )
            self.progress.update(task, description=what)
            step = run_step(
                self.base,
                mode,
                rate,
                cfg.percentile,
                (mode in self.job_modes),
                min(cfg.workers),
                self._index(),
            )
            search.record(step)
            self.progress.update(task, advance=1)
            console.print(f"  {mode} {rate_text(rate)} req/s: {step.reason}", highlight=False)
        self.progress.update(task, total=len(search.steps), completed=len(search.steps),
                             description=f"{mode:>7}: done  {_bracket_text(search)}")  # fmt: skip

    def saturating_rate(self, mode: str, n: int) -> float:
        """An arrival rate above what n workers can complete, within what the API accepts."""
        s = self.searches.get(mode)
        # one worker completes about what it completed in the lowest-rate search step where it fell behind
        # (higher rates take its CPU for the API and the generator, and a worker running many jobs at once
        # finishes them in bursts a short step can catch or miss), and at least the arrivals it kept up with
        steps = s.steps if s else []
        grew = sorted((st for st in steps if st.backlog_growing and st.job_rate), key=lambda st: st.rate)
        done = [grew[0].job_rate] if grew and grew[0].job_rate else []
        done += [st.arrival_rate for st in steps if st.backlog_growing is False and st.arrival_rate]
        b = s.brackets() if s else {}
        jobs = b.get("jobs")
        one = max(done) if done else ((jobs.high or jobs.low) if jobs else None)
        rate = SATURATE * n * (one or self.cfg.min_rate)
        api = b.get("ok")
        if api is not None and api.low is not None:
            rate = min(rate, api.low)
        return min(rate, self.cfg.max_rate)

    def measure_workers(self, mode: str) -> None:
        task = self.progress.add_task("workers: starting", total=len(self.cfg.workers))
        duration = float(round(WORKER_STEP_FACTOR * self.cfg.step_duration_s))
        for n in self.cfg.workers:
            rate = self.saturating_rate(mode, n)
            self.progress.update(
                task,
                description=f"workers: {n} worker(s), {rate_text(rate)} req/s of {mode} for {duration:g}s",
            )
            step = run_step(self.base, mode, rate, self.cfg.percentile, True, n, self._index(), duration)
            self.workers[n] = WorkerPoint(max_job_rate=step.job_rate, offered_rate=rate,
                                          machine_cpu_percent=step.machine_cpu_percent, step=step)  # fmt: skip
            if step.backlog_growing is None:
                state = f"not judged: {step.backlog_note}"
            else:
                state = (
                    "backlog grew: saturated" if step.backlog_growing else "backlog bounded: a lower bound"
                )
            lag = loop_lag_text(Path(step.run_dir), mode) if step.run_dir else ""
            console.print(
                f"  {n} worker(s): {rate_text(step.job_rate or 0)} jobs/s done ({state})"
                + (f"; {lag}" if lag else ""),
                highlight=False,
            )
            self.progress.update(task, advance=1)


def _result(session: _Session, cap_dir: Path, status: str, extra_notes: list[str]) -> CapacityResult:
    cfg = session.cfg
    modes: dict[str, ModeResult] = {
        m: mode_result(m, cfg.percentile, s, m in session.job_modes)
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
    return res


def _limits_ms() -> tuple[float, float]:
    """(fast_ms, slow_ms): the analysis thresholds every step was judged by."""
    from analysis.config import load_thresholds

    th = load_thresholds()
    return th.fast_ms, th.slow_ms


def capacity_command(
    modes: str = typer.Option(None, help="comma-separated modes to search (default: all)"),
    target: Path = typer.Option(None, help="a target file (TOML): the service to start and its requests"),
    host: str = typer.Option(None, help="an API already running at this URL (its API side only)"),
    redis_url: str = typer.Option(None, help="with --host: the service's Redis, to watch its job side too"),
    percentile: str = typer.Option("p95", help="the percentile judged against 100 ms / 1000 ms"),
    step_duration: str = typer.Option("6s", help="load time of each step (whole seconds), e.g. 6s, 20s"),
    warmup: str = typer.Option(None, help="excluded from each step (default: a fifth of it, at most 5s)"),
    min_rate: float = typer.Option(10.0, help="first rate tried, req/s"),
    max_rate: float = typer.Option(5000.0, help="highest rate tried, req/s"),
    workers: str = typer.Option("1,2", help="worker counts whose job rate is measured, e.g. 1,2,4"),
    processes: int = typer.Option(
        1, help="Locust load processes (add some when steps are generator-limited)"
    ),
    max_in_flight: int = typer.Option(1000, help="open model: cap on requests in flight"),
    max_steps: int = typer.Option(8, help="at most this many steps per mode"),
    factor: float = typer.Option(4.0, help="exponential phase: multiply the rate by this per step"),
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
    status, code, notes = "complete", 0, []
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
    with Progress(*columns, console=console) as progress:
        session = _Session(cfg, base, progress)
        session.job_modes = jobs_side
        try:
            for mode in base.modes:
                session.search_mode(mode)
            offload = [m for m in base.modes if m in session.job_modes]
            if offload and cfg.host is None:
                session.measure_workers(offload[0])
        except (KeyboardInterrupt, StepInterrupted):
            status, code = "interrupted", 130
            notes.append("interrupted (Ctrl-C): the step under way was dropped; the others are kept")
        except StepFailed as exc:
            status, code = "partial", 1
            notes.append(f"a step failed: {exc}")
    res = _result(session, cap_dir, status, notes)
    paths = write_outputs(res, cap_dir, *_limits_ms())
    for line in res.headline:
        typer.echo(line)
    for note in res.validity.notes:
        console.print(f"  - {note}", highlight=False)
    if status != "complete":
        console.print(f"{status}: what was measured is kept in {cap_dir}")
    console.print(f"capacity: {paths['html']}  (also capacity.md, capacity.json, plots/, steps/)")
    raise typer.Exit(code)
