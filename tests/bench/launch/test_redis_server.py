"""The embedded Redis: starts on loopback, keeps data across a restart (AOF), refuses a busy port."""

from __future__ import annotations

import pytest
import redis

from bench.launch.redis_server import EmbeddedRedis, RedisServerError


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
