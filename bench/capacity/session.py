"""One capacity search: per mode, steps back to back on one stack; per worker count, one saturated step; all
within a time budget spent where it decides (marginal steps repeated, brackets narrowed in turn)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.progress import Progress

from analysis.config import PERCENTILES
from bench.capacity.config import CapacityConfig
from bench.capacity.measure import loop_lag_text, pooled
from bench.capacity.model import Step, WorkerPoint, rate_text
from bench.capacity.plan import (
    CLIMB_FRACTION,
    CLIMB_MEASURED_S,
    combine,
    marginal,
    samples_needed,
    step_seconds,
)
from bench.capacity.search import SAME_RATE, Search
from bench.capacity.stackrun import StepStack
from bench.capacity.verdict import judge
from bench.run.config import RunConfig

# a worker step offers n x 2 x the job rate one worker completed when it fell behind in the search (which a
# short step understates): above what n workers can do (scaling is at most linear), and no more API and
# generator load than needed, which would take CPU from them
SATURATE: Final = 2.0
# a worker step that kept up is run again at SATURATE x its rate, on the same stack, at most this often in all
WORKER_TRIES: Final = 3
# beyond a step's load time: the generator's start and stop, the job export, the step's summary, the settle
STEP_OVERHEAD_S: Final = 4.0
STACK_START_S: Final = 4.0
REPORT_S: Final = 0.5  # one step's report (plots, html) after the search (measured: ~0.3 s)
# the longest a settle waits for the previous step's requests and jobs before the stack is restarted
SETTLE_S: Final = 20.0
SAFETY_S: Final = 10.0
# the workers' nice value while a mode's search measures the API: a worker draining a backlog that grows at
# hundreds of jobs/s took a chaotic share of the 2 cores (the same rate gave p95 3,864 ms, then 218 ms; offload's
# 100 ms capacity moved 1.3-1.4x between searches). At 19 it takes only the CPU the API, Redis and the generator
# leave, as a worker on its own machine would take none; the worker steps measure it at 0.
SEARCH_WORKER_NICE: Final = 19


def _bracket_text(search: Search) -> str:
    parts = []
    for name, b in search.brackets().items():
        if b.low is None and b.high is None:
            continue
        low = rate_text(b.low) if b.low is not None else "-"
        high = rate_text(b.high) if b.high is not None else "…"
        parts.append(f"{name} [{low}, {high})")
    return " ".join(parts)


class Session:
    """The state of one capacity search: searches so far, worker points, the budget, progress."""

    def __init__(
        self, cfg: CapacityConfig, base: RunConfig, cap_dir: Path, progress: Progress, console: Console
    ) -> None:
        self.cfg, self.base, self.cap_dir, self.progress, self.console = cfg, base, cap_dir, progress, console
        self.searches: dict[str, Search] = {}
        self.workers: dict[int, WorkerPoint] = {}
        self.job_modes: set[str] = set()
        self.started = time.monotonic()
        # a step can overrun its estimate (an overloaded step's requests drain after its load): kept in hand
        self.deadline = self.started + cfg.budget_s - min(SAFETY_S, cfg.budget_s / 10)
        self._steps = 0
        self.run_dirs: list[Path] = []
        self.current = ""  # the mode whose search is under way

    def _index(self) -> int:
        self._steps += 1
        return self._steps

    def step_seconds(self, rate: float, climbing: bool) -> float:
        """Load time of a search step at rate: enough tail samples for the judged percentile, bounded (by a
        15 % of the bound while the search still climbs: those steps are far from every limit)."""
        needed = samples_needed(PERCENTILES[self.cfg.percentile])
        top = self.cfg.step_duration_s
        if climbing:
            top = max(math.ceil(self.cfg.warmup + CLIMB_MEASURED_S), round(CLIMB_FRACTION * top))
            return step_seconds(rate, needed, self.cfg.warmup, top, CLIMB_MEASURED_S)
        return step_seconds(rate, needed, self.cfg.warmup, top)

    def _reserve_s(self, modes_left: int) -> float:
        """Time kept back for what comes after the searches: worker steps and the step reports."""
        worker_s = 0.0
        if self.job_modes and self.cfg.host is None:
            per = self.cfg.worker_step_s + STEP_OVERHEAD_S + STACK_START_S
            worker_s = per * len(self.cfg.workers)
        expected_steps = self._steps + modes_left * 8 + len(self.cfg.workers)
        return worker_s + REPORT_S * expected_steps

    def _record(self, run_dir: str | None) -> None:
        if run_dir:
            self.run_dirs.append(Path(run_dir))

    def search_mode(self, mode: str, modes_left: int) -> None:
        """Search one mode's capacities on one stack within its share of the budget."""
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
        now = time.monotonic()
        share = max(0.0, (self.deadline - now - self._reserve_s(modes_left)) / modes_left)
        self._run_search(mode, search, now + share, mode)

    def resume(self) -> None:
        """Spend what the first pass left on the brackets it cut short, the widest first (each on a new stack)."""
        cut = [(m, s) for m, s in self.searches.items() if s.cut_by == "budget"]
        cut.sort(key=lambda ms: -max((b.width or 1.0) for b in ms[1].brackets().values() if not b.complete))
        for mode, search in cut:
            deadline = self.deadline - REPORT_S * (self._steps + 2)
            rate = search.next_rate()
            if rate is None:
                continue
            duration = self.step_seconds(rate, search.climbing())
            if time.monotonic() + STACK_START_S + duration + STEP_OVERHEAD_S > deadline:
                continue
            search.cut_by = ""
            self._run_search(mode, search, deadline, f"{mode}-resumed")

    def _run_search(self, mode: str, search: Search, mode_deadline: float, stack_name: str) -> None:
        """Run search's steps on one stack until it is done or mode_deadline would be passed."""
        cfg = self.cfg
        jobs = mode in self.job_modes
        self.current = mode
        task = self.progress.add_task(f"{mode:>7}: starting", total=cfg.max_steps)
        stacks = self.cap_dir / "stacks" / stack_name
        with StepStack(
            self.base, min(cfg.workers), stacks, SETTLE_S, worker_nice=SEARCH_WORKER_NICE
        ) as stack:
            while (rate := search.next_rate()) is not None:
                duration = self.step_seconds(rate, search.climbing())
                if time.monotonic() + duration + STEP_OVERHEAD_S > mode_deadline and search.steps:
                    search.cut_by = "budget"
                    break
                what = f"{mode:>7}: step {len(search.steps) + 1} at {rate_text(rate)} req/s for {duration:g}s"
                self.progress.update(task, description=f"{what}  {_bracket_text(search)}")
                step = stack.run_step(mode, rate, cfg.percentile, jobs, self._index(), duration)
                self._record(step.run_dir)
                why = marginal(step, stack.limits, duration - cfg.warmup)
                if why and time.monotonic() + duration + STEP_OVERHEAD_S <= mode_deadline:
                    self.progress.update(task, description=f"{what}  (again: {why})")
                    again = stack.run_step(mode, rate, cfg.percentile, jobs, self._index(), duration)
                    self._record(again.run_dir)
                    first = step.model_copy(update={"marginal": why})
                    both = pooled([Path(d) for d in (step.run_dir, again.run_dir) if d], mode, cfg.percentile)
                    step = judge(combine(first, again, both), stack.limits, jobs)
                search.record(step)
                self.progress.update(task, advance=1)
                self._print_step(mode, step)
                self._recheck(mode, search, stack, mode_deadline)
        self.current = ""
        self.progress.update(task, total=len(search.steps), completed=len(search.steps),
                             description=f"{mode:>7}: done  {_bracket_text(search)}")  # fmt: skip

    def _recheck(self, mode: str, search: Search, stack: StepStack, mode_deadline: float) -> None:
        """Run again a failure a higher passing rate contradicts, while the mode's time allows; judge the rate
        on both runs pooled (as a marginal step)."""
        old = search.contradicted()
        if old is None or old.run_dir is None:
            return
        jobs = mode in self.job_modes
        duration = old.duration_s or self.step_seconds(old.rate, False)
        if time.monotonic() + duration + STEP_OVERHEAD_S > mode_deadline:
            return
        again = stack.run_step(mode, old.rate, self.cfg.percentile, jobs, self._index(), duration)
        self._record(again.run_dir)
        dirs = [Path(d) for d in (old.run_dir, again.run_dir) if d]
        first = old.model_copy(update={"marginal": "a higher rate passed"})
        step = judge(combine(first, again, pooled(dirs, mode, self.cfg.percentile)), stack.limits, jobs)
        search.replace(old, step)
        self._print_step(mode, step)

    def _print_step(self, mode: str, step: Step) -> None:
        extra = []
        if step.runs:
            extra.append(f"judged on 2 runs: {step.marginal}")
        if step.settle is not None and step.settle.note:
            extra.append(f"settle: {step.settle.note}")
        tail = f"  ({'; '.join(extra)})" if extra else ""
        self.console.print(f"  {mode} {rate_text(step.rate)} req/s: {step.reason}{tail}", highlight=False)

    def saturating_rate(self, mode: str, n: int) -> float:
        """An arrival rate above what n workers can complete, within what the API accepts."""
        s = self.searches.get(mode)
        # one worker completes about what it completed in the lowest-rate search step where it fell behind
        # (higher rates take its CPU for the API and the generator, and a worker running many jobs at once
        # finishes them in bursts a short step can catch or miss), and at least what any step saw it complete
        # (a 3 s step of ~2 s jobs shows a fraction of it: 8 of the 32 jobs/s a longer step saw) and the
        # arrivals it kept up with
        steps = s.steps if s else []
        grew = sorted((st for st in steps if st.backlog_growing and st.job_rate), key=lambda st: st.rate)
        done = [grew[0].job_rate] if grew and grew[0].job_rate else []
        done += [st.job_rate for st in steps if st.job_rate]
        done += [st.arrival_rate for st in steps if st.backlog_growing is False and st.arrival_rate]
        b = s.brackets() if s else {}
        jobs = b.get("jobs")
        one = max(done) if done else ((jobs.high or jobs.low) if jobs else None)
        return min(SATURATE * n * (one or self.cfg.min_rate), self.rate_cap(mode))

    def rate_cap(self, mode: str) -> float:
        """The highest rate a worker step offers: what the API holds (its ok bracket's low end) and --max-rate."""
        s = self.searches.get(mode)
        api = s.brackets().get("ok") if s else None
        top = api.low if api is not None and api.low is not None else math.inf
        return min(top, self.cfg.max_rate)

    def _time_for(self, duration: float, counts_left: int) -> bool:
        """Another worker step of duration fits before the deadline, with the worker counts still to measure
        and the step reports kept in hand."""
        per = duration + STEP_OVERHEAD_S
        left = self.deadline - time.monotonic() - REPORT_S * (self._steps + 2)
        return per + counts_left * (per + STACK_START_S) <= left

    def measure_workers(self, mode: str) -> None:
        """Per worker count, on a stack of its own: the jobs/s completed under a saturating arrival rate."""
        task = self.progress.add_task("workers: starting", total=len(self.cfg.workers))
        duration = self.cfg.worker_step_s
        for n in self.cfg.workers:
            rate = self.saturating_rate(mode, n)
            self.progress.update(
                task,
                description=f"workers: {n} worker(s), {rate_text(rate)} req/s of {mode} for {duration:g}s",
            )
            with StepStack(self.base, n, self.cap_dir / "stacks" / f"workers-{n}", SETTLE_S) as stack:
                for _ in range(WORKER_TRIES):
                    step = stack.run_step(mode, rate, self.cfg.percentile, True, self._index(), duration)
                    self._record(step.run_dir)
                    more = min(SATURATE * rate, self.rate_cap(mode))
                    # kept up: the workers were not saturated; offer more on the same stack while time allows
                    if (
                        step.backlog_growing is not False
                        or more <= rate * SAME_RATE
                        or not self._time_for(
                            duration, counts_left=len(self.cfg.workers) - self.cfg.workers.index(n) - 1
                        )
                    ):
                        break
                    self.console.print(
                        f"  {n} worker(s): kept up with {rate_text(rate)} req/s; again at {rate_text(more)}",
                        highlight=False,
                    )
                    rate = more
                    self.progress.update(
                        task, description=f"workers: {n} worker(s), {rate_text(rate)} req/s of {mode} again"
                    )
            self.workers[n] = WorkerPoint(max_job_rate=step.job_rate, offered_rate=rate,
                                          machine_cpu_percent=step.machine_cpu_percent, step=step)  # fmt: skip
            if step.backlog_growing is None:
                state = f"not judged: {step.backlog_note}"
            else:
                state = (
                    "backlog grew: saturated" if step.backlog_growing else "backlog bounded: a lower bound"
                )
            lag = loop_lag_text(Path(step.run_dir), mode) if step.run_dir else ""
            self.console.print(
                f"  {n} worker(s): {rate_text(step.job_rate or 0)} jobs/s done ({state})"
                + (f"; {lag}" if lag else ""),
                highlight=False,
            )
            self.progress.update(task, advance=1)
