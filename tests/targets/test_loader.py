"""Target files: parse errors name the file and key, placeholders are checked at load, requests build right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from targets import TargetError, builtin_path, load_target, parse_target
from targets.request import SEQ_BLOCK, RequestBuilder

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fastapi_arq" / "target.toml"
VALUES = {"port": "8123", "redis_url": "redis://127.0.0.1:1/0", "redis_host": "127.0.0.1", "redis_port": "1"}
VALUES["python"] = "/usr/bin/python3"

GOOD = """
[service]
api = "uvicorn main:app --port {port}"
worker = "arq worker.WorkerSettings"
ready = "/health"
env = { REDIS_URL = "{redis_url}" }

[modes.offload]
path = "/tasks/{seq}"
json = { x = 1.5, user = "bench-{seq}", tags = ["{uuid}", "lit{{eral}}"] }
expect = [202]
job_id = "data.job_id"

[jobs]
tracker = "arq"
"""


def test_builtin_and_example_load() -> None:
    target, path = load_target(None)
    assert path == builtin_path().resolve()
    assert set(target.modes) == {"noop", "sync", "offload", "inprocess"}  # inprocess: opt-in with --modes
    assert target.jobs.tracker == "records" and target.offload_modes() == ["offload", "inprocess"]
    example, _ = load_target(EXAMPLE)
    assert example.jobs.tracker == "arq" and set(example.modes) == {"sync", "offload"}
    assert example.service.redis_auth  # the embedded Redis has a password unless a target says otherwise
    hostport, _ = load_target(EXAMPLE.parents[1] / "fastapi_arq_hostport" / "target.toml")
    assert not hostport.service.redis_auth and set(hostport.modes) == {"sync", "offload"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace('ready = "/health"', 'ready = "/health"\nreddy = 1'),
            "t.toml: service.reddy: unknown key",
        ),
        (GOOD.replace("{seq}", "{sq}", 1), "t.toml: modes.offload.path: unknown placeholder {sq}"),
        (GOOD.replace("--port {port}", "--port {seq}"), "t.toml: service.api: unknown placeholder {seq}"),
        (GOOD.replace("bench-{seq}", "bench-{"), "t.toml: modes.offload.json.user: stray '{'"),
        (GOOD.replace('tracker = "arq"', 'tracker = "bogus"'), "t.toml: jobs.tracker: Input should be"),
        (
            GOOD.replace('tracker = "arq"', 'tracker = "http"'),
            't.toml: jobs: Value error, tracker "http" needs',
        ),
        (
            GOOD.replace('api = "uvicorn main:app --port {port}"', 'url = "http://127.0.0.1:1"'),
            "worker is started",
        ),
        (GOOD.split("[modes.offload]")[0], "t.toml: modes: Field required"),
        (GOOD.replace("expect = [202]", "expect = [2020]"), "expect: 2020 is not an HTTP status"),
        (GOOD.replace("[jobs]", "[jobs"), "t.toml: not valid TOML"),
        (GOOD.replace('job_id = "data.job_id"', ""), 'tracker "arq" needs a mode with job_id'),
        (
            GOOD.replace('ready = "/health"', 'ready = "/health"\nredis_auth = "no"'),
            "t.toml: service.redis_auth: must be true or false",
        ),
    ],
)
def test_bad_target_is_one_line_naming_file_and_key(text: str, expected: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(text, "t.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("t.toml: ")
    assert expected.replace("Value error, ", "") in message


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"cannot read target file .*nope\.toml"):
        load_target(tmp_path / "nope.toml")


def test_url_alone_starts_nothing() -> None:
    target = parse_target('url = "http://127.0.0.1:9"\n[modes.get]\nmethod = "GET"\npath = "/"\n', "u.toml")
    assert target.service.url == "http://127.0.0.1:9" and not target.starts_processes
    assert target.jobs.tracker == "none"


def test_request_building_expands_placeholders_per_request() -> None:
    target = parse_target(GOOD, "t.toml")
    builder = RequestBuilder("offload", target.modes["offload"], VALUES, proc_index=2)
    first, second = builder.build(), builder.build('"pad":"xx"')
    assert first.path == f"/tasks/{2 * SEQ_BLOCK + 1}" and second.path == f"/tasks/{2 * SEQ_BLOCK + 2}"
    body = json.loads(first.body or "")
    assert body["user"] == f"bench-{2 * SEQ_BLOCK + 1}" and body["x"] == 1.5
    assert len(body["tags"][0]) == 32 and body["tags"][1] == "lit{eral}"
    assert json.loads(second.body or "")["pad"] == "xx"
    assert json.loads(second.body or "")["tags"][0] != body["tags"][0]
    assert first.headers["Content-Type"] == "application/json"
    assert builder.path_name == "/tasks/{seq}"


def test_seq_is_unique_across_processes() -> None:
    target = parse_target(GOOD, "t.toml")
    seen = set()
    for proc in range(3):
        builder = RequestBuilder("offload", target.modes["offload"], VALUES, proc_index=proc)
        seen |= {builder.build().path for _ in range(100)}
    assert len(seen) == 300


def test_raw_body_and_start_time_values() -> None:
    text = GOOD.replace('json = { x = 1.5, user = "bench-{seq}", tags = ["{uuid}", "lit{{eral}}"] }', "")
    text = text.replace(
        "[modes.offload]", '[modes.offload]\nbody = "n={seq}&r={redis_port}"\nheaders = { X-Id = "{uuid}" }'
    )
    builder = RequestBuilder("offload", parse_target(text, "t.toml").modes["offload"], VALUES)
    req = builder.build()
    assert req.body == "n=1&r=1" and len(req.headers["X-Id"]) == 32
    assert "Content-Type" not in req.headers


def test_job_id_extraction() -> None:
    builder = RequestBuilder("offload", parse_target(GOOD, "t.toml").modes["offload"], VALUES)
    assert builder.job_id({"data": {"job_id": "abc"}}) == "abc"
    assert builder.job_id({"data": {"job_id": 17}}) == "17"
    for missing in (
        {"data": {}},
        {"data": {"job_id": ""}},
        {"data": None},
        [],
        None,
        {"data": {"job_id": True}},
    ):
        assert builder.job_id(missing) is None
