"""Raw rows of users' files: CSV/TSV, JSON lines, Parquet and RecBole atomic files.

Every format yields ``(line, {column: text})`` with the file's line number (Parquet: row
number), and reports rows it cannot even split into columns (bytes that are not UTF-8, a
JSON line that is not an object, a repeated header row, more fields than the header) to
``reject(line, reason, raw)``. What the values mean is ``gnn.datasets.files``' business.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

Row = dict[str, str]
RejectFn = Callable[[int, str, str], None]
RECBOLE_SUFFIXES = (".inter", ".item", ".user")
FORMATS = ("csv", "tsv", "jsonl", "parquet", "recbole")


class BadFile(ValueError):
    """A file that cannot be read at all: unknown format, bad header, missing column."""


def format_of(path: Path) -> str:
    """The format of ``path`` from its suffix (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``/
    ``.json``, ``.parquet``/``.pq``, RecBole's ``.inter``/``.item``/``.user``)."""
    suffix = path.suffix.lower()
    by_suffix = {
        ".csv": "csv",
        ".tsv": "tsv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    if suffix in RECBOLE_SUFFIXES:
        return "recbole"
    if suffix not in by_suffix:
        raise BadFile(f"{path}: unknown format {suffix or '(no suffix)'!r}: one of {FORMATS}")
    return by_suffix[suffix]


def read_rows(path: Path, reject: RejectFn) -> tuple[list[str], Iterator[tuple[int, Row]]]:
    """The header (column names; JSON lines: the first object's keys) and the rows."""
    fmt = format_of(path)
    if fmt == "parquet":
        return _parquet(path)
    if fmt == "jsonl":
        return _jsonl(path, reject)
    return _delimited(path, reject, fmt)


def _lines(path: Path, reject: RejectFn) -> Iterator[tuple[int, str]]:
    """Decoded lines with their numbers; a line that is not UTF-8 is rejected whole."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                yield n, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                reject(n, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}", text)


def _delimited(
    path: Path, reject: RejectFn, fmt: str
) -> tuple[list[str], Iterator[tuple[int, Row]]]:
    lines = _lines(path, reject)
    first = next(lines, None)
    if first is None:
        raise BadFile(f"{path}: empty file (no header)")
    delimiter = "," if fmt == "csv" else "\t"
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if fmt == "recbole" else csv.QUOTE_MINIMAL
    raw_header = next(csv.reader([first[1]], delimiter=delimiter, quoting=quoting))
    # RecBole types every column (``user_id:token``): the name is before the colon
    header = [c.split(":")[0].strip() if fmt == "recbole" else c.strip() for c in raw_header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise BadFile(f"{path}:1: duplicate column {name!r} in the header")
        seen.add(name)

    def rows() -> Iterator[tuple[int, Row]]:
        for n, text in lines:
            if not text.strip():
                continue
            fields = next(csv.reader([text], delimiter=delimiter, quoting=quoting))
            if [f.strip() for f in fields] == [c.strip() for c in raw_header]:
                reject(n, "repeated header row", text)
            elif len(fields) > len(header):
                reject(n, f"{len(fields)} fields, the header has {len(header)}", text)
            else:
                yield n, dict(zip(header, fields, strict=False))

    return header, rows()


def _jsonl(path: Path, reject: RejectFn) -> tuple[list[str], Iterator[tuple[int, Row]]]:
    def objects() -> Iterator[tuple[int, Row, str]]:
        for n, text in _lines(path, reject):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                reject(n, f"not JSON: {exc.msg} at column {exc.colno}", text)
                continue
            if not isinstance(value, dict):
                reject(n, f"not a JSON object but {type(value).__name__}", text)
                continue
            yield n, {str(k): _text(v) for k, v in value.items()}, text

    stream = objects()
    first = next(stream, None)
    header = list(first[1]) if first is not None else []

    def rows() -> Iterator[tuple[int, Row]]:
        if first is not None:
            yield first[0], first[1]
        for n, row, _ in stream:
            yield n, row

    return header, rows()


def _parquet(path: Path) -> tuple[list[str], Iterator[tuple[int, Row]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid for a broken file
        raise BadFile(f"{path}: not a Parquet file ({exc})") from None
    header = list(table.schema_arrow.names)
    if len(set(header)) < len(header):
        raise BadFile(f"{path}: duplicate column names in the schema: {header}")

    def rows() -> Iterator[tuple[int, Row]]:
        n = 0
        for batch in table.iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                n += 1
                yield n, {k: _text(v) for k, v in record.items()}

    return header, rows()


def _text(value: object) -> str:
    """A JSON or Parquet value as the text a CSV would hold; lists become ``a/b/c`` paths."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "/".join(_text(v) for v in value)
    return str(value)
