"""The worker process's runtime around the job: arq's Worker made graceful, batch claims.

What it adds to arq (the job wrapper with retries and the DLQ is service/worker.py):
- arq's SIGTERM handling cancels run_job tasks at arbitrary awaits (the CancelledError traceback, exit 1,
  in-progress keys left with a ~310 s TTL). GracefulWorker stops claiming jobs, lets running ones finish for
  shutdown_grace_s, then cancels only the job coroutines (arq re-queues those cleanly) and lets the main
  loop return on its own, so nothing is cancelled mid-Redis-call.
- arq's in-progress TTL is job timeout + 10 s (310 s by default); here it is job_timeout_s + orphan_margin_s.
- arq claims one job per 4 round trips in its single main loop; GracefulWorker claims a batch per script call.
The per-process state the job reads and the start/stop hooks (the heartbeat) are service/worker_state.py.
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

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.worker import Worker
from redis.exceptions import RedisError

from service import lifecycle
from service.parking import park_unrunnable
from service.worker_conn import connect
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

# arq's finish of a job that ended with nothing to keep (in-progress, retry and payload keys deleted; out of
# the abort set and the queue) and its lifecycle end, as one script: one command instead of MULTI, five
# commands and EXEC. KEYS[1..5] and ARGV are lifecycle.END_LUA's (ARGV[9] is the job id), KEYS[6..10] arq's.
FINISH_DONE_LUA: Final = (
    """
redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
redis.call('ZREM', KEYS[9], ARGV[9])
redis.call('ZREM', KEYS[10], ARGV[9])
"""
    + lifecycle.END_LUA
)

log = logging.getLogger("service.worker")


class GracefulWorker(Worker):
    """arq's Worker with a clean SIGTERM/SIGINT, a bounded orphan time and survival of Redis outages."""

    def __init__(self, *, state: WorkerState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        # arq sets this to job timeout + 10 s; after SIGKILL the job re-runs when the key expires
        self.in_progress_timeout_s = claim_s(state.settings)
        self._slot_free = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._grace_deadline = 0.0
        self._outage_s = 0.0
        self._claim: Any = None

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's finish plus the job's lifecycle end (a success), atomically, in one round trip.

        A finished job with no result to keep (our worker's case) is one script (FINISH_DONE_LUA); any other
        finish is arq 0.28's Worker.finish_job transaction with the lifecycle end added to its MULTI/EXEC.
        """
        end = self.state.finish_ends.pop(job_id, None)
        if end is None:
            await super().finish_job(
                job_id,
                finish,
                result_data,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            return
        end_keys, end_argv = end
        in_progress_key = in_progress_key_prefix + job_id
        if finish and keep_in_progress is None and not result_data:
            arq_keys = [in_progress_key, retry_key_prefix + job_id, job_key_prefix + job_id]
            arq_keys += [abort_jobs_ss, self.queue_name]
            numkeys = len(end_keys) + len(arq_keys)
            finished = self.pool.eval(FINISH_DONE_LUA, numkeys, *end_keys, *arq_keys, *end_argv)
            await finished  # type: ignore[misc]  # redis-py types async and sync alike
            return
        async with self.pool.pipeline(transaction=True) as tr:
            delete_keys = []
            if keep_in_progress is None:
                delete_keys.append(in_progress_key)
            else:
                tr.pexpire(in_progress_key, int(keep_in_progress * 1000))
            if finish:
                if result_data:
                    expire_ms = None if keep_result_forever else int((result_timeout_s or 0) * 1000) or None
                    tr.set(result_key_prefix + job_id, result_data, px=expire_ms)
                delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
                tr.zrem(abort_jobs_ss, job_id)
                tr.zrem(self.queue_name, job_id)
            elif incr_score:
                tr.zincrby(self.queue_name, incr_score, job_id)
            if delete_keys:
                tr.delete(*delete_keys)
            tr.eval(lifecycle.END_LUA, len(end_keys), *end_keys, *end_argv)
            await tr.execute()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq ends a job it cannot run (expired, undeserialisable, unknown function): park it in our DLQ."""
        await park_unrunnable(
            self.pool, job_id, result_data, self.queue_name, self.state.settings.record_ttl_s
        )

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
            while self.job_counter >= self.max_jobs and self.allow_pick_jobs:
                self._slot_free.clear()
                await self._slot_free.wait()
            if not self.allow_pick_jobs:
                return
            batch, pending = (
                pending[: self.max_jobs - self.job_counter],
                pending[self.max_jobs - self.job_counter :],
            )
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
            for raw_id, raw_score in claimed:
                job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                await (
                    self.sem.acquire()
                )  # never blocks: job_counter < max_jobs < the semaphore's max_jobs + 1
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
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
        await super().close()
