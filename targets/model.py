"""The target file as typed data: how to start a service, one request per mode, how to learn each job's fate.

Unknown keys are errors (extra="forbid"): a typo in a target file must not silently measure something else.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
TRACKERS = ("arq", "rq", "saq", "celery", "dramatiq", "http", "records", "none")
# modes that get the side-by-side comparison when present (any other name is measured on its own)
COMPARED_MODES = ("noop", "sync", "offload")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(_Strict):
    """[service]: the commands offload-bench starts (api, worker) or an API already running (url)."""

    api: str | None = Field(None, min_length=1, description="shell command of the API; use {port}")
    worker: str | None = Field(None, min_length=1, description="shell command of one worker process")
    ready: str | None = Field(
        None,
        pattern=r"^/",
        description="GET path that answers 2xx once the API is up (default: any answer to /)",
    )
    env: dict[str, str] = Field(default_factory=dict, description="environment of api and worker")
    url: str | None = Field(None, pattern=r"^https?://", description="an API already running")
    redis_auth: StrictBool = Field(
        True,
        description="false: the embedded Redis takes no password, for apps whose only Redis setting is "
        "host:port (it still listens on 127.0.0.1 only)",
    )

    @model_validator(mode="after")
    def _api_or_url(self) -> Service:
        if self.api and self.url:
            raise ValueError(
                "give either api (a command offload-bench starts) or url (a running API), not both"
            )
        if not self.api and not self.url:
            raise ValueError("needs api (a command offload-bench starts) or url (a running API)")
        if self.url and self.worker:
            raise ValueError("worker is started beside api: with url nothing is started")
        if self.api and "{port}" not in self.api and not any("{port}" in v for v in self.env.values()):
            raise ValueError(
                "the API must listen on {port} (a free port offload-bench picks): use it in api or env"
            )
        return self


class Mode(_Strict):
    """[modes.<name>]: one request template and what counts as success."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    json_body: Any = Field(None, alias="json", description="JSON body (a table, list or value)")
    body: str | None = Field(None, description="raw body, sent as is (set content-type in headers)")
    headers: dict[str, str] = Field(default_factory=dict)
    expect: list[int] = Field(default_factory=lambda: [200], min_length=1)
    job_id: str | None = Field(
        None, min_length=1, description="dotted path to the job id in the JSON answer (offload-like modes)"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_body(self) -> Mode:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give json or body, not both")
        bad = [s for s in self.expect if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"expect: {bad[0]} is not an HTTP status")
        return self


class Jobs(_Strict):
    """[jobs]: how each accepted job's fate is learnt."""

    tracker: Literal["arq", "rq", "saq", "celery", "dramatiq", "http", "records", "none"] = "none"
    queue: str = Field(
        "arq:queue",
        min_length=1,
        description="arq: WorkerSettings.queue_name; rq: the Queue's name; celery: the queue (default celery); "
        'dramatiq: "<queue>:<actor>"',
    )
    redis_url: str | None = Field(
        None,
        min_length=1,
        description="rq, saq, celery, dramatiq: the Redis holding the library's state when not the run's "
        "(placeholders allowed)",
    )
    status_path: str | None = Field(None, pattern=r"^/", description="http: e.g. /jobs/{job_id}")
    state: str = Field("status", min_length=1, description="http: dotted path to the state in the answer")
    done: list[str] = Field(default_factory=lambda: ["complete"], min_length=1)
    failed: list[str] = Field(default_factory=lambda: ["failed"])
    poll_rate: float = Field(200.0, gt=0, le=10_000, description="http: status requests per second at most")

    @model_validator(mode="after")
    def _http_needs_path(self) -> Jobs:
        if self.tracker == "http" and not self.status_path:
            raise ValueError('tracker "http" needs status_path, e.g. "/jobs/{job_id}"')
        if self.status_path and "{job_id}" not in self.status_path:
            raise ValueError("status_path must contain {job_id}")
        if self.tracker == "rq" and "queue" not in self.model_fields_set:
            raise ValueError('tracker "rq" needs queue: the name of the RQ Queue, e.g. "default"')
        if self.tracker == "saq" and "queue" not in self.model_fields_set:
            raise ValueError('tracker "saq" needs queue: the name of the SAQ Queue, e.g. "default"')
        if self.tracker == "dramatiq" and "queue" not in self.model_fields_set:
            raise ValueError('tracker "dramatiq" needs queue: "<queue>:<actor>", e.g. "default:divide"')
        if self.redis_url and self.tracker not in ("rq", "saq", "celery", "dramatiq"):
            raise ValueError(
                f'redis_url is read by trackers rq, saq, celery and dramatiq only, not "{self.tracker}"'
            )
        return self


class Target(_Strict):
    """A whole target file; a top-level url is short for [service] url."""

    service: Service
    modes: dict[str, Mode] = Field(min_length=1)
    jobs: Jobs = Field(default_factory=Jobs)

    @model_validator(mode="before")
    @classmethod
    def _top_level_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            data = dict(data)
            url = data.pop("url")
            if "service" in data:
                raise ValueError("url goes in [service] (or at the top without a [service] table), not both")
            data["service"] = {"url": url}
        return data

    @model_validator(mode="after")
    def _jobs_need_ids(self) -> Target:
        if self.jobs.tracker != "none" and not any(m.job_id for m in self.modes.values()):
            raise ValueError(f'[jobs] tracker "{self.jobs.tracker}" needs a mode with job_id')
        for name in self.modes:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"mode name {name!r}: use letters, digits, - and _")
        return self

    @property
    def starts_processes(self) -> bool:
        """True when offload-bench starts the API (and workers) itself."""
        return self.service.api is not None

    @property
    def ready_path(self) -> str:
        """The path polled until the API is up."""
        return self.service.ready or "/"

    def offload_modes(self) -> list[str]:
        """Modes whose answers carry a job id."""
        return [name for name, mode in self.modes.items() if mode.job_id]
