"""Benchmark: how many samples/s a Locust master running loadtests/ takes in from its workers.

    .venv/bin/python benchmarks/bench_master_intake.py [--workers 3] [--duration-s 8] [--batch-rows 200]

Starts a real headless master (`locust -f loadtests/ --master --expect-workers N`) and N stand-in workers:
processes speaking Locust's own worker protocol (locust.rpc: client_ready, heartbeats) that, once the test
starts, send sample batches exactly as a load process's capture does (message `ob_samples_csv`, CSV text of
batch-rows rows) as fast as the master's socket accepts them (ZMQ back-pressure: a full queue makes them wait),
with no HTTP load at all, so the master, not the load, is the limit. Samples/s = rows the master wrote to the
run folder / sending time; every row sent must be in the files (no loss). Goal (issue 15): >= 50k samples/s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from _stack import REPO, Figure, Result, clean_env

from bench.launch.redis_server import free_port

GOAL = 50_000.0
ROW = (
    "{ts!r},{ts!r},1.234,1.456,noop,POST /noop/sources,201,1,,58,,"
    "0123456789abcdef0123456789abcdef,open,{proc}\r\n"
)


def fake_worker(port: int, proc: str, duration_s: float, batch_rows: int) -> None:
    """A stand-in Locust worker: registers, heartbeats, then sends sample batches until duration_s is over."""
    import gevent
    import zmq.green as zmq
    from locust import __version__
    from locust.rpc import Message, zmqrpc

    node = f"intake-{proc}-{uuid.uuid4().hex[:8]}"
    client = zmqrpc.Client("127.0.0.1", port, node)
    client.send(Message("client_ready", __version__, node))
    state = {"value": "ready", "sent_rows": 0, "quit": False}

    def heartbeat() -> None:
        while not state["quit"]:
            data = {"state": state["value"], "current_cpu_usage": 0.0, "current_memory_usage": 0}
            client.send(Message("heartbeat", data, node))
            gevent.sleep(1.0)

    def listen() -> None:
        while True:
            msg = client.recv()
            if msg.type == "spawn" and state["value"] == "ready":
                state["value"] = "running"
                client.send(Message("spawning_complete", {"user_classes_count": {}, "user_count": 0}, node))
                gevent.spawn(blast)
            elif msg.type == "quit":
                state["quit"] = True
                return

    def blast() -> None:
        start = time.time()
        while time.time() - start < duration_s:
            text = "".join(ROW.format(ts=time.time(), proc=proc) for _ in range(batch_rows))
            data = {"mode": "noop", "proc": proc, "rows": batch_rows, "csv": text}
            payload = Message("ob_samples_csv", data, node).serialize()
            while True:
                try:  # Locust's own send retries after 1, 3, 5 s: too coarse to measure back-pressure
                    client.socket.send(payload, zmq.NOBLOCK)
                    break
                except zmq.Again:
                    gevent.sleep(0.001)  # the master's queue is full: back-pressure
            state["sent_rows"] = int(state["sent_rows"]) + batch_rows
            gevent.sleep(0)
        state["value"] = "stopped"
        sys.stdout.write(f"sent {state['sent_rows']} {time.time() - start:.3f}\n")
        sys.stdout.flush()

    gevent.spawn(heartbeat)
    gevent.spawn(listen).join()
    client.close()


def main() -> int:
    """Run the master and the stand-in workers; print the master's intake rate."""
    parser = argparse.ArgumentParser(description="samples/s a Locust master takes in")
    parser.add_argument("--workers", type=int, default=3, help="stand-in worker processes")
    parser.add_argument("--duration-s", type=float, default=8.0, help="sending time of each worker")
    parser.add_argument("--batch-rows", type=int, default=200, help="rows per message (the capture's slice)")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test, figure meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    parser.add_argument("--fake-worker", nargs=2, metavar=("PORT", "PROC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_worker:
        from gevent import monkey

        monkey.patch_all()
        fake_worker(int(args.fake_worker[0]), args.fake_worker[1], args.duration_s, args.batch_rows)
        return 0
    if args.quick:
        args.workers, args.duration_s = 2, 2.0
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp_text:
        run_dir = Path(tmp_text) / "run"
        master_cmd = [
            sys.executable, "-m", "locust", "-f", str(REPO / "loadtests"), "--master", "--headless",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--expect-workers", str(args.workers), "-u", str(args.workers), "-r", str(args.workers),
            "-t", f"{args.duration_s + 3:g}s", "--host", "http://127.0.0.1:9", "--run-dir", str(run_dir),
            "--only-summary", "--loglevel", "WARNING",
        ]  # fmt: skip
        master = subprocess.Popen(
            master_cmd, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        me = [
            sys.executable,
            __file__,
            "--duration-s",
            str(args.duration_s),
            "--batch-rows",
            str(args.batch_rows),
        ]
        workers = [
            subprocess.Popen(
                [*me, "--fake-worker", str(port), str(i)],
                cwd=REPO,
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for i in range(args.workers)
        ]
        master_ps = psutil.Process(master.pid)
        master_ps.cpu_percent(None)
        cpu: list[float] = []
        try:
            while master.poll() is None and any(w.poll() is None for w in workers):
                time.sleep(1.0)
                cpu.append(master_ps.cpu_percent(None))
            master_out, _ = master.communicate(timeout=60)
            outs = [w.communicate(timeout=30)[0] for w in workers]
        finally:
            for proc in (master, *workers):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        sent = [line.split() for out in outs for line in out.splitlines() if line.startswith("sent ")]
        if len(sent) != args.workers:
            raise SystemExit(
                f"error: a stand-in worker failed: {[o[-500:] for o in outs]} {master_out[-800:]}"
            )
        sent_rows = sum(int(s[1]) for s in sent)
        send_s = max(float(s[2]) for s in sent)
        written = sum(sum(1 for _ in p.open()) - 1 for p in (run_dir / "samples").glob("noop-*.csv"))
    busy = sorted(cpu)[len(cpu) // 2] if cpu else float("nan")
    rate = written / send_s
    print(
        f"{args.workers} stand-in workers sent {sent_rows:,} rows in {send_s:.1f} s; master wrote {written:,}"
    )
    print(f"master intake: {rate:,.0f} samples/s at a median {busy:.0f} % of one core (master process)")
    details: dict[str, Any] = {"sent_rows": sent_rows, "written": written, "send_s": send_s, "cpu": cpu}
    figures = [
        Figure("master intake (samples/s)", rate, GOAL, ">="),
        Figure("rows lost (sent - written)", float(sent_rows - written), 0.0, "<="),
    ]
    return Result("master_intake", figures, {**details, "args": vars(args)}).report(args.json)


if __name__ == "__main__":
    sys.exit(main())
