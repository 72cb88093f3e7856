"""run.json's sections as typed models: what readers (the gate, compare, baseline) may rely on.

Writers still patch run.json section by section (runfolder/rundir.py); these models are how it is read.
Every field a run of an older version, a Locust-only run or an interrupted one may lack is optional, and
unknown keys are kept (extra="allow"): a newer writer never makes an older reader fail.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    """A section that keeps keys it does not declare (forward compatible)."""

    model_config = ConfigDict(extra="allow")


class RunMeta(Open):
    """Facts that make runs comparable (runfolder.rundir.run_metadata)."""

    git_commit: str | None = None
    git_dirty: bool | None = None
    host: str | None = None
    cpu_count: int | None = None
    python: str | None = None
    platform: str | None = None
    versions: dict[str, str | None] = Field(default_factory=dict)


class LoadSection(Open):
    """run.json "load": the load the run applied (written once, by the process that knows it all)."""

    model: str | None = None
    users: int | None = None
    spawn_rate: float | None = None
    arrival_rate: float | None = None
    arrival: str | None = None
    shape: str | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    processes: int | None = None
    max_in_flight: int | None = None
    seed: int | None = None


class ModeRun(Open):
    """run.json "modes.<mode>": when a mode's load ran and what Locust counted."""

    start_ts: float | None = None
    end_ts: float | None = None
    host: str | None = None
    locust_requests: int | None = None
    locust_failures: int | None = None
    samples: int | None = None
    drain_s: float | None = None
    jobs_exported: int | None = None


class FaultRecord(Open):
    """One injected fault (faults.json and run.json "faults")."""

    name: str
    ts: float | None = None
    end_ts: float | None = None
    detail: Any = None


class RunJson(Open):
    """run.json as a whole."""

    schema_version: int
    run_id: str | None = None
    created_ts: float | None = None
    finished_ts: float | None = None
    status: str | None = None
    meta: RunMeta = Field(default_factory=RunMeta)
    load: LoadSection = Field(default_factory=LoadSection)
    work_profile: dict[str, Any] | None = None
    workers: int | None = None
    redis: str | None = None
    modes: dict[str, ModeRun] = Field(default_factory=dict)
    faults: list[FaultRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
