"""capacity.json on disk: written atomically, read and validated, and its committed JSON Schema
(bench/capacity/capacity.schema.json; regenerate it with `python -m bench.capacity.capacity_file`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.capacity.model import CapacityResult


def capacity_schema() -> dict[str, Any]:
    """The JSON Schema of capacity.json."""
    return CapacityResult.model_json_schema(by_alias=True)


def write_json(result: CapacityResult, path: Path) -> None:
    """Write capacity.json (atomically: a reader never sees half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.model_dump(mode="json", by_alias=True), indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> CapacityResult:
    """Read and validate capacity.json."""
    return CapacityResult.model_validate_json(path.read_text())


if __name__ == "__main__":  # regenerate the committed schema: python -m bench.capacity.capacity_file
    Path(__file__).with_name("capacity.schema.json").write_text(
        json.dumps(capacity_schema(), indent=2) + "\n"
    )
