"""Debian's wrk as a closed-loop max-rate tool: a Lua script for unique POST bodies, one run, its parsed output."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

# wrk runs this per thread (setup() in the main one); thread id + counter make every user_id unique
WRK_LUA = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  local body = '{"user_id":"wrk-' .. tostring(tid) .. '-' .. counter .. '","name":"bench source"}'
  return wrk.format(nil, nil, nil, body)
end
"""

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNIT_MS[unit]


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p50/p99 (ms), requests, non-2xx and socket errors from wrk's --latency output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "requests": requests,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        **lat,
    }


def run_wrk(
    wrk: str, url: str, mode: str, duration_s: float, connections: int, threads: int, lua: Path
) -> dict[str, Any]:
    """One wrk run against POST /<mode>/sources."""
    cmd = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", "--timeout", "5s",
        "-s", str(lua), f"{url}/{mode}/sources",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    if out.returncode != 0:
        raise SystemExit(f"error: wrk exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return {"mode": mode, **parse_wrk(out.stdout)}
