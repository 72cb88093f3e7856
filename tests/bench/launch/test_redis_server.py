"""The embedded Redis: loopback, a password, its own session, data kept across a restart, clean stops."""

from __future__ import annotations

import os
import signal
import stat
import threading

import psutil
import pytest
import redis

from bench.launch.redis_server import EmbeddedRedis, RedisServerError, find_redis_server


def test_restart_keeps_data_and_port(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        port = server.port
        server.restart()
        assert server.port == port
        assert client.get("k") == b"v"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.close()
    assert server.proc is None


def test_busy_port_is_a_clear_error(tmp_path):
    with EmbeddedRedis(tmp_path / "a") as first:
        with pytest.raises(RedisServerError, match="already in use"):
            EmbeddedRedis(tmp_path / "b", port=first.port).start()


def test_a_random_password_per_stack_never_on_the_process_list(tmp_path):
    # issue 14.7: the worker unpickles what is in Redis, so only holders of the URL may write there
    with EmbeddedRedis(tmp_path / "a") as a, EmbeddedRedis(tmp_path / "b") as b:
        password = redis.connection.parse_url(a.url).get("password")
        assert password and len(password) >= 32 and password != redis.connection.parse_url(b.url)["password"]
        anonymous = redis.Redis(host=a.host, port=a.port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.set("arq:job:x", b"pickle")
        anonymous.close()
        client = redis.Redis.from_url(a.url)
        assert client.ping()
        a.restart()  # the processes holding the URL keep working across a restart
        assert client.ping()
        client.close()
        assert a.proc is not None
        assert password not in " ".join(psutil.Process(a.proc.pid).cmdline())
        # Redis 7 keeps its AOF in a folder (appendonlydir/), older ones in one file: every file, at any depth
        for path in (p for p in a.data_dir.rglob("*") if p.is_file()):
            if path.read_bytes().find(password.encode()) >= 0:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_without_auth_no_password_still_loopback_only(tmp_path):
    # issue 20.5: a target's redis_auth = false, for apps whose only Redis setting is host:port
    with EmbeddedRedis(tmp_path, auth=False) as server:
        assert server.password == "" and server.url == f"redis://127.0.0.1:{server.port}/0"
        anonymous = redis.Redis(host=server.host, port=server.port)
        assert anonymous.ping() and anonymous.config_get("requirepass")["requirepass"] == ""
        assert anonymous.config_get("bind")["bind"] == "127.0.0.1"
        server.restart()
        assert anonymous.ping()
        anonymous.close()


def test_own_session_so_a_terminal_ctrl_c_does_not_reach_it(tmp_path):
    # issue 14.11: a Ctrl-C in the terminal goes to the CLI's process group; the CLI stops Redis last
    with EmbeddedRedis(tmp_path) as server:
        assert server.proc is not None
        assert os.getpgid(server.proc.pid) != os.getpgid(0)
        assert os.getsid(server.proc.pid) != os.getsid(0)


def test_an_interrupt_during_start_leaves_no_server(tmp_path, monkeypatch):
    # issue 14.11: a start interrupted midway. The wrapper says when it runs and then waits for a file that
    # never comes (the start can only end by the interrupt), and the interrupt is sent when the wrapper says
    # so: no sleep or timer guesses how long a start takes on a busy machine
    real = find_redis_server()
    running, go = tmp_path / "running", tmp_path / "go"
    slow = tmp_path / "slow-redis"
    slow.write_text(
        f'#!/bin/sh\ntouch {running}\nwhile [ ! -e {go} ]; do sleep 0.05; done\nexec {real} "$@"\n'
    )
    slow.chmod(0o755)
    monkeypatch.setenv("OFFLOAD_REDIS_SERVER", str(slow))
    server = EmbeddedRedis(tmp_path / "data")
    started: list[psutil.Process] = []
    # only what this start made: this process may already have children (the session's Redis of an earlier
    # test on this xdist worker), which the test must neither count nor kill
    before = {p.pid for p in psutil.Process().children()}

    def interrupt(_sig, _frame):
        started.extend(p for p in psutil.Process().children() if p.pid not in before)
        raise KeyboardInterrupt

    done = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def interrupt_once_running() -> None:
        while not running.exists():
            if done.wait(0.01):
                return  # the start ended otherwise: interrupt nothing later
        signal.pthread_kill(main, signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, interrupt)
    sender = threading.Thread(target=interrupt_once_running, daemon=True)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            server.start(timeout_s=120)
    finally:
        done.set()
        sender.join(5)
        signal.signal(signal.SIGALRM, previous)
    assert started, "the server process was not started yet"
    gone, alive = psutil.wait_procs(started, timeout=3)
    for proc in alive:
        proc.kill()
    assert alive == [] and server.proc is None


def test_a_frozen_server_still_stops_cleanly(tmp_path):
    # issue 14.6: SIGSTOPped Redis queues SIGTERM; stop() must SIGCONT it first, and exit cleanly (AOF synced)
    server = EmbeddedRedis(tmp_path).start()
    try:
        server.freeze()
        client = redis.Redis.from_url(server.url, socket_timeout=0.3)
        with pytest.raises(redis.TimeoutError):
            client.ping()
        client.close()
        server.thaw()
        assert redis.Redis.from_url(server.url, socket_timeout=2).ping()
        server.freeze()
    finally:
        code = server.stop(timeout_s=5)
    assert code == 0  # a clean SHUTDOWN, not the SIGKILL after the timeout
