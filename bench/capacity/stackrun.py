"""Steps back to back against one stack (issue 23): the API, Redis and workers start once per mode's search
(and once per worker count), and a settle phase between steps brings the stack back to idle.

Settle: the generator lets every request it sent finish (Locust's --stop-timeout is the bound), and the job
queue (ready, deferred, in progress) is waited on until it is empty, for at most `settle_s`. A stack that does
not go idle within the bound (requests the generator had to abandon, a backlog longer than the bound) is
restarted: a step never inherits the previous one's queue. Each step is still an ordinary run folder; its
summary.json (the numbers it is judged by) is written at once, its report after the search (build_reports).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path
from typing import Final

import redis
from rich.console import Console
from rich.progress import Progress

from bench.capacity.measure import abandoned, read_step, window_of
from bench.capacity.model import Settle, Step
from bench.capacity.runner import CpuSampler, StepFailed, StepInterrupted
from bench.capacity.verdict import Limits, judge
from bench.launch.stack import READY_TIMEOUT_S, Stack, StackError
from bench.run.command import target_section
from bench.run.config import RunConfig, target_of
from bench.run.loadrun import LoadError, run_mode
from runfolder.load import load_section
from runfolder.rundir import create_run_dir, update_run_json
from targets.trackers import make_tracker

POLL_S: Final = 0.1
QUIET_S: Final = 0.3  # the queue must stay empty this long (a worker's last finish lands after its ZREM)
# a backlog that will take longer than this to drain is not waited for: a fresh stack starts in ~3-5 s
RESTART_AFTER_S: Final = 8.0
ETA_AFTER_S: Final = 1.0  # the drain rate is read over this long before the wait is judged


class StepStack:
    """One stack for a run of steps (or an API started elsewhere: --host); a context manager."""

    def __init__(
        self,
        base: RunConfig,
        workers: int,
        log_dir: Path,
        settle_s: float,
        restart_after_s: float = RESTART_AFTER_S,
        worker_nice: int = 0,
    ) -> None:
        self.base, self.n_workers, self.log_dir, self.settle_s = base, workers, log_dir, settle_s
        self.worker_nice = worker_nice
        self.restart_after_s = restart_after_s
        self.target, self.target_file = target_of(base)
        self.stack: Stack | None = None
        self.inflight_left = (
            0  # requests of the last step the generator abandoned (the server may still run them)
        )
        self.starts = 0
        self.limits = Limits()

    def __enter__(self) -> StepStack:
        self._start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _start(self) -> None:
        if self.base.host is not None:
            return
        self.starts += 1
        log_dir = self.log_dir / f"start-{self.starts}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stack = Stack(
            log_dir, target=self.target, target_dir=self.target_file.parent, workers=self.n_workers,
            work=self.base.work, redis_url=self.base.redis_url, api_port=self.base.port, redis_dir=None,
            worker_nice=self.worker_nice,
        )  # fmt: skip
        try:
            self.stack.start()
        except StackError as exc:
            self.close()
            raise StepFailed(str(exc)) from None

    def close(self) -> None:
        """Stop the stack this object started (API, workers, then Redis)."""
        if self.stack is not None:
            stack, self.stack = self.stack, None
            stack.stop()

    def restart(self) -> None:
        """A fresh stack: new Redis, API and workers."""
        self.close()
        self._start()
        self.inflight_left = 0

    @property
    def host(self) -> str:
        """The API's base URL."""
        return self.base.host or (self.stack.api_url if self.stack else "")

    @property
    def redis_url(self) -> str | None:
        """The Redis the target's jobs go through (None: not watched)."""
        return self.base.redis_url or (self.stack.redis_url if self.stack else None)

    def queue_length(self) -> int | None:
        """Jobs in the queue: ready, deferred and in progress (None: no queue to see).

        arq keeps them all in one sorted set (one ZCARD); another library's tracker (rq, celery, saq, ...)
        counts them from its own depth(): the same figures as the run's depth plot."""
        jobs = self.target.jobs
        if self.redis_url is None or jobs.tracker in ("http", "none"):
            return None
        if jobs.tracker in ("records", "arq"):
            client = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
            try:
                count: int = client.zcard(jobs.queue)  # type: ignore[assignment]  # sync client
                return int(count)
            except redis.RedisError:
                return None
            finally:
                client.close()
        try:
            tracker = make_tracker(jobs, self.redis_url, self.host)
        except (ImportError, ValueError):  # a missing library was refused before the first step
            return None
        try:
            depth = tracker.depth()
        except redis.RedisError:
            return None
        finally:
            tracker.close()
        return None if depth is None else depth["ready"] + depth["deferred"] + depth["in_progress"]

    def settle(self) -> Settle:
        """Wait (at most settle_s) until the previous step's requests and jobs are gone; restart the stack when
        they are not, or when the backlog drains too slowly to be worth waiting for (a stack we started)."""
        t0 = time.monotonic()
        queue = left = self.queue_length()
        quiet_since: float | None = None
        eta = 0.0
        while queue is not None:
            now = time.monotonic()
            if queue == 0:
                quiet_since = quiet_since or now
                if now - quiet_since >= QUIET_S:
                    break
            else:
                quiet_since = None
                if now - t0 >= self.settle_s:
                    break
                if now - t0 >= ETA_AFTER_S and self.stack is not None and left:
                    drained = (left - queue) / (now - t0)
                    eta = queue / drained if drained > 0 else float("inf")
                    if eta > self.restart_after_s:
                        break
            time.sleep(POLL_S)
            queue = self.queue_length()
        note, restarted = "", False
        if queue or self.inflight_left:
            why = f"{queue} job(s) still queued" if queue else f"{self.inflight_left} request(s) abandoned"
            if self.stack is not None:
                waited = time.monotonic() - t0
                slow = f" (~{eta:.0f} s more to drain)" if queue and eta > self.restart_after_s else ""
                note = f"{why} after {waited:.1f} s{slow}: the stack was restarted"
                self.restart()
                restarted, queue = True, self.queue_length()
            else:
                note = f"{why} after {self.settle_s:g} s (an API started elsewhere: not restarted)"
        if self.stack is not None:
            dead = self.stack.restart_dead_workers()
            if dead:
                note = "; ".join(filter(None, [note, f"restarted dead worker(s) {', '.join(dead)}"]))
                # n workers means n worker commands up, whatever the library: the next step starts once each
                # replacement shows it is up (its library's own sign, as at the stack's start)
                try:
                    self.stack.wait_ready(READY_TIMEOUT_S)
                except StackError as exc:
                    raise StepFailed(f"a restarted worker did not come up: {exc}") from None
            if self.stack.api is not None and not self.stack.api.alive():
                raise StepFailed("the API exited between steps (see its log in the stack's folder)")
        waited = round(time.monotonic() - t0, 2)
        return Settle(
            waited_s=waited,
            queue_left=left,
            inflight=self.inflight_left,
            queue=queue,
            restarted=restarted,
            note=note,
        )

    def run_step(
        self, mode: str, rate: float, percentile: str, offload_like: bool, index: int, duration_s: float
    ) -> Step:
        """Settle, then run mode at rate for duration_s as an ordinary run folder; the judged step."""
        settle = self.settle()
        base = self.base
        cfg = base.model_copy(update={
            "modes": [mode], "arrival_rate": rate, "workers": self.n_workers, "seed": base.seed + index,
            "duration_s": duration_s,
            # the generator waits for the requests it sent (bounded): none is left running in the server
            "locust_args": [*base.locust_args, "--stop-timeout", f"{self.settle_s:g}"],
        })  # fmt: skip
        run_dir = create_run_dir(cfg.out)
        update_run_json(run_dir, {
            "load": load_section(cfg), "work_profile": cfg.work.model_dump(),
            "workers": cfg.workers if cfg.host is None else None,
            "redis": "external" if cfg.redis_url else ("unknown" if cfg.host else "embedded"),
            "config": json.loads(cfg.model_dump_json()),
            "target": target_section(cfg, self.target, self.target_file),
            "stack": {"api_url": self.host, "redis_url": self.redis_url, "shared": True,
                      "settle": settle.model_dump(mode="json")},
        })  # fmt: skip
        log = io.StringIO()
        sampler = CpuSampler(roles=self._roles)
        status = "interrupted"
        try:
            with sampler.running(), contextlib.redirect_stdout(log):
                with Progress(console=Console(file=log, width=140, soft_wrap=True)) as progress:
                    run_mode(cfg, mode, self.host, run_dir, self.redis_url, progress)
            status = "complete"
        except KeyboardInterrupt:
            raise StepInterrupted(str(run_dir)) from None
        except LoadError as exc:
            status = "partial"
            raise StepFailed(str(exc)) from None
        finally:
            update_run_json(run_dir, {"status": status, "finished_ts": time.time()})
            self._copy_logs(run_dir)
            (run_dir / "logs" / "run-output.txt").write_text(log.getvalue())
        from analysis.report import write_summary  # pandas and friends only once a step has run

        write_summary(run_dir)
        self.inflight_left = abandoned(run_dir, mode)
        step, self.limits = read_step(run_dir, mode, rate, percentile)
        window = window_of(run_dir, mode)
        cpu = sampler.mean(*window) if window is not None else None
        other = sampler.other_cores(*window) if window is not None else None
        cores = sampler.role_cores(*window) if window is not None else None
        step = step.model_copy(update={
            "workers": self.n_workers if base.host is None else None, "machine_cpu_percent": cpu,
            "workers_nice": self.worker_nice if self.stack is not None and self.stack.n_workers else None,
            "other_cores": None if other is None else round(other, 3), "cores": cores,
            "duration_s": duration_s, "settle": settle,
        })  # fmt: skip
        return judge(step, self.limits, offload_like)

    def _roles(self) -> dict[str, list[int]]:
        """The pids of the stack's processes by role, for the CPU sampler (read at each sample: a worker
        restarted between samples is counted from the next one)."""
        stack = self.stack
        if stack is None:
            return {}
        redis_proc = stack.redis.proc if stack.redis is not None else None
        api = [stack.api.pid] if stack.api is not None and stack.api.pid is not None else []
        return {
            "api": api,
            "redis": [redis_proc.pid] if redis_proc is not None else [],
            "workers": [w.pid for w in list(stack.workers) if w.pid is not None],
        }

    def _copy_logs(self, run_dir: Path) -> None:
        """The stack's logs so far into the step's folder (the analysis reads the workers' loop lag there,
        cut to the step's window)."""
        (run_dir / "logs").mkdir(exist_ok=True)
        if self.stack is None:
            return
        for path in self.stack.log_dir.glob("*.log"):
            with contextlib.suppress(OSError):
                shutil.copyfile(path, run_dir / "logs" / path.name)


def build_reports(run_dirs: list[Path], progress: Progress | None = None) -> None:
    """Each step's report (report.md, report.html, plots/), after the search: not between steps."""
    from analysis.report import build_report

    task = progress.add_task("step reports", total=len(run_dirs)) if progress is not None else None
    for run_dir in run_dirs:
        with contextlib.suppress(Exception):  # a report is an extra: the step's numbers are already judged
            build_report(run_dir)
        if progress is not None and task is not None:
            progress.update(task, advance=1)
