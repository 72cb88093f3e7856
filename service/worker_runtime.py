"""The worker process's runtime around the job: arq's Worker made graceful, batch claims.

What it adds to arq (the job wrapper with retries and the DLQ is service/worker.py):
- arq's SIGTERM handling cancels run_job tasks at arbitrary awaits (the CancelledError traceback, exit 1,
  in-progress keys left with a ~310 s TTL). GracefulWorker stops claiming jobs, lets running ones finish for
  shutdown_grace_s, then cancels only the job coroutines (arq re-queues those cleanly) and lets the main
  loop return on its own, so nothing is cancelled mid-Redis-call.
- arq's in-progress TTL is job timeout + 10 s (310 s by default); here it is job_timeout_s + orphan_margin_s.
- arq claims one job per 4 round trips in its single main loop; GracefulWorker claims a batch per script call,
  and only while fewer jobs run than the adaptive limit that follows the loop's lag (service/worker_adapt.py,
  measured by service/worker_lag.py).
The finish and run_job's error handling are service/worker_finish.py; the per-process state the job reads and
the start/stop hooks (the heartbeat) are service/worker_state.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, Final

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from service.worker_adapt import ClaimLimit
from service.worker_conn import connect
from service.worker_finish import FinishingWorker
from service.worker_lag import LoopLag, install
from service.worker_state import WorkerState, claim_s

# a SIGTERMed worker exits within shutdown_grace_s + this, whatever Redis does (a watchdog thread ends the
# process); the jobs it could not finish run again when their claim expires
SHUTDOWN_MARGIN_S: Final = 10.0

# Claim jobs the way arq's start_jobs does (still in the queue, due, not in progress elsewhere -> set the
# in-progress key with the claim TTL), for a batch of ids in one round trip. Returns {id, score} pairs.
CLAIM_LUA: Final = """
local now, ttl, prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now and redis.call('EXISTS', prefix .. id) == 0 then
    redis.call('PSETEX', prefix .. id, ttl, '1')
    out[#out + 1] = {id, score}
  end
end
return out
"""

log = logging.getLogger("service.worker")


class GracefulWorker(FinishingWorker):
    """arq's Worker with a clean SIGTERM/SIGINT, a bounded orphan time, survival of Redis outages and a
    concurrency that follows its own loop lag."""

    def __init__(self, *, state: WorkerState, **kwargs: Any) -> None:
        super().__init__(state=state, **kwargs)
        # arq sets this to job timeout + 10 s; after SIGKILL the job re-runs when the key expires
        self.in_progress_timeout_s = claim_s(state.settings)
        self._slot_free = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._grace_deadline = 0.0
        self._outage_s = 0.0
        self._claim: Any = None
        cfg = state.settings
        self.lag = LoopLag()
        self.claims = ClaimLimit(cfg.max_jobs, cfg.loop_lag_bound_ms / 1000, cfg.adaptive_jobs)
        self._held_back = False  # claims waited on the limit during this control window
        self.lag.on_tick = self._on_tick
        state.lag_report = self.lag_report

    def _on_tick(self, _late_s: float) -> None:
        now = time.monotonic()
        if not self.claims.due(now):
            return
        held_back, self._held_back = self._held_back, self.job_counter >= self.claims.limit
        if self.claims.update(self.lag.take_window_max(), self.job_counter, held_back, now):
            self._slot_free.set()

    def lag_report(self) -> dict[str, Any]:
        """The loop lag since the last report, with the claim limit's range and the running jobs."""
        low, high = self.claims.take_range()
        return {
            **self.lag.take_interval(),
            "bound_ms": self.state.settings.loop_lag_bound_ms,
            "limit": self.claims.limit,
            "limit_low": low,
            "limit_high": high,
            "running": self.job_counter,
            "adaptive": self.claims.enabled,
        }

    def _on_job_done(self, epoch: int) -> Any:
        def done(_: object) -> None:
            self.claims.finished(epoch)
            self._release_sem_dec_counter_on_complete()

        return done

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_free.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim ready jobs in batches of free slots with one script call each, then start them.

        arq claims one job per WATCH/EXISTS/ZSCORE/MULTI sequence (4 round trips, in its single main loop),
        which caps a process near 1 / (4 RTT) jobs/s; the script does the same checks atomically per id.
        Waiting for a free slot here (not in arq's semaphore) lets a shutdown stop further claims.
        """
        pending = [j.decode() for j in job_ids]
        while pending:
            while self.job_counter >= self.claims.limit and self.allow_pick_jobs:
                self._held_back = True
                self._slot_free.clear()
                await self._slot_free.wait()
            if not self.allow_pick_jobs:
                return
            free = self.claims.limit - self.job_counter
            batch, pending = pending[:free], pending[free:]
            if self._claim is None:
                self._claim = self.pool.register_script(CLAIM_LUA)
            claimed = await self._claim(
                keys=[self.queue_name],
                args=[
                    int(time.time() * 1000),
                    int(self.in_progress_timeout_s * 1000),
                    in_progress_key_prefix,
                    *batch,
                ],
            )
            claimed_at = time.monotonic()
            for raw_id, raw_score in claimed:
                job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                self.claimed_at[job_id] = claimed_at
                await (
                    self.sem.acquire()
                )  # never blocks: job_counter < max_jobs < the semaphore's max_jobs + 1
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
                task.add_done_callback(self._on_job_done(self.claims.claimed(claimed_at)))
                self.tasks[job_id] = task

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            # arq would crash the process on the first failed poll; wait for Redis to come back instead
            self._outage_s = min(max(self._outage_s * 2, 0.1), 2.0)
            log.warning(
                "redis unavailable, retrying",
                extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": self._outage_s},
            )
            await asyncio.sleep(self._outage_s)
        else:
            self._outage_s = 0.0

    def _running(self) -> int:
        return sum(not t.done() for t in self.tasks.values())

    def handle_sig(self, signum: signal.Signals) -> None:
        """First signal: stop claiming, drain within the grace. A second one ends the grace now."""
        sig = signal.Signals(signum)
        if self._drain_task is not None:
            self._grace_deadline = 0.0
            log.info("second signal: cancelling running jobs now", extra={"signal": sig.name})
            return
        self.allow_pick_jobs = False
        self._start_watchdog(self.state.settings.shutdown_grace_s + SHUTDOWN_MARGIN_S)
        # burst mode with a budget of 0 makes arq's main loop wait for its tasks and return by itself
        self.burst = True
        self.max_burst_jobs = 0
        self._slot_free.set()
        self._grace_deadline = time.monotonic() + self.state.settings.shutdown_grace_s
        log.info(
            "shutdown: draining",
            extra={
                "signal": sig.name,
                "running": self._running(),
                "grace_s": self.state.settings.shutdown_grace_s,
            },
        )
        self._drain_task = self.loop.create_task(self._drain())

    def _start_watchdog(self, after_s: float) -> None:
        # a thread, not a task: it fires even when the loop is stuck (a hung Redis under some await)
        def expire() -> None:
            log.error(
                "shutdown: not finished within grace + margin, exiting now (unfinished jobs run again)",
                extra={"after_s": after_s},
            )
            logging.shutdown()
            os._exit(1)

        timer = threading.Timer(after_s, expire)
        timer.daemon = True
        timer.start()

    async def main(self) -> None:
        """arq's main loop on our own connection pool (bounded timeouts, keepalive), once Redis answers."""
        if self._pool is None:
            self._pool = await connect(self.state.settings)
        install(self.lag)
        self.lag.start()
        await super().main()

    async def _drain(self) -> None:
        while self._running() and time.monotonic() < self._grace_deadline:
            await asyncio.sleep(0.02)
        if not self._running():
            log.info("shutdown: all jobs finished", extra={"completed": self.jobs_complete})
            return
        self.state.hard_stop = True
        log.warning(
            "shutdown: grace over, cancelling jobs (they will run again)", extra={"running": self._running()}
        )
        cancelled: set[str] = set()
        while self._running():
            # cancel the job coroutines, not arq's run_job tasks: run_job then re-queues them and clears
            # their in-progress keys; jobs that start later see hard_stop and re-queue themselves
            for job_id, task in list(self.job_tasks.items()):
                if job_id not in cancelled:
                    cancelled.add(job_id)
                    task.cancel()
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Let the drain task end (it logs the outcome) before arq closes the pool."""
        if self._drain_task is not None and not self._drain_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        try:
            await super().close()
        finally:
            await self.lag.stop()
            install(None)
