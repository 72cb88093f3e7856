"""The stack runs a target's processes: shell commands in their own groups, bounded readiness, `url` starts nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.launch.procs import process_tree
from bench.launch.shell import ShellProcess, shell_argv
from bench.launch.stack import Stack, TargetStartError
from targets import load_target, parse_target

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "fastapi_arq" / "target.toml"
MODES = '\n[modes.get]\nmethod = "GET"\npath = "/"\n'


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in group pgid; processes exiting meanwhile are not."""
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:  # a process may exit between the listing and these reads (other tests run beside this one)
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def test_command_not_found_is_a_start_error_with_the_log(tmp_path: Path, redis_url: str) -> None:
    target = parse_target('[service]\napi = "no-such-cmd-xyz --port {port}"' + MODES, "t.toml")
    stack = Stack(target=target, target_dir=tmp_path, log_dir=tmp_path / "logs", redis_url=redis_url)
    with pytest.raises(
        TargetStartError, match=r"api exited at start \(code 127\): .*no-such-cmd-xyz.*not found"
    ):
        stack.start()
    stack.stop()


def test_never_ready_is_bounded_and_everything_is_stopped(tmp_path: Path, redis_url: str) -> None:
    text = f'[service]\napi = "{sys.executable} -m http.server --bind 127.0.0.1 {{port}}"\nready = "/nope"'
    text += f"\nworker = \"{sys.executable} -c 'import time; time.sleep(60)'\"" + MODES
    target = parse_target(text, "t.toml")
    stack = Stack(tmp_path / "logs", target=target, target_dir=tmp_path, workers=2, redis_url=redis_url)
    started = time.monotonic()
    with pytest.raises(
        TargetStartError, match=r"not ready within 2 s \(GET .*/nope answered 404\).*GET /nope"
    ):
        stack.start(timeout_s=2)
    assert time.monotonic() - started < 20
    groups = [p.pid for p in [stack.api, *stack.workers] if p is not None and p.pid is not None]
    assert len(groups) == 3
    stack.stop(5)
    assert not any(_group_alive(g) for g in groups)


def test_url_starts_nothing(tmp_path: Path, redis_url: str) -> None:
    # port 0: the server binds a port nobody else can take, and says which once it listens (no polling)
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        port = int(re.search(rb" port (\d+) ", server.stdout.readline())[1])  # type: ignore[index]
        target = parse_target(f'url = "http://127.0.0.1:{port}"' + MODES, "t.toml")
        stack = Stack(
            target=target, target_dir=tmp_path, log_dir=tmp_path / "logs", workers=3, redis_url=redis_url
        )
        stack.start(timeout_s=10)
        assert stack.api is None and stack.workers == [] and stack.api_url == f"http://127.0.0.1:{port}"
        assert not (tmp_path / "logs").exists()
        stack.stop()
        assert server.poll() is None  # not ours: never stopped
    finally:
        server.terminate()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


