"""summary.json: the committed JSON Schema is current, real summaries validate against it, readers are typed."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from analysis.report import build_report
from analysis.synthetic import write_synthetic_run
from runfolder.schema import SUMMARY_FILE
from runfolder.summary import SCHEMA_FILE, SummaryError, parse_summary, read_summary, schema_text, typed_value

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden_run"
BASELINE = REPO / "reports" / "baseline"


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """summary.json of the golden fixture and of a freshly generated synthetic run, built by analysis."""
    tmp = tmp_path_factory.mktemp("summaries")
    golden = tmp / "golden"
    shutil.copytree(GOLDEN, golden)
    build_report(golden)
    synthetic = write_synthetic_run(tmp / "synthetic", {"noop": 300, "sync": 300, "offload": 300}, seed=3)
    build_report(synthetic)
    return {name: json.loads((tmp / name / SUMMARY_FILE).read_text()) for name in ("golden", "synthetic")}


def test_committed_schema_is_the_models_schema() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "runfolder/summary.schema.json is stale: python -m runfolder.summary > runfolder/summary.schema.json"
    )


def test_real_summaries_validate_against_the_committed_schema(generated: dict[str, dict[str, Any]]) -> None:
    validator = _validator()
    committed = sorted(BASELINE.glob("*.summary.json"))
    assert committed, "the committed baseline holds summaries written by an earlier version"
    summaries = {**generated, **{p.name: json.loads(p.read_text()) for p in committed}}
    for name, data in summaries.items():
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], name
        model = parse_summary(data, name)
        assert set(model.modes) == set(data["modes"])
        assert model.modes["offload"].jobs is not None


def test_schema_rejects_a_wrong_type_and_a_missing_section(generated: dict[str, dict[str, Any]]) -> None:
    validator = _validator()
    bad = copy.deepcopy(generated["golden"])
    bad["modes"]["offload"]["latency_ms"]["p95"] = "fast"
    assert not validator.is_valid(bad)
    with pytest.raises(SummaryError, match=r"modes\.offload\.latency_ms\.p95"):
        parse_summary(bad)
    del bad["validity"]
    assert not validator.is_valid(bad)


def test_other_versions_are_refused_with_one_line(
    tmp_path: Path, generated: dict[str, dict[str, Any]]
) -> None:
    path = tmp_path / SUMMARY_FILE
    path.write_text(json.dumps({**generated["golden"], "schema_version": 2}))
    with pytest.raises(SummaryError, match="summary schema_version 2, this tool reads 1"):
        read_summary(path)


def test_typed_value_reads_declared_fields_only(generated: dict[str, dict[str, Any]]) -> None:
    data = copy.deepcopy(generated["golden"])
    data["modes"]["offload"]["undeclared"] = 7  # kept (forward compatible) but not readable by path
    model = parse_summary(data)
    assert typed_value(model, "modes.offload.latency_ms.p95") == data["modes"]["offload"]["latency_ms"]["p95"]
    assert typed_value(model, "run.load.users") == data["run"]["load"]["users"]
    assert (
        typed_value(model, "modes.offload.windows.requests.0")
        == data["modes"]["offload"]["windows"]["requests"][0]
    )
    for path in ("modes.offload.undeclared", "modes.batch.rps", "validity.nope", "run.load.shape"):
        with pytest.raises(KeyError):
            typed_value(model, path)  # undeclared, absent, or null (the golden run's shape is null)
