"""Soak: every process's RSS through a long offload run at a moderate rate; growth after warm-up <= 10 % each.

    .venv/bin/python benchmarks/bench_soak_rss.py [--minutes 30] [--rate 50] [--processes 2] [--workers 1]
        [--interval-s 5] [--warmup-minutes 5] [--record-ttl-s 120] [--out DIR] [--quick] [--json PATH]

One ordinary `offload-bench run --modes offload` (API, arq workers, open-model Locust with --processes load
processes) on a Redis this script starts (embedded, as the CLI's own; its URL reaches the CLI through a 0600
config file, never the process list). Every --interval-s the RSS of every process of the CLI's tree (the CLI,
Locust's master and workers, the API, the workers) and of Redis is read with psutil. The load phase is
run.json's offload start/end; growth of a process = median RSS over the last window of the load phase /
median RSS over the first window after the warm-up - 1 (windows: a fifth of the span after warm-up, at most
a minute). Redis's own INFO (used_memory, keys) is sampled too, to tell data from leak.

Redis keeps every job's lifecycle and source records for record_ttl_s (the service's default is a day): its
RSS then grows with the jobs it is told to keep, by design. The soak sets a short TTL (--record-ttl-s, less
than the warm-up) so that, after warm-up, Redis holds a steady window of records and any growth left is a
leak; the run's job export at the end then finds the older records expired (this benchmark does not judge
job counts: bench_soak_faults.py does).

Writes rss.csv (ts, t_s since load start, process, pid, rss_mb), redis.csv, growth.json and rss.png into
--out (default reports/runs/soak-rss-<UTC time>/). Exit 1 when a process grew more than 10 %. Run it under the
shared lock: `flock /tmp/ob-heavy.lock .venv/bin/python benchmarks/bench_soak_rss.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psutil
import redis
from _rss_growth import GROWTH_GOAL_PCT, growth, plot, redis_window, write_csvs
from _stack import REPO, SHARED_CORES_NOTE, Figure, Result, clean_env
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.launch.redis_server import EmbeddedRedis

# fast jobs (the soak measures memory, not the work): 3 pages of ~5 ms I/O and 1 ms CPU
SERVICE_ENV = {
    "OFFLOAD_PAGES": "3",
    "OFFLOAD_IO_MS": "5",
    "OFFLOAD_CPU_MS": "1",
    "OFFLOAD_LOG_LEVEL": "WARNING",
}


def role(proc: psutil.Process, cli_pid: int, redis_pid: int) -> str:
    """What a process of the tree is: cli, locust-master, locust-worker, locust, api, worker, redis, or its name."""
    if proc.pid == cli_pid:
        return "cli"
    if proc.pid == redis_pid:
        return "redis"
    try:
        cmd = " ".join(proc.cmdline())
        parent = proc.parent()
        parent_cmd = " ".join(parent.cmdline()) if parent else ""
    except psutil.Error:
        return "gone"
    if "locust" in cmd:
        if "locust" in parent_cmd:
            return "locust-worker"  # forked by the master of --processes N
        return "locust-master" if "--processes" in cmd else "locust"
    for needle, name in (("service.api", "api"), ("service.worker", "worker"), ("redis-server", "redis")):
        if needle in cmd:
            return name
    if "service.api" in parent_cmd:
        return "api-child"
    return Path(cmd.split(" ", 1)[0]).name or "?"


class Sampler:
    """RSS of a process tree (plus Redis) every call; stable labels per pid (role, then #n for a second one)."""

    def __init__(self, cli: subprocess.Popen[bytes], server: EmbeddedRedis) -> None:
        self.cli = psutil.Process(cli.pid)
        self.redis_proc = psutil.Process(server.proc.pid) if server.proc else None
        self.client = redis.Redis.from_url(server.url, socket_timeout=2)
        self.labels: dict[tuple[int, float], str] = {}
        self.per_role: dict[str, int] = defaultdict(int)
        self.rows: list[tuple[float, str, int, float]] = []  # ts, label, pid, rss MB
        self.redis_rows: list[tuple[float, float, int]] = []  # ts, used_memory MB, keys

    def _label(self, proc: psutil.Process) -> str:
        key = (proc.pid, proc.create_time())
        if key not in self.labels:
            name = role(proc, self.cli.pid, self.redis_proc.pid if self.redis_proc else -1)
            self.per_role[name] += 1
            self.labels[key] = name if self.per_role[name] == 1 else f"{name}#{self.per_role[name]}"
        return self.labels[key]

    def sample(self) -> None:
        """One RSS reading of every live process; Redis INFO beside."""
        ts = time.time()
        try:
            procs = [self.cli, *self.cli.children(recursive=True)]
        except psutil.Error:
            procs = []
        if self.redis_proc is not None:
            procs.append(self.redis_proc)
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                self.rows.append((ts, self._label(proc), proc.pid, rss / 2**20))
            except psutil.Error:
                continue
        try:
            info = self.client.info("memory")
            self.redis_rows.append((ts, float(info["used_memory"]) / 2**20, int(self.client.dbsize())))
        except redis.RedisError:
            pass


def main() -> int:
    """Start the run, sample until it ends, judge and write the outputs."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the load")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (open model)")
    parser.add_argument("--processes", type=int, default=2, help="Locust load processes (master + workers)")
    parser.add_argument("--workers", type=int, default=1, help="arq worker processes")
    parser.add_argument("--interval-s", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=5.0,
        help="left out of the growth (at most a third of the run)",
    )
    parser.add_argument("--record-ttl-s", type=int, default=120, help="TTL of the service's records in Redis")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument(
        "--quick", action="store_true", help="a ~20 s run (a smoke test, figures meaningless)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    console = Console(stderr=True)
    if args.quick:
        args.minutes, args.interval_s, args.warmup_minutes = 20 / 60, 1.0, 5 / 60
    duration_s = args.minutes * 60
    warmup_s = min(args.warmup_minutes * 60, duration_s / 3)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO / "reports" / "runs" / f"soak-rss-{stamp}"  # reports/runs/ is git-ignored
    out.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="soak-rss-"))  # mkdtemp: 0700, the Redis password stays in it
    server = EmbeddedRedis(private / "redis").start()
    config = private / "run.toml"
    config.touch(0o600)
    config.write_text(f'redis_url = "{server.url}"\n')
    cmd = [
        sys.executable, "-m", "bench", "run", "--config", str(config), "--modes", "offload",
        "--duration", f"{duration_s:.0f}s", "--warmup", f"{warmup_s:.0f}s", "--arrival-rate", f"{args.rate:g}",
        "--processes", str(args.processes), "--workers", str(args.workers), "--drain-timeout", "60s",
        "--out", str(out / "runs"),
    ]  # fmt: skip
    env = clean_env(**SERVICE_ENV, OFFLOAD_RECORD_TTL_S=str(args.record_ttl_s))
    console.print(
        f"soak: {duration_s:.0f} s at {args.rate:g} req/s, {args.processes} load processes, {args.workers} "
        f"worker(s), warm-up {warmup_s:.0f} s, RSS every {args.interval_s:g} s -> {out}"
    )
    log = (out / "run.log").open("wb")
    cli = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = Sampler(cli, server)
    started = time.monotonic()
    try:
        with Progress(TextColumn("soak"), BarColumn(), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("run", total=duration_s + 30)
            while cli.poll() is None:
                sampler.sample()
                progress.update(task, completed=min(time.monotonic() - started, duration_s + 30))
                time.sleep(args.interval_s)
    finally:
        if cli.poll() is None:
            cli.terminate()
            cli.wait(60)
        log.close()
        server.cleanup()
        shutil.rmtree(private, ignore_errors=True)
    runs = sorted(p for p in (out / "runs").glob("*") if p.is_dir())
    run_json = json.loads((runs[-1] / "run.json").read_text()) if runs else {}
    phase = (run_json.get("modes") or {}).get("offload") or {}
    if not phase.get("start_ts") or not phase.get("end_ts"):
        console.print(f"error: the run recorded no load phase (exit {cli.returncode}); see {out / 'run.log'}")
        return 2
    start, end = float(phase["start_ts"]), float(phase["end_ts"])
    result = growth(sampler.rows, start, end, warmup_s)
    write_csvs(out, sampler.rows, sampler.redis_rows, start)
    title = (
        f"RSS of every process: {duration_s / 60:g} min offload run at {args.rate:g} req/s, "
        f"{args.processes} load processes, {args.workers} worker(s); {os.cpu_count()} shared cores"
    )
    plot(sampler.rows, start, end, warmup_s, result, out / "rss.png", title)
    details = {
        "minutes": args.minutes, "rate": args.rate, "processes": args.processes, "workers": args.workers,
        "warmup_s": warmup_s, "interval_s": args.interval_s, "record_ttl_s": args.record_ttl_s,
        "load_start_ts": start, "load_end_ts": end, "cli_exit_code": cli.returncode,
        "requests": phase.get("locust_requests"), "failures": phase.get("locust_failures"),
        "processes_seen": sorted(set(sampler.labels.values())), "growth": result,
        "redis_info": redis_window(sampler.redis_rows, start + warmup_s, end), "out": str(out),
    }  # fmt: skip
    (out / "growth.json").write_text(json.dumps(details, indent=2) + "\n")
    figures = [Figure(f"RSS growth after warm-up, {k}", v["growth_pct"], GROWTH_GOAL_PCT, "<=", " %")
               for k, v in result.items()]  # fmt: skip
    for k, v in result.items():
        console.print(
            f"  {k:<15} {v['baseline_mb']:8.1f} -> {v['end_mb']:8.1f} MB (max {v['max_mb']:.1f}); "
            f"{v['slope_mb_per_min']:+.3f} MB/min"
        )
    console.print(
        f"requests {phase.get('locust_requests')}, failures {phase.get('locust_failures')}; {SHARED_CORES_NOTE}"
    )
    console.print(f"outputs: {out}/rss.csv, redis.csv, growth.json, rss.png")
    return Result("soak_rss", figures, details).report(args.json)


if __name__ == "__main__":
    sys.exit(main())
