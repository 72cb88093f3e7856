"""The API over real HTTP (uvicorn subprocess, real Redis): modes, errors as JSON, idempotency, health, metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from arq.constants import default_queue_name

from service import keys
from tests.service import test_worker as support

start_worker = support.start_worker  # fixture

BODY = {"user_id": "user-1", "name": "calendar"}


def _status_and_json(resp: httpx.Response) -> tuple[int, dict[str, object]]:
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    return resp.status_code, resp.json()


def test_noop_creates_source_and_get_returns_it(api_url: str, redis_url: str) -> None:
    with httpx.Client(base_url=api_url) as c:
        code, body = _status_and_json(c.post("/noop/sources", json=BODY))
        assert code == 201 and body["state"] == "created"
        got = c.get(f"/sources/{body['source_id']}").json()
    assert got["user_id"] == "user-1" and got["name"] == "calendar" and got["mode"] == "noop"
    assert got["state"] == "created" and got["created_ts"] > 0
    r = redis.Redis.from_url(redis_url)
    assert r.zcard(default_queue_name) == 0  # noop enqueues nothing
    assert r.ttl(keys.source(str(body["source_id"]))) > 0  # bounded memory over a long run
    r.close()


def test_sync_runs_backfill_before_answering(api_url: str, redis_url: str) -> None:
    with httpx.Client(base_url=api_url) as c:
        code, body = _status_and_json(c.post("/sync/sources", json=BODY))
        assert code == 201 and body["state"] == "done" and body["pages"] == 3 and body["attempts"] == 1
        got = c.get(f"/sources/{body['source_id']}").json()
    assert got["state"] == "done" and got["result_digest"] == body["result_digest"]
    assert got["started_ts"] <= got["done_ts"]
    r = redis.Redis.from_url(redis_url)
    assert r.hlen(keys.source_data(str(body["source_id"]))) == 3
    r.close()


def test_offload_enqueues_one_job(api_url: str, redis_url: str) -> None:
    with httpx.Client(base_url=api_url) as c:
        code, body = _status_and_json(c.post("/offload/sources", json=BODY))
        assert code == 202 and set(body) == {"source_id", "job_id"}
        got = c.get(f"/sources/{body['source_id']}").json()
    assert got["state"] == "pending" and got["job_id"] == body["job_id"] and got["attempts"] == 0
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.zrange(default_queue_name, 0, -1) == [body["job_id"]]
    record = r.hgetall(keys.job(str(body["job_id"])))
    assert record["source_id"] == body["source_id"] and record["state"] == "pending"
    assert record["executions"] == "0" and record["redrives"] == "0" and float(record["enqueued_ts"]) > 0
    assert r.hget(keys.STATS, "enqueued") == "1"
    r.close()


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"{not json", {}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (b'{"user_id": "u"}', {"content-type": "application/json"}),
        (b'{"user_id": "", "name": "n"}', {"content-type": "application/json"}),
        (b'{"user_id": "' + b"u" * 65 + b'", "name": "n"}', {"content-type": "application/json"}),
        (b'{"user_id": 5, "name": "n"}', {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b'{"user_id": "u", "name": "n", ' + b", ".join(b'"x%d": 1' % i for i in range(17)) + b"}", {}),
    ],
    ids=[
        "bad-json",
        "bad-json-no-ctype",
        "array",
        "missing",
        "empty",
        "too-long",
        "wrong-type",
        "empty-body",
        "too-many-extras",
    ],
)
def test_invalid_bodies_get_422_json(shared_api_url: str, content: bytes, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=shared_api_url) as c:
        for mode in ("noop", "sync", "offload"):
            code, body = _status_and_json(c.post(f"/{mode}/sources", content=content, headers=headers))
            assert code == 422, body
            assert body["detail"]


def test_extra_fields_within_bound_are_accepted(shared_api_url: str) -> None:
    with httpx.Client(base_url=shared_api_url) as c:
        resp = c.post("/noop/sources", json={**BODY, "kind": "google", "scopes": ["a", "b"]})
    assert resp.status_code == 201


def test_oversized_body_gets_413_by_length_and_by_stream(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(OFFLOAD_MAX_BODY_BYTES="1024")
    big = b'{"user_id": "u", "name": "' + b"n" * 2000 + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for i in range(0, len(big), 256):
            yield big[i : i + 256]

    with httpx.Client(base_url=api.url) as c:
        code, body = _status_and_json(c.post("/offload/sources", content=big))
        assert code == 413 and "1024" in str(body["detail"])
        streamed = c.post("/offload/sources", content=chunks())
        assert streamed.request.headers.get("transfer-encoding") == "chunked"
        code, body = _status_and_json(streamed)
        assert code == 413
        # a small chunked body still goes through (the replayed body reaches the app intact)
        ok = c.post(
            "/offload/sources",
            content=iter([b'{"user_id": "u",', b' "name": "n"}']),
            headers={"content-type": "application/json"},
        )
        assert ok.status_code == 202, ok.text
    r = redis.Redis.from_url(api.env["OFFLOAD_REDIS_URL"])
    assert r.zcard(default_queue_name) == 1  # only the small one
    r.close()


def test_unknown_routes_and_ids_get_404_json(shared_api_url: str) -> None:
    with httpx.Client(base_url=shared_api_url) as c:
        for path in ("/nope", "/sources/0123456789abcdef", "/sources/" + "x" * 200):
            code, body = _status_and_json(c.get(path))
            assert code == 404 and body["detail"]
        code, _ = _status_and_json(c.get("/offload/sources"))  # wrong method on a known path
        assert code == 405


@pytest.mark.parametrize(("mode", "status"), [("noop", 201), ("sync", 201), ("offload", 202)])
def test_idempotency_key_returns_same_source_and_one_job(
    api_url: str, redis_url: str, mode: str, status: int
) -> None:
    with httpx.Client(base_url=api_url) as c:
        first = c.post(f"/{mode}/sources", json=BODY, headers={"Idempotency-Key": "k-1"})
        again = c.post(f"/{mode}/sources", json=BODY, headers={"Idempotency-Key": "k-1"})
        other = c.post(f"/{mode}/sources", json=BODY, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == again.status_code == other.status_code == status
    assert first.json()["source_id"] == again.json()["source_id"] != other.json()["source_id"]
    r = redis.Redis.from_url(redis_url)
    assert len(list(r.scan_iter(match=keys.source("*"), _type="hash"))) == 2 + (2 if mode == "sync" else 0)
    if mode == "offload":
        assert first.json()["job_id"] == again.json()["job_id"] != other.json()["job_id"]
        assert r.zcard(default_queue_name) == 2 and r.hget(keys.STATS, "enqueued") == b"2"
    r.close()


@pytest.mark.parametrize("mode", ["noop", "sync", "offload"])
def test_idempotency_key_is_scoped_per_user_and_bound_to_the_body(shared_api_url: str, mode: str) -> None:
    key = {"Idempotency-Key": f"shared-{mode}-{time.time_ns()}"}  # the shared Redis is not flushed
    other_user = {**BODY, "user_id": "user-2"}
    with httpx.Client(base_url=shared_api_url) as c:
        mine = c.post(f"/{mode}/sources", json=BODY, headers=key)
        theirs = c.post(f"/{mode}/sources", json=other_user, headers=key)
        again = c.post(f"/{mode}/sources", json=BODY, headers=key)
        changed = c.post(f"/{mode}/sources", json={**BODY, "name": "mail"}, headers=key)
    assert mine.status_code == theirs.status_code == again.status_code, (mine.text, theirs.text)
    # another user's request with the same key is a request of its own, not a replay of mine
    assert theirs.json()["source_id"] != mine.json()["source_id"] == again.json()["source_id"]
    code, body = _status_and_json(changed)
    assert code == 422 and "Idempotency-Key" in str(body["detail"])


def test_idempotency_key_length_is_validated(shared_api_url: str) -> None:
    with httpx.Client(base_url=shared_api_url) as c:
        resp = c.post("/offload/sources", json=BODY, headers={"Idempotency-Key": "k" * 201})
    assert resp.status_code == 422


def test_healthz_reports_redis_and_freshest_worker_heartbeat(api_url: str, redis_url: str) -> None:
    with httpx.Client(base_url=api_url) as c:
        code, body = _status_and_json(c.get("/healthz"))
        assert code == 200 and body["redis"] == "ok" and body["workers"] == 0
        assert body["worker_heartbeat_age_s"] is None
        r = redis.Redis.from_url(redis_url)
        now = time.time()
        beats = {"w1": now - 30, "w2": now - 3, "w3": now - 1.5}  # w1 stopped beating long ago
        r.zadd(keys.WORKERS, {w: int(ts * 1000) for w, ts in beats.items()})
        r.config_resetstat()
        code, body = _status_and_json(c.get("/healthz"))
        answered = time.time()
        # issue 14.6: O(1) reads of one structure, never a SCAN of the keyspace
        assert "cmdstat_scan" not in r.info("commandstats") and "cmdstat_keys" not in r.info("commandstats")
        r.close()
    assert code == 200 and body["workers"] == 2
    # the freshest beat (w3), aged by however long the request took on this machine, never w2's 3 s
    age_s = float(body["worker_heartbeat_age_s"])  # type: ignore[arg-type]
    assert 1.5 - 0.01 <= age_s <= (answered - now) + 1.5 + 0.01, (age_s, answered - now)


def _metric(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in metrics:\n{text}")


def test_metrics_count_requests_jobs_and_queue_depth(api_url: str) -> None:
    with httpx.Client(base_url=api_url) as c:
        for _ in range(3):
            assert c.post("/offload/sources", json=BODY).status_code == 202
        assert c.post("/noop/sources", content=b"{").status_code == 422
        assert c.get("/nope").status_code == 404
        resp = c.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    route = 'method="POST",route="/offload/sources"'
    assert _metric(text, f'offload_http_requests_total{{{route},status="202"}}') == 3
    assert _metric(text, 'offload_http_requests_total{method="POST",route="/noop/sources",status="422"}') == 1
    assert _metric(text, 'offload_http_requests_total{method="GET",route="unmatched",status="404"}') == 1
    assert _metric(text, f"offload_http_request_duration_seconds_count{{{route}}}") == 3
    assert _metric(text, f'offload_http_request_duration_seconds_bucket{{le="+Inf",{route}}}') == 3
    assert _metric(text, f"offload_http_request_duration_seconds_sum{{{route}}}") > 0
    assert _metric(text, "offload_jobs_enqueued_total") == 3
    assert _metric(text, "offload_jobs_completed_total") == 0
    assert _metric(text, "offload_queue_depth") == 3
    assert _metric(text, "offload_queue_ready") == 3
    assert _metric(text, "offload_redis_up") == 1
    assert 'status="500"' not in text


def test_inject_delay_slows_offload_only(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(OFFLOAD_INJECT_DELAY_MS="300")
    with httpx.Client(base_url=api.url) as c:
        start = time.perf_counter()
        assert c.post("/offload/sources", json=BODY).status_code == 202
        offload_s = time.perf_counter() - start
        metrics = c.get("/metrics").text
    assert offload_s >= 0.3
    assert (
        _metric(
            metrics,
            'offload_http_request_duration_seconds_bucket{le="0.25",method="POST",route="/offload/sources"}',
        )
        == 0
    )


def test_error_paths_never_reach_the_last_resort_handler(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api()
    json_ct = {"content-type": "application/json"}
    with httpx.Client(base_url=api.url) as c:
        answers = [
            c.post("/noop/sources", content=b"\xff\xfe"),
            c.post("/noop/sources", content=b'{"user_id": "\xff", "name": "n"}', headers=json_ct),
            c.post("/sync/sources", content=b'{"user_id": null, "name": {}}', headers=json_ct),
            c.post("/sync/sources", content=b"[" * 5000 + b"]" * 5000, headers=json_ct),
            c.post("/offload/sources", content=b'{"user_id": "u", "name": 1e999999}', headers=json_ct),
            c.post("/offload/sources", content=b"x" * 100_000),
            c.post("/offload/sources", json=BODY, headers={"Idempotency-Key": ""}),
            c.get("/sources/%00"),
            c.delete("/sources/x"),
        ]
        text = c.get("/metrics").text
    for resp in answers:
        assert 400 <= resp.status_code < 500, resp.text
        assert resp.headers["content-type"].startswith("application/json")
    assert 'status="500"' not in text
    assert "unhandled error" not in api.log() and "Traceback" not in api.log()


def test_a_redis_url_with_a_password_works_end_to_end_and_is_not_logged(
    start_api, redis_url: str, client: redis.Redis, start_worker
) -> None:
    # the test Redis has a password (like the CLI's embedded one): the API and the worker both use it
    password = redis.connection.parse_url(redis_url).get("password")
    assert password, "the test Redis must require a password"
    api = start_api()
    worker = start_worker()
    with httpx.Client(base_url=api.url) as c:
        accepted = c.post("/offload/sources", json=BODY).json()
        deadline = time.monotonic() + 15
        while c.get(f"/sources/{accepted['source_id']}").json()["state"] != "done":
            assert time.monotonic() < deadline, worker.log()[-2000:]
            time.sleep(0.05)
    no_password = redis_url.replace(f":{password}@", "@")
    wrong = start_api(redis_url_override=no_password)
    with httpx.Client(base_url=wrong.url) as c:
        assert c.get("/healthz").status_code == 503  # the password is enforced, and the API says so
    assert password not in api.log() and password not in wrong.log() and password not in worker.log()


def test_metrics_sum_every_uvicorn_worker_process(redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # prometheus_client's multiprocess mode: whichever process answers the scrape reports all processes' requests
    from tests.service.conftest import REPO, free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(OFFLOAD_REDIS_URL=redis_url, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "service.api:create_app", "--workers", "2"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("counter_*.db"))) < 2:  # one file per process once it has served
            assert time.monotonic() < deadline and proc.poll() is None, "two uvicorn workers did not serve"
            try:
                with httpx.Client(base_url=url) as c:  # a new connection each time: spread over processes
                    assert c.post("/noop/sources", json=BODY).status_code == 201
            except httpx.TransportError:
                time.sleep(0.1)
        sent = 0
        for _ in range(20):
            with httpx.Client(base_url=url) as c:
                assert c.post("/noop/sources", json=BODY).status_code == 201
                sent += 1
        with httpx.Client(base_url=url) as c:
            text = c.get("/metrics").text
        total = _metric(text, 'offload_http_requests_total{method="POST",route="/noop/sources",status="201"}')
        assert total >= sent + 2  # the requests of both processes, not only the scraped one's
    finally:
        proc.terminate()
        proc.wait(15)
