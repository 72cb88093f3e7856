"""/admin/dlq on the real API (uvicorn subprocess): bearer token, disabled without one, list/show/redrive/purge."""

from __future__ import annotations

import time

import httpx

from service import keys
from tests.service.test_dlq import park

TOKEN = "s3cret-token"


def test_admin_disabled_without_a_configured_token(start_api):
    api = start_api()
    r = httpx.get(f"{api.url}/admin/dlq", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and "disabled" in r.json()["detail"]


def test_admin_token_and_dlq_operations(start_api, client):
    api = start_api(OFFLOAD_ADMIN_TOKEN=TOKEN)
    now = time.time()
    park(client, "job-1", "src-1", now - 5)
    park(client, "job-2", "src-2", now)
    park(client, "job-3", "src-3", now - 1)
    with httpx.Client(base_url=api.url, timeout=5) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, path in (
                ("GET", "/admin/dlq"),
                ("POST", "/admin/dlq/redrive"),
                ("DELETE", "/admin/dlq"),
            ):
                r = http.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers)
                assert r.headers["www-authenticate"] == "Bearer" and "detail" in r.json()
        assert client.hlen(keys.DLQ) == 3  # nothing happened without the token

        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = http.get("/admin/dlq", headers=auth).json()
        assert body["count"] == 3 and [r["job_id"] for r in body["records"]] == ["job-2", "job-3", "job-1"]
        assert http.get("/admin/dlq?limit=1&offset=1", headers=auth).json()["records"][0]["job_id"] == "job-3"
        one = http.get("/admin/dlq/job-1", headers=auth)
        assert one.status_code == 200 and one.json()["source_id"] == "src-1" and "traceback" in one.json()
        assert http.get("/admin/dlq/nope", headers=auth).status_code == 404
        assert http.get("/admin/dlq?limit=0", headers=auth).status_code == 422

        r = http.post("/admin/dlq/job-1/redrive", headers=auth)
        assert r.status_code == 200 and r.json()["redriven"] == "job-1" and r.json()["redrives"] == 1
        assert client.zscore("arq:queue", "job-1") is not None and not client.hexists(keys.DLQ, "job-1")
        assert http.post("/admin/dlq/job-1/redrive", headers=auth).status_code == 404  # not in the DLQ now

        r = http.post("/admin/dlq/redrive", headers=auth)
        assert r.status_code == 200 and r.json() == {"redriven": 2, "skipped": []}
        assert client.hlen(keys.DLQ) == 0 and client.zcard("arq:queue") == 3
        park(client, "job-9", "src-9", time.time())
        r = http.delete("/admin/dlq", headers=auth)
        assert r.status_code == 200 and r.json() == {"purged": 1}
        assert client.hlen(keys.DLQ) == 0
    assert "Traceback" not in api.log()
