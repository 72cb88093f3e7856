"""Bare Locust, the generator benchmark's peer: Locust's own FastHttpUser posting what our noop mode posts.

No capture, no open model, no options of ours: what one Locust process sends in its closed model, with no
wait time, on the same endpoint (`locust -f benchmarks/_locust_bare.py --host URL -u 20 ...`).
"""

from __future__ import annotations

import itertools

from locust import FastHttpUser, constant, task

_ids = itertools.count()


class BareUser(FastHttpUser):
    """POST /noop/sources with a unique user_id, back to back."""

    wait_time = constant(0)

    @task
    def create(self) -> None:
        """One noop source."""
        body = f'{{"user_id":"bare-{next(_ids)}","name":"bench source"}}'
        self.client.post("/noop/sources", data=body, headers={"Content-Type": "application/json"})
