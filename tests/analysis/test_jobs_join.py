"""The Arrow join of accepted ids to job records counts exactly what a plain-Python reading of the same files
counts, on random data with repeated answers, duplicate records (the last one wins), unaccepted records,
records without an id and a line Arrow cannot parse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.report import build_report
from tests.analysis.runs import samples_frame, write_run

KNOWN = ("done", "dead", "pending", "running")


def _reference(answers: list[tuple[int, str]], records: list[dict]) -> dict:
    accepted = list(dict.fromkeys(j for status, j in answers if 200 <= status < 300 and j))
    last = {}
    for rec in records:
        last[str(rec.get("job_id"))] = rec  # a missing id counts as one id ("None"), as before the change
    states = [last[j]["state"] if j in last else None for j in accepted]
    return {
        "accepted": len(accepted),
        "completed": states.count("done"),
        "dead_lettered": states.count("dead"),
        "pending": states.count("pending") + states.count("running"),
        "lost": sum(s not in KNOWN for s in states),
        "lost_ids_sample": [j for j, s in zip(accepted, states, strict=True) if s not in KNOWN][:10],
        "duplicate_records": len(records) - len(last),
        "unaccepted_records": len(set(last) - set(accepted)),
        "duplicates": sum(max(0, last[j]["executions"] - 1) for j in accepted if j in last),
    }


@pytest.mark.parametrize("bad_line", [False, True])
def test_join_counts_equal_a_plain_python_reading(tmp_path, bad_line):
    rng = np.random.default_rng(11)
    n = 4000
    ids = np.array([f"job-{i:05d}" for i in rng.integers(0, 3000, n)])  # repeats: replayed answers
    status = np.where(rng.random(n) < 0.05, 500, 202)
    ids[rng.random(n) < 0.02] = ""  # a 2xx without an id is no accepted job
    frame = samples_frame("offload", rng.lognormal(2, 0.5, n), status=status, ok=(status == 202).astype(int))
    frame["job_id"] = ids
    records = []
    for j in sorted(set(ids) - {""})[:2600]:  # the rest: accepted, never recorded (lost)
        records.append({"job_id": j, "state": str(rng.choice(["done", "dead", "pending", "running", "missing"])),
                        "enqueued_ts": 1.7e9, "attempts": [], "executions": int(rng.integers(0, 3)), "redrives": 0})  # fmt: skip
    records += [dict(r, state="done") for r in records[:40]]  # re-exported records: the last one wins
    records += [{"job_id": f"other-{i}", "state": "done", "executions": 1, "redrives": 0} for i in range(25)]
    records += [
        {"state": "done", "executions": 1, "redrives": 0},
        {"state": "dead", "executions": 1, "redrives": 0},
    ]
    run_dir = write_run(tmp_path / "r", {"offload": frame})
    lines = [json.dumps(r) for r in records]
    if bad_line:
        lines.insert(100, '{"job_id": "broken", "state": ')  # Arrow rejects the file: the tolerant path
    (run_dir / "jobs").mkdir()
    (run_dir / "jobs" / "offload.jsonl").write_text("\n".join(lines) + "\n")
    summary = build_report(run_dir)
    jobs = summary["modes"]["offload"]["jobs"]
    expected = _reference(list(zip(status.tolist(), ids.tolist(), strict=True)), records)
    assert {k: jobs[k] for k in expected} == expected
    assert any("1 unreadable line" in n for n in summary["validity"]["notes"]) == bad_line
