"""Load shapes as stage data: (end as a fraction of the run, users as a fraction of --users). Pure."""

from __future__ import annotations

from typing import Final

# Each stage runs until `end` (fraction of the run time) at `users` (fraction of --users). In the open model
# a user is one arrival stream at arrival_rate / --users, so the same stages scale the arrival rate.
STAGES: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    "constant": ((1.0, 1.0),),
    "step": ((0.25, 0.25), (0.5, 0.5), (0.75, 0.75), (1.0, 1.0)),
    "ramp": tuple((i / 10, i / 10) for i in range(1, 11)),
    "spike": ((0.4, 0.2), (0.6, 1.0), (1.0, 0.2)),
}
DEFAULT_SHAPE_RUN_S: Final = 60.0


def users_at(shape: str, elapsed_s: float, run_s: float, peak_users: int) -> int | None:
    """Users the shape asks for elapsed_s into a run of run_s; None once the run is over."""
    if shape not in STAGES:
        raise ValueError(f"unknown shape {shape!r} (use {', '.join(STAGES)})")
    if run_s <= 0 or elapsed_s >= run_s:
        return None
    fraction = elapsed_s / run_s
    for end, users in STAGES[shape]:
        if fraction < end:
            return max(1, round(users * peak_users))
    return None
