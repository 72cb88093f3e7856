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
import csv
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
from typing import Any

import numpy as np
import psutil
import redis
from _stack import REPO, SHARED_CORES_NOTE, Figure, Result, clean_env
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.launch.redis_server import EmbeddedRedis

GROWTH_GOAL_PCT = 10.0
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


def growth(
    rows: list[tuple[float, str, int, float]], start: float, end: float, warmup_s: float
) -> dict[str, Any]:
    """Per process: baseline (first window after warm-up) and end (last window) median RSS, growth %."""
    t0 = start + warmup_s
    win = min(60.0, max((end - t0) / 5, 1e-9))
    by_label: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ts, label, _pid, mb in rows:
        if t0 <= ts <= end:
            by_label[label].append((ts, mb))
    out: dict[str, Any] = {}
    for label, points in sorted(by_label.items()):
        ts = np.array([p[0] for p in points])
        mb = np.array([p[1] for p in points])
        first, last = mb[ts <= t0 + win], mb[ts >= end - win]
        if first.size == 0 or last.size == 0 or ts.max() - ts.min() < (end - t0) / 2:
            continue  # a process that did not live through the load phase (e.g. one started late)
        base, final = float(np.median(first)), float(np.median(last))
        slope = float(np.polyfit((ts - t0) / 60, mb, 1)[0]) if ts.size > 2 else 0.0
        out[label] = {
            "baseline_mb": round(base, 2),
            "end_mb": round(final, 2),
            "max_mb": round(float(mb.max()), 2),
            "growth_pct": round((final / base - 1) * 100, 2),
            "max_over_baseline_pct": round((float(mb.max()) / base - 1) * 100, 2),
            "slope_mb_per_min": round(slope, 4),
            "samples": int(ts.size),
        }
    return out


def plot(rows: list[tuple[float, str, int, float]], start: float, end: float, warmup_s: float,
         result: dict[str, Any], path: Path, title: str) -> None:  # fmt: skip
    """RSS (MB) and RSS relative to the post-warm-up baseline (%) of every process over the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    by_label: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ts, label, _pid, mb in rows:
        by_label[label].append(((ts - start) / 60, mb))
    for label, points in sorted(by_label.items()):
        x, y = np.array(points).T
        top.plot(x, y, label=label, lw=1.2)
        if label in result:
            bottom.plot(x, (y / result[label]["baseline_mb"] - 1) * 100, label=label, lw=1.2)
    for ax in (top, bottom):
        ax.axvspan(0, warmup_s / 60, color="0.9", label="_warm-up")
        ax.axvline((end - start) / 60, color="0.5", ls=":", lw=1)
        ax.grid(alpha=0.3)
    bottom.axhspan(-GROWTH_GOAL_PCT, GROWTH_GOAL_PCT, color="tab:green", alpha=0.08)
    bottom.axhline(GROWTH_GOAL_PCT, color="tab:red", ls="--", lw=1, label=f"+{GROWTH_GOAL_PCT:g} % goal")
    top.set_ylabel("RSS (MB)")
    bottom.set_ylabel("RSS vs. baseline after warm-up (%)")
    bottom.set_xlabel("minutes since the load started (grey: warm-up; dotted: end of the load)")
    top.legend(fontsize=8, ncol=4, loc="upper left")
    bottom.legend(fontsize=8, ncol=4, loc="upper left")
    top.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


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
    with (out / "rss.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ts", "t_s", "process", "pid", "rss_mb"])
        writer.writerows(
            (f"{ts:.3f}", f"{ts - start:.1f}", label, pid, f"{mb:.2f}") for ts, label, pid, mb in sampler.rows
        )
    with (out / "redis.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ts", "t_s", "used_memory_mb", "keys"])
        writer.writerows(
            (f"{ts:.3f}", f"{ts - start:.1f}", f"{mb:.2f}", keys) for ts, mb, keys in sampler.redis_rows
        )
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
        "redis_info": _redis_window(sampler.redis_rows, start + warmup_s, end), "out": str(out),
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


def _redis_window(rows: list[tuple[float, float, int]], t0: float, end: float) -> dict[str, Any]:
    """Redis's own accounting at the start and end of the measured window: data vs. process memory."""
    inside = [r for r in rows if t0 <= r[0] <= end]
    if not inside:
        return {}
    return {"used_memory_mb": [round(inside[0][1], 2), round(inside[-1][1], 2)],
            "keys": [inside[0][2], inside[-1][2]]}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
