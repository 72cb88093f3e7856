"""Run Locust headless for one mode as a child process, with live progress from the run folder."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress, TaskID

import loadtests
from bench.launch.procs import ManagedProcess
from bench.launch.redis_server import free_port
from bench.run.config import RunConfig, job_modes
from bench.run.live import LiveQueue, LiveSamples
from runfolder.load import LOCUST_ARGUMENTS, LOCUST_STANDALONE_DEFAULTS

LOADTESTS_DIR = Path(next(iter(loadtests.__path__))).resolve()


# Distributed load: how long the master waits for its workers to connect before Locust gives up.
WORKERS_WAIT_S = 60.0


class LoadError(Exception):
    """Locust failed for a mode; one line for people."""


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def locust_args(cfg: RunConfig, mode: str, host: str, run_dir: Path, redis_url: str | None) -> list[str]:
    """The Locust command line for one mode: our arguments come from the one declaration (runfolder/load.py)."""
    args = [
        sys.executable, "-m", "locust",
        "-f", str(LOADTESTS_DIR),
        "--headless",
        "--host", host,
        "--run-time", f"{cfg.duration_s:g}s",
        "--stop-timeout", "10",
        "--loglevel", "WARNING",
        "--mode", mode,
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    if cfg.target is not None:
        args += ["--target", str(cfg.target.resolve())]
    ours = {name: getattr(cfg, name) for name in LOCUST_ARGUMENTS}
    jobs = mode in job_modes(cfg)
    ours["drain_timeout_s"] = cfg.drain_timeout_s if jobs else 0.0
    if cfg.shape == "constant":
        ours["shape"] = LOCUST_STANDALONE_DEFAULTS["shape"]  # Locust's "no shape": users/rate as given
    for name, value in ours.items():
        if value != "":
            args += ["--" + name.replace("_", "-"), _text(value)]
    if cfg.arrival_rate <= 0 or cfg.shape != "constant":
        # closed model: users are the load; open model: users are arrival streams, which only a shape needs
        # (without -u Locust runs one stream per load process, each sending at its share of the rate)
        args += ["--users", str(cfg.users), "--spawn-rate", f"{cfg.spawn_rate:g}"]
    if cfg.expect_workers > 0:
        # distributed: this Locust is the master (it runs no users); workers connect from any host
        args += ["--master", "--expect-workers", str(cfg.expect_workers)]
        args += ["--expect-workers-max-wait", f"{WORKERS_WAIT_S:g}"]
        args += ["--master-bind-host", cfg.master_bind_host, "--master-bind-port", str(cfg.master_port)]
    elif cfg.processes > 1:
        # Locust's --processes master would bind *:5557: loopback on a free port instead, so it is not exposed and
        # two runs (or a run and a test) on one machine do not collide
        port = str(free_port())
        args += [
            "--processes",
            str(cfg.processes),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            port,
        ]
        args += ["--master-host", "127.0.0.1", "--master-port", port]
    # the Redis URL (it may carry a password) goes through the environment, never the process list: run_mode
    return args + list(cfg.locust_args)


def run_mode(
    cfg: RunConfig,
    mode: str,
    host: str,
    run_dir: Path,
    redis_url: str | None,
    progress: Progress,
    on_tick: Callable[[str, float], None] = lambda _mode, _elapsed: None,
) -> int:
    """Run Locust for one mode to its end; return Locust's exit code. on_tick(mode, elapsed_s) runs ~4x/s with
    the time since the load's first request began (0 until one is written): a fault `@S` lands S s into the
    load whatever Locust's start-up takes (~1.2 s here, several on a loaded machine, where a worker fault
    `@3s` once hit a worker with nothing in flight yet)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if redis_url:
        env["LOCUST_REDIS_URL"] = redis_url  # Locust's --redis-url, kept off the process list (issue 14.9)
    proc = ManagedProcess(
        f"locust-{mode}",
        locust_args(cfg, mode, host, run_dir, redis_url),
        env,
        run_dir / "logs" / f"locust-{mode}.log",
    )
    live = LiveSamples(run_dir, mode)
    queue = LiveQueue(run_dir, mode)
    task: TaskID = progress.add_task(f"{mode:>7}: starting", total=cfg.duration_s)
    jobs = mode in job_modes(cfg)
    deadline_s = cfg.duration_s + (cfg.drain_timeout_s if jobs else 0) + 60
    deadline_s += WORKERS_WAIT_S if cfg.expect_workers else 0.0
    start = time.monotonic()
    proc.start()
    try:
        while proc.alive():
            elapsed = time.monotonic() - start
            live.poll()
            on_tick(mode, time.time() - live.first_start_ts if live.first_start_ts is not None else 0.0)
            if elapsed <= cfg.duration_s:
                progress.update(task, completed=elapsed, description=f"{mode:>7}: {live.describe()}")
            else:
                backlog = queue.backlog() if jobs else None
                what = f"draining, backlog {backlog}" if backlog is not None else "finishing"
                progress.update(task, completed=cfg.duration_s, description=f"{mode:>7}: {what}")
            if elapsed > deadline_s:
                proc.stop(15.0)
                raise LoadError(f"Locust for {mode} did not finish within {deadline_s:.0f} s; stopped it")
            proc.wait(0.25)
    finally:
        code = proc.stop(15.0)
    live.poll()
    progress.update(task, completed=cfg.duration_s, description=f"{mode:>7}: done, {live.total} samples")
    if code not in (0, 1):  # Locust exits 1 when any request failed: that is data, not a crash
        raise LoadError(f"Locust for {mode} exited with {code}: {proc.log_tail(3)}")
    if live.total == 0:
        raise LoadError(f"Locust for {mode} wrote no samples (see {proc.log_path}): {proc.log_tail(3)}")
    return code if code is not None else -1
