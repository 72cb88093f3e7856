"""The LoadTestShape behind --shape. Locust uses the first shape class it finds in any loaded locustfile, so
this one is always found; it switches itself off (environment.shape_class = None, see _hooks) unless --shape
is given."""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from loadtests._stages import DEFAULT_SHAPE_RUN_S, users_at


class StagesShape(LoadTestShape):
    """Runs the stages of --shape over --run-time (default 60 s), scaled to --users."""

    # we read --users/--run-time/--spawn-rate ourselves; also silences Locust's "options ignored" warning
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        runner: Any = self.runner
        opts: Any = runner.environment.parsed_options
        run_s = float(opts.run_time) if opts.run_time else DEFAULT_SHAPE_RUN_S
        peak = int(opts.num_users or 1)
        elapsed_s: float = self.get_run_time()  # type: ignore[no-untyped-call]
        # picked in the web UI without --shape: run the constant shape
        users = users_at(opts.shape or "constant", elapsed_s, run_s, peak)
        if users is None:
            return None
        return users, float(opts.spawn_rate or max(1, peak))
