"""Secrets never reach a log, the console or a run folder (issue 14.9): one helper hides them everywhere."""

from __future__ import annotations

import json

from runfolder.redact import MASK, redact


def test_urls_lose_their_password_and_keep_the_rest():
    assert redact("redis://:s3cr3t@127.0.0.1:6379/0") == f"redis://:{MASK}@127.0.0.1:6379/0"
    assert redact("rediss://user:p%40ss@host:6380/1") == f"rediss://user:{MASK}@host:6380/1"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    text = "locust --redis-url redis://:abc123@127.0.0.1:1/0 --host http://127.0.0.1:8000"
    assert "abc123" not in redact(text) and "http://127.0.0.1:8000" in redact(text)


def test_secret_variables_are_masked_and_nested_values_redacted():
    env = {
        "OFFLOAD_ADMIN_TOKEN": "tok-123",
        "OFFLOAD_REDIS_URL": "redis://:pw-456@127.0.0.1:1/0",
        "OFFLOAD_IO_MS": "50",
        "DB_PASSWORD": "pw-789",
        "API_SECRET": "s-0",
    }
    out = redact({"service_env": env, "stack": {"redis_url": env["OFFLOAD_REDIS_URL"]}, "n": [1, "x"]})
    dumped = json.dumps(out)
    for secret in ("tok-123", "pw-456", "pw-789", "s-0"):
        assert secret not in dumped
    assert out["service_env"]["OFFLOAD_IO_MS"] == "50" and out["n"] == [1, "x"]
    assert out["service_env"]["OFFLOAD_ADMIN_TOKEN"] == MASK
    assert env["OFFLOAD_ADMIN_TOKEN"] == "tok-123"  # the input is not changed
