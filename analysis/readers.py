"""Readers for a run folder's CSV files: pyarrow first (typed columns, only the ones asked for, on every
core), pandas' lenient reader only when a file does not parse cleanly; and the tolerant JSON-lines parser.

Measured (benchmarks/bench_analysis.py, 1M samples): pandas' C reader took 1.4 s of the report's 11 s;
pyarrow reads the same files in about half, without the Python object per job id.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

# The C library's allocator, not Arrow's bundled mimalloc: mimalloc kept the freed parse buffers of a report
# (~60 MB at 1M samples, hundreds at 10M) as resident memory; malloc hands large blocks back to the system.
pa.set_memory_pool(pa.system_memory_pool())

# pandas dtype names (runfolder.schema.sample_dtypes) -> the Arrow type a column is read as
ARROW_TYPES: dict[str, pa.DataType] = {
    "float64": pa.float64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "category": pa.dictionary(pa.int32(), pa.string()),
    "object": pa.string(),
    "str": pa.string(),
}


class ReadError(Exception):
    """A file cannot be read at all; the message is one line for a person."""


def whole_lines(path: Path, rel: str, notes: list[str]) -> bytes | Path | None:
    """Return path when the file ends with a newline, else its bytes without the truncated last line."""
    if path.stat().st_size == 0:
        notes.append(f"{rel}: empty file")
        return None
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return path
    data = path.read_bytes()
    cut = data.rfind(b"\n")
    notes.append(f"{rel}: last line truncated (its writer stopped mid-line): dropped it")
    return data[: cut + 1] if cut >= 0 else None


def _header(source: bytes | Path) -> list[str]:
    if isinstance(source, bytes):
        head = source[:65536]
    else:
        with source.open("rb") as fh:
            head = fh.read(65536)
    return [c.strip() for c in head.split(b"\n", 1)[0].decode("utf-8", "replace").split(",")]


def _arrow_source(source: bytes | Path) -> Any:
    return pa.BufferReader(source) if isinstance(source, bytes) else str(source)


def arrow_schema(dtypes: dict[str, str]) -> pa.Schema:
    """The Arrow schema of columns given as pandas dtype names."""
    return pa.schema([(c, ARROW_TYPES[t]) for c, t in dtypes.items()])


def read_csv(source: bytes | Path, rel: str, required: tuple[str, ...], dtypes: dict[str, str]) -> pa.Table:
    """The dtypes' columns of one CSV file as an Arrow table; ReadError when its header lacks a required one.

    Empty fields are nulls (NaN in float columns); an empty integer field reads 0. A file the Arrow reader
    rejects (e.g. a quoted field across lines) is read again by pandas' reader, which is slower but lenient.
    """
    missing = [c for c in required if c not in _header(source)]
    if missing:
        raise ReadError(f"{rel}: header lacks {', '.join(missing)} (not a schema v1 file?)")
    schema = arrow_schema(dtypes)
    opts = pcsv.ConvertOptions(
        include_columns=list(dtypes), column_types=schema, null_values=[""], strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )  # fmt: skip
    try:
        table = pcsv.read_csv(_arrow_source(source), convert_options=opts)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table = _read_csv_pandas(source, rel, schema)
    for i, field in enumerate(table.schema):
        if pa.types.is_integer(field.type) and table.column(i).null_count:
            table = table.set_column(i, field, pc.fill_null(table.column(i), 0))
    return table


def _read_csv_pandas(source: bytes | Path, rel: str, schema: pa.Schema) -> pa.Table:
    try:
        df = pd.read_csv(
            io.BytesIO(source) if isinstance(source, bytes) else source, usecols=schema.names, dtype=str,
            keep_default_na=False, na_values=[""], engine="c",
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as exc:
        raise ReadError(f"{rel}: unreadable ({str(exc).splitlines()[0]})") from None
    columns = []
    for field in schema:
        col = pa.array(df[field.name].to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        try:
            columns.append(pc.cast(col, field.value_type).dictionary_encode() if pa.types.is_dictionary(field.type)
                           else pc.cast(col, field.type))  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ReadError(f"{rel}: unreadable column {field.name} ({str(exc).splitlines()[0]})") from None
    return pa.Table.from_arrays(columns, schema=schema)


def concat_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """One DataFrame of same-schema tables: dictionary columns become categoricals with unified categories."""
    table = pa.concat_tables(tables)
    del tables[:]  # let each table's buffers go as soon as its column is converted
    # self_destruct frees each Arrow column once converted: peak memory is about one copy, not two
    df: pd.DataFrame = table.to_pandas(self_destruct=True, split_blocks=True)
    return df


def parse_json_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """(the JSON objects of a JSON-lines text, one per line; how many non-blank lines were not objects)."""
    lines = [line for line in data.splitlines() if line.strip()]
    try:  # one decoder call for the whole text is ~30 % faster than one per line
        parsed = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:  # some line is bad: find which, line by line
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                parsed.append(None)
    records = [rec for rec in parsed if isinstance(rec, dict)]
    return records, len(lines) - len(records)
