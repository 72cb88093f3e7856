"""The open model does not hide a server stall (coordinated omission) and counts what it could not send."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np

from tests.loadtests.helpers import (
    Server,
    clean_env,
    loadgen,
    locust_cmd,
    p99,
    read_samples,
    run_json,
    run_locust,
    start_testapp,
)


def test_freeze_shows_in_the_open_model_corrected_p99_but_not_in_the_closed_model(
    log_dir: Path, tmp_path: Path
) -> None:
    """A server that holds every request for up to 2 s once per 10 s, loaded open and closed at the same time."""
    origin_ts = time.time() + 6.0  # first freeze 6-8 s from now: inside both runs (Locust starts in ~2 s)
    env = {
        "TESTAPP_FREEZE_EVERY_S": "10",
        "TESTAPP_FREEZE_S": "2",
        "TESTAPP_FREEZE_ORIGIN_TS": str(origin_ts),
    }
    open_app, closed_app = start_testapp(log_dir, **env), start_testapp(log_dir, **env)
    open_dir, closed_dir = tmp_path / "open", tmp_path / "closed"
    common = ("-t", "12s", "--run-dir")  # ends before the next freeze, 16 s from now
    procs = [
        subprocess.Popen(
            locust_cmd(open_app.url, *common, str(open_dir), "--arrival-rate", "40", "--arrival", "constant"),
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        subprocess.Popen(
            locust_cmd(closed_app.url, *common, str(closed_dir), "-u", "2", "-r", "10"),
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    ]
    try:
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        open_app.stop()
        closed_app.stop()
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outs]

    open_rows, closed_rows = read_samples(open_dir, "noop"), read_samples(closed_dir, "noop")
    for rows, folder in ((open_rows, open_dir), (closed_rows, closed_dir)):
        assert len(rows) == run_json(folder)["modes"]["noop"]["locust_requests"]
    starts = [float(r["start_ts"]) for r in open_rows]
    assert min(starts) < origin_ts and max(starts) > origin_ts + 2, "the freeze fell inside the open run"
    # ~20 % of the open model's arrivals land in a 2 s freeze: its corrected p99 is about 2 s
    assert p99(open_rows, "latency_corrected_ms") >= 1000
    # the closed model's 2 users wait out the freeze with one request each: a handful of thousands of samples
    assert p99(closed_rows, "latency_corrected_ms") < 1000
    assert p99(closed_rows, "latency_ms") < 1000


def test_late_and_dropped_arrivals_are_counted(log_dir: Path, tmp_path: Path) -> None:
    """100/s against a 300 ms endpoint with at most 2 in flight: ~7/s can be sent, the rest is dropped."""
    app = start_testapp(log_dir, TESTAPP_DELAY_MS="300")
    run_dir = tmp_path / "run"
    try:
        out = run_locust(
            app.url,
            tmp_path,
            "-t",
            "3s",
            "--arrival-rate",
            "100",
            "--arrival",
            "constant",
            "--max-in-flight",
            "2",
            "--run-dir",
            str(run_dir),
        )
    finally:
        app.stop()
    assert out.returncode == 0, out.stdout[-3000:]
    (gen,) = loadgen(run_dir, "noop")
    assert gen["scheduled"] == gen["sent"] + gen["dropped"]
    assert gen["dropped"] >= 100, gen  # ~280 expected
    assert gen["sent"] <= 40, gen  # ~20 expected: 2 in flight x 3 s / 0.3 s
    assert gen["late_threshold_ms"] == 20.0
    assert len(read_samples(run_dir, "noop")) == run_json(run_dir)["modes"]["noop"]["locust_requests"]
    assert "falling behind" in out.stdout


def test_late_arrivals_are_counted_when_the_generator_cannot_keep_up(testapp: Server, tmp_path: Path) -> None:
    """20,000 arrivals/s is several times what one Locust process can send (~4k/s): arrivals go out late."""
    run_dir = tmp_path / "run"
    out = run_locust(
        testapp.url,
        tmp_path,
        "-t",
        "2s",
        "--arrival-rate",
        "20000",
        "--arrival",
        "constant",
        "--run-dir",
        str(run_dir),
    )
    assert out.returncode == 0, out.stdout[-3000:]
    (gen,) = loadgen(run_dir, "noop")
    assert gen["scheduled"] == gen["sent"] + gen["dropped"]
    assert gen["late"] > gen["sent"] // 2, gen  # most of what was sent, went out late
    assert gen["sent"] < 20_000, gen  # 40k were due in 2 s
    assert len(read_samples(run_dir, "noop")) == run_json(run_dir)["modes"]["noop"]["locust_requests"]


STOP_BLOCK = """import time
from locust import events

@events.test_stopping.add_listener
def _block(**_):
    end = time.perf_counter() + 1.0  # the loop blocked 1 s (time.sleep would yield: gevent patches it),
    while time.perf_counter() < end:  # as Locust's own stop() blocks it (it inspects its caller's stack)
        pass
"""


def test_arrivals_due_while_the_run_stops_are_not_sent_late(testapp: Server, tmp_path: Path) -> None:
    """Locust's stop() runs for a while before it asks the users to stop; arrivals that fall due meanwhile
    are after the end of the run, not late sends (a 3 s capacity step lost a third of its 1 % margin to
    one such arrival). Here a test_stopping listener blocks the loop 1 s."""
    hook = tmp_path / "stop_block.py"
    hook.write_text(STOP_BLOCK)
    run_dir = tmp_path / "run"
    # 50 streams of 2 arrivals/s: each has one arrival due in the blocked second
    args = ("-t", "2s", "-u", "50", "-r", "100", "--arrival-rate", "100", "--arrival", "constant")
    args += ("--run-dir", str(run_dir))
    cmd = locust_cmd(testapp.url, *args)
    cmd[cmd.index("-f") + 1] += f",{hook}"
    out = subprocess.run(
        cmd, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    (gen,) = loadgen(run_dir, "noop")
    assert gen["scheduled"] == gen["sent"] + gen["dropped"]
    # were they sent, they would be the late ones due from the run's end on: one per stream, 50. Judged on
    # those alone: on a loaded machine a stall of the load process makes a few arrivals of the run late
    # (9 of 194 once in a suite run), which is not what this test is about
    end = run_json(run_dir)["modes"]["noop"]["start_ts"] + 2.0
    late_at_stop = [
        row for row in read_samples(run_dir, "noop")
        if float(row["intended_ts"]) >= end - 0.1 and float(row["start_ts"]) - float(row["intended_ts"]) > 0.020
    ]  # fmt: skip
    assert len(late_at_stop) <= 5, (gen, late_at_stop[:10])


def test_open_model_sends_on_time(testapp: Server, tmp_path: Path) -> None:
    """50 req/s against a fast server: each request starts within a fraction of a millisecond of its schedule.

    The goal is p50 <= 0.2 ms (benchmarks/bench_send_accuracy.py measures it); an order of magnitude margin
    here for a busy CI machine. Before the precise waits (loadtests/_clock.py) the p50 was ~1 ms.
    """
    run_dir = tmp_path / "run"
    out = run_locust(testapp.url, tmp_path, "-t", "3s", "--arrival-rate", "50", "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stdout[-3000:]
    rows = read_samples(run_dir, "noop")
    assert len(rows) >= 50
    late_ms = np.array([float(r["start_ts"]) - float(r["intended_ts"]) for r in rows]) * 1000.0
    assert late_ms.min() >= 0.0, "a request never starts before its schedule"
    assert float(np.percentile(late_ms, 50)) < 2.0, np.percentile(late_ms, [50, 90, 99])
