"""The API's stop shows where it stalls: past STOP_STACKS_AFTER_S every thread's stack goes to stderr (the log)."""

from __future__ import annotations

import time

import pytest

from service import routes
from service.api import create_app
from service.inprocess import InProcess
from service.settings import Settings


async def _start_and_stop(redis_url: str) -> None:
    app = create_app(Settings(redis_url=redis_url))
    async with app.router.lifespan_context(app):
        pass


async def test_a_stop_that_stalls_writes_the_stacks_and_a_prompt_one_nothing(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # margins of 10x: a prompt stop takes ~10 ms (1 s bound), the stalled one 1 s (0.1 s bound)
    monkeypatch.setattr(routes, "STOP_STACKS_AFTER_S", 1.0)
    await _start_and_stop(redis_url)
    time.sleep(1.5)  # past the bound: a timer left armed would fire now
    assert "most recent call first" not in capfd.readouterr().err

    def stalled_stop(self: InProcess) -> None:
        time.sleep(1.0)  # a call that blocks the event loop, as a stalled write would

    real_stop = InProcess.stop

    async def stop(self: InProcess) -> None:
        stalled_stop(self)
        await real_stop(self)

    monkeypatch.setattr(InProcess, "stop", stop)
    monkeypatch.setattr(routes, "STOP_STACKS_AFTER_S", 0.1)
    await _start_and_stop(redis_url)
    err = capfd.readouterr().err
    assert "most recent call first" in err and "stalled_stop" in err, err[-2000:]
