"""capacity.json: the typed result of a capacity search (CAPACITY_SCHEMA_VERSION); on disk: capacity_file.py.

The contract keys other tools read: modes.<m>.max_rate.{fast, ok} (req/s, null when not sustainable anywhere in
the range), modes.<m>.steps[] {rate, achieved_rate, p50, p95, p99, error_rate, generator_limited, sustainable,
reason}, modes.<m>.jobs.max_rate (offload-like modes), workers.<n>.max_job_rate, usl.{sigma, kappa},
validity.{valid, notes}, and with --repeat N: repeat.figures.<name>.{median, min, max, spread}.
Everything else is there to explain those numbers.

Versions (issue 23; each field's description says why): 2, steps' `duration_s`, `settle`, `runs`, brackets'
`width`, `cut_by`, the result's `repeat`; 3, modes' `crossing` {fast, ok} (the quoted figure where known),
steps' `other_cores`; 4, steps' `workers_nice`; 5, steps' `cores` (by role: api, redis, workers, generator,
command: where a knee that moves between searches spent the machine) and `repeat.api_cpu`.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

CAPACITY_SCHEMA_VERSION: Final = 5
CAPACITY_FILE: Final = "capacity.json"
Target = Literal["fast", "ok", "jobs"]
# what bounds a bracket from above: the server failed there, the generator could not offer that rate, the
# range (--max-rate) ended; "none": not sustainable even at --min-rate; "unmeasured": no step yet
LimitedBy = Literal["server", "generator", "range", "none", "unmeasured"]
# what ended a bracket's narrowing before the precision asked for ("": it was not cut short)
CutBy = Literal["", "budget", "max-steps", "interrupted", "resolution"]


def rate_text(rate: float) -> str:
    """A rate as the reports write it: 12.5, 31, 1,900 (whole numbers from 10 up)."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settle(_Model):
    """The state a step started from: the previous step's requests and jobs gone (issue 23)."""

    waited_s: float = Field(0.0, description="time spent waiting for the stack to be idle before the step")
    queue_left: int | None = Field(
        None, description="jobs the previous step left in the queue when the settle began (null: no queue)"
    )
    inflight: int | None = Field(
        None, description="requests of earlier steps still unanswered when the step started (null: unknown)"
    )
    queue: int | None = Field(
        None,
        description="jobs in the queue (ready, deferred, in progress) when the step started (null: none)",
    )
    restarted: bool = Field(False, description="the stack was restarted: it did not go idle within the bound")
    note: str = ""


class Step(_Model):
    """One step of the search: an ordinary run at one offered rate, and what it says about each target."""

    rate: float = Field(description="offered arrival rate asked of the generator, req/s")
    arrival_rate: float | None = Field(
        None, description="arrivals the server actually got per second in the measured window (Poisson: +-)"
    )
    achieved_rate: float | None = Field(
        None, description="responses completed per second in the measured window"
    )
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    percentile_ms: float | None = Field(None, description="the chosen percentile (corrected latency), ms")
    uncorrected_ms: float | None = Field(
        None, description="the chosen percentile measured from the actual send (generator delay excluded)"
    )
    error_rate: float | None = None
    requests: int = 0
    enough_samples: bool = True
    sent_on_time: float | None = Field(None, description="fraction of scheduled arrivals sent on time")
    loadgen_cpu_percent: float | None = None
    inflight_slope_per_s: float | None = Field(
        None, description="growth of requests in flight (server queue)"
    )
    backlog_slope_per_s: float | None = Field(
        None,
        description="growth per second of the jobs overdue (accepted longer ago than a normal job takes, not "
        "finished) after the step's start-up; from the queue depth when the job records lack times",
    )
    backlog_limit_per_s: float | None = Field(
        None,
        description="growth beyond this counts (the run thresholds' floor, or what a steady count wanders)",
    )
    backlog_growing: bool | None = Field(
        None, description="the workers fell behind (null: not known, e.g. the step is short for its jobs)"
    )
    backlog_note: str = Field("", description="why backlog_growing is null")
    job_time_s: float | None = Field(None, description="a normal job's time in the system (the first jobs')")
    jobs_accepted: int | None = None
    jobs_lost: int | None = None
    job_rate: float | None = Field(
        None,
        description="jobs completed per second after the start-up (the workers' rate when backlog_growing)",
    )
    workers: int | None = None
    workers_nice: int | None = Field(
        None,
        description="the workers' nice value during the step (19 in a mode's search: they take only the CPU the "
        "API, Redis and the generator leave; 0 in the worker steps; null: no workers started here)",
    )
    machine_cpu_percent: float | None = Field(None, description="all cores' busy share during the step")
    other_cores: float | None = Field(
        None,
        description="cores used by processes outside this command during the step (another job on the machine; "
        "beyond 0.35 the step's figures are not only the server's and the search is not valid)",
    )
    cores: dict[str, float] | None = Field(
        None,
        description="cores each of the command's own processes used during the step, by role: api, redis, "
        "workers, generator (the load processes), command (this command itself); null: not sampled",
    )
    generator_limited: bool = False
    sustainable: bool = Field(False, description="holds the 'ok' target (and every other check)")
    fast: bool = Field(False, description="holds the 'fast' target (and every other check)")
    jobs_sustainable: bool | None = None
    verdicts: dict[str, Literal["pass", "fail", "unknown"]] = Field(default_factory=dict)
    reason: str = ""
    run_dir: str | None = None
    duration_s: float | None = Field(None, description="load time of the step (warm-up included), s")
    settle: Settle | None = None
    marginal: str = Field(
        "", description="why the step was repeated (a marginal verdict), '' when it was not"
    )
    runs: list[str] = Field(
        default_factory=list, description="a repeated step: every run folder it is judged on (pooled samples)"
    )