def test_example_workers_are_process_groups_and_sigkill_reaches_them(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    target, path = load_target(EXAMPLE)
    stack = Stack(
        target=target, target_dir=path.parent, log_dir=tmp_path / "logs", workers=2, redis_url=redis_url
    )
    try:
        stack.start()
        assert len(stack.workers) == 2 and stack.api is not None
        victim = stack.workers[0]
        assert victim.pid is not None and os.getpgid(victim.pid) == victim.pid
        assert stack.stop_worker(victim, signal.SIGKILL) == -signal.SIGKILL
        assert not _group_alive(victim.pid) and len(stack.workers) == 1
        assert (tmp_path / "logs" / "api.log").exists() and (tmp_path / "logs" / "worker-2.log").exists()
    finally:
        stack.stop(5)


def _nice_values(pid: int | None) -> set[int]:
    """The nice value of every live process of pid's tree (process_tree: the command and what it forked)."""
    assert pid is not None
    out = set()
    for proc in process_tree(pid):
        try:
            out.add(proc.nice())
        except psutil.NoSuchProcess:
            continue
    return out


def test_worker_nice_lowers_every_worker_process_and_its_replacements_not_the_api(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    target, path = load_target(EXAMPLE)
    own = os.nice(0)
    lowered = min(own + 19, 19)
    assert lowered > own, "the test process already runs at the lowest priority: nothing to tell apart"
    stack = Stack(
        target=target, target_dir=path.parent, log_dir=tmp_path / "logs", workers=2, redis_url=redis_url,
        worker_nice=19,
    )  # fmt: skip
    try:
        stack.start()
        assert stack.api is not None and _nice_values(stack.api.pid) == {own}
        assert [_nice_values(w.pid) for w in stack.workers] == [{lowered}, {lowered}]
        crashed = stack.workers[0]
        assert crashed.stop(5, sig=signal.SIGKILL) == -signal.SIGKILL  # still listed, as a crash leaves it
        assert stack.restart_dead_workers() == [crashed.name]
        stack.wait_ready(30)
        assert crashed not in stack.workers and len(stack.workers) == 2
        assert [_nice_values(w.pid) for w in stack.workers] == [{lowered}, {lowered}]
    finally:
        stack.stop(5)


def _failing(api: str, worker: str, extra: str = "") -> str:
    return f"[service]\napi = {api!r}\nworker = {worker!r}\n{extra}" + MODES


def test_every_process_that_exits_at_start_is_named_with_its_code_and_log(
    tmp_path: Path, redis_url: str
) -> None:
    # issue 26: whichever the poll sees first, the one line names each failure (identical ones together)
    text = _failing(
        "echo api cannot start on {port} redis://:s3cret@127.0.0.1:1/0; exit 3", "echo no; exit 4"
    )
    stack = Stack(tmp_path / "logs", target=parse_target(text, "t.toml"), workers=2, redis_url=redis_url)
    with pytest.raises(TargetStartError) as info:
        stack.start()
    stack.stop(5)
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message and "redis://:***@127.0.0.1:1/0" in message
    assert message.startswith("api exited at start (code 3): api cannot start on ")
    assert f"; worker-1, worker-2 exited at start (code 4): no (logs: {tmp_path / 'logs'})" in message


def test_a_death_waits_only_a_bounded_moment_for_the_others(tmp_path: Path, redis_url: str) -> None:
    text = _failing("echo broken {port}; exit 3", f"{sys.executable} -c 'import time; time.sleep(60)'")
    stack = Stack(tmp_path / "logs", target=parse_target(text, "t.toml"), redis_url=redis_url)
    started = time.monotonic()
    with pytest.raises(TargetStartError, match=r"^api exited at start \(code 3\): broken \d+ \(logs: "):
        stack.start()
    assert time.monotonic() - started < 30  # not the healthy worker's 60 s
    assert stack.workers[0].alive()  # the healthy worker is not named: it did not fail
    stack.stop(5)


NOAUTH = "echo redis.exceptions.AuthenticationError: Authentication required. {port}; exit 3"


@pytest.mark.parametrize(
    ("extra", "external", "hint"),
    [
        ("", False, "to it in [service] env, or set redis_auth = false under [service]"),
        ("", True, "(or {redis_password}) to it in [service] env"),
        ("redis_auth = false\n", False, None),  # not our Redis that refused it: no hint
    ],
)
def test_redis_authentication_errors_name_the_fix(
    tmp_path: Path, redis_url: str, extra: str, external: bool, hint: str | None
) -> None:
    text = _failing(NOAUTH, "sleep 60", extra)
    stack = Stack(
        tmp_path / "logs", target=parse_target(text, "t.toml"), redis_url=redis_url if external else None
    )
    with pytest.raises(TargetStartError) as info:
        stack.start()
    stack.stop(5)
    message = str(info.value)
    assert message.startswith("api exited at start (code 3): redis.exceptions.AuthenticationError")
    fix = "; the app reached Redis without its password: pass {redis_url}"
    if hint is None:
        assert fix not in message
    else:
        assert fix in message and message.endswith(hint)


def test_workers_that_never_come_up_are_named_with_their_logs(tmp_path: Path, redis_url: str) -> None:
    # the API answers, the arq workers never write their health-check key: the line names them, not the API
    api = f"{sys.executable} -m http.server --bind 127.0.0.1 {{port}}"
    text = _failing(api, "echo connecting to nowhere; exec sleep 60")
    text = text.replace('method = "GET"', 'method = "GET"\njob_id = "id"') + '[jobs]\ntracker = "arq"\n'
    stack = Stack(tmp_path / "logs", target=parse_target(text, "t.toml"), workers=2, redis_url=redis_url)
    with pytest.raises(TargetStartError) as info:
        stack.start(timeout_s=2)
    stack.stop(5)
    assert str(info.value) == (
        "the target was not ready within 2 s (workers not up): worker-1, worker-2: connecting to nowhere"
    )


def test_restart_api_starts_the_api_again_on_its_port(tmp_path: Path, redis_url: str) -> None:
    api = f"{sys.executable} -m http.server --bind 127.0.0.1 {{port}}"
    target = parse_target(f'[service]\napi = "{api}"' + MODES, "t.toml")
    stack = Stack(target=target, target_dir=tmp_path, log_dir=tmp_path / "logs", redis_url=redis_url)
    try:
        stack.start(timeout_s=15)
        first, url = stack.api, stack.api_url
        assert first is not None and first.stop(5, sig=signal.SIGKILL) == -signal.SIGKILL
        again = stack.restart_api("api-again")
        stack.wait_ready(15)
        assert stack.api is again and again is not first and again.alive() and stack.api_url == url
        assert again.pid != first.pid and (tmp_path / "logs" / "api-again.log").is_file()
    finally:
        stack.stop(5)
    assert stack.api is not None and not stack.api.alive()


COUNT_SIGTERMS = """
import signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda *_: got.append(1))
print("ready", flush=True)
while len(got) < 2 and time.monotonic() < START + 3:  # a graceful stop: 1 s of work after the first signal
    if got:
        time.sleep(1.0)
        break
    time.sleep(0.01)
open(sys.argv[1], "w").write(str(len(got)))
"""


@pytest.mark.parametrize("scope", ["group", "top"])
def test_a_stop_after_the_stacks_sigterm_does_not_send_a_second_one(tmp_path: Path, scope: str) -> None:
    # Stack.stop signals every worker, then stops each one: to our worker (and to Dramatiq's, RQ's) a second
    # SIGTERM means "stop now, cancel the running jobs", so the graceful stop must send it once
    script, count = tmp_path / "count.py", tmp_path / "count.txt"
    script.write_text("import time; START = time.monotonic()\n" + COUNT_SIGTERMS)
    proc = ShellProcess(
        "w",
        shell_argv(f"{sys.executable} {script} {count}"),
        dict(os.environ),
        tmp_path / "w.log",
        scope=scope,
    )
    proc.start()
    deadline = time.monotonic() + 20
    while "ready" not in (tmp_path / "w.log").read_text():
        assert time.monotonic() < deadline and proc.alive(), (tmp_path / "w.log").read_text()
        time.sleep(0.02)
    proc.send(signal.SIGTERM)
    assert proc.stop(10) == 0
    assert count.read_text() == "1"