class Bracket(_Model):
    """Where the search left one target: sustainable at `low`, not at `high`, and why it stopped."""

    low: float | None = None
    high: float | None = None
    limited_by: LimitedBy = "unmeasured"
    complete: bool = Field(False, description="narrowed to the precision asked for (not cut short)")
    width: float | None = Field(None, description="high / low: how far the bracket is from one rate")
    cut_by: CutBy = Field("", description="what ended the narrowing before the precision asked for")


class MaxRate(_Model):
    """The highest sustainable rate per latency target, req/s (null: not sustainable anywhere in range)."""

    fast: float | None = None
    ok: float | None = None


class Jobs(_Model):
    """An offload-like mode's job side: the highest arrival rate with a bounded backlog."""

    max_rate: float | None = None
    basis: str = Field(
        "search",
        description="workers: the job rate the search's worker count completed when saturated; search: the "
        "highest step rate whose backlog stayed bounded",
    )
    bracket: Bracket = Field(default_factory=Bracket)


class ModeResult(_Model):
    """One mode's search."""

    percentile: str
    max_rate: MaxRate = Field(default_factory=MaxRate)
    crossing: MaxRate = Field(
        default_factory=MaxRate,
        description="where the judged percentile crosses each limit, req/s: log-log between the bracket's step "
        "that held and the one that failed on its latency (null: no such pair; max_rate is the figure)",
    )
    brackets: dict[str, Bracket] = Field(default_factory=dict)
    jobs: Jobs | None = None
    steps: list[Step] = Field(default_factory=list)

    def quoted(self, target: Literal["fast", "ok"]) -> float | None:
        """The figure the headline quotes: the crossing where known, else the highest rate that held."""
        crossing, held = (
            (self.crossing.fast, self.max_rate.fast)
            if target == "fast"
            else (self.crossing.ok, self.max_rate.ok)
        )
        return crossing if crossing is not None else held


class WorkerPoint(_Model):
    """Job completions per second with n workers under a saturating arrival rate."""

    max_job_rate: float | None = None
    offered_rate: float | None = None
    machine_cpu_percent: float | None = None
    step: Step | None = None


class Need(_Model):
    """At `rate` jobs/s you need `workers` workers (null: no worker count reaches it on this machine)."""

    rate: float
    workers: int | None


class USL(_Model):
    """Universal Scalability Law X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1)), least squares."""

    sigma: float | None = None
    kappa: float | None = None
    lambda_: float | None = Field(None, alias="lambda", description="one worker's job rate, jobs/s")
    peak_workers: float | None = None
    peak_rate: float | None = None
    points: int = 0
    fitted: list[str] = Field(default_factory=list, description="which parameters were fitted")
    needs: list[Need] = Field(default_factory=list)
    note: str = ""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Validity(_Model):
    """Whether the capacities can be trusted; notes say why not, info are caveats."""

    valid: bool = True
    notes: list[str] = Field(default_factory=list)
    info: list[str] = Field(default_factory=list)


class Figure(_Model):
    """One quoted figure over the searches of --repeat N: each search's value, their median and spread."""

    values: list[float | None] = Field(default_factory=list)
    median: float | None = None
    min: float | None = None
    max: float | None = None
    spread: float | None = Field(None, description="max / min (1.0: every search gave the same figure)")


class ApiCost(_Model):
    """The API's own CPU per request at one rate asked, in each search of --repeat N."""

    rate: float = Field(description="the highest rate asked that held 'ok' in every search (req/s)")
    us: Figure = Field(description="µs of the API's CPU per request there (steps[].cores.api / arrivals)")


class Repeat(_Model):
    """--repeat N: the whole search run N times; each quoted figure's median and spread."""

    n: int
    searches: list[str] = Field(default_factory=list, description="each search's folder (capacity.json)")
    valid: list[bool] = Field(default_factory=list, description="each search's validity")
    wall_s: list[float] = Field(default_factory=list, description="each search's wall time, s")
    figures: dict[str, Figure] = Field(
        default_factory=dict,
        description="<mode>.fast, <mode>.ok (req/s), <mode>.jobs (jobs/s), workers.<n> (jobs/s)",
    )
    api_cpu: dict[str, ApiCost] = Field(
        default_factory=dict,
        description="per mode: the API's CPU per request at a rate every search held, in each search (the same "
        "load in each: a search whose server ran slower shows there as well as in its figures)",
    )


class CapacityResult(_Model):
    """Everything a capacity search found: capacity.json."""

    schema_version: int = CAPACITY_SCHEMA_VERSION
    id: str
    created_ts: float
    status: Literal["complete", "interrupted", "partial"] = "complete"
    meta: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    headline: list[str] = Field(default_factory=list)
    modes: dict[str, ModeResult] = Field(default_factory=dict)
    workers: dict[str, WorkerPoint] = Field(default_factory=dict)
    usl: USL | None = None
    validity: Validity = Field(default_factory=Validity)
    wall_s: float | None = Field(None, description="the search's wall time, s")
    repeat: Repeat | None = None
