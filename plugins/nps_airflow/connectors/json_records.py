"""JSON documents as rows: a dotted path into a document, nested records flattened to columns."""

from __future__ import annotations

from typing import Any

import pandas as pd

from nps_airflow.connectors.base import LINE, RAW, REJECT, REJECT_DETAIL
from nps_airflow.connectors.cells import clean_frame, to_text


def dig(document: Any, dotted: str | None) -> Any:
    """document['a']['b'] for 'a.b'; the document itself for an empty path."""
    if not dotted:
        return document
    for key in str(dotted).split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def flatten(record: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON record with nested objects as dotted keys (`person.id`); lists stay as JSON text."""
    out = {} if out is None else out
    if not isinstance(record, dict):
        out[prefix or "value"] = record
        return out
    for key, value in record.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flatten(value, name, out)
        else:
            out[name] = value
    return out


def records_frame(records: list[dict[str, Any]], lines: list[int], rejects: list[tuple[int, str, str, str]]
                  ) -> pd.DataFrame:
    """Flattened JSON records (+ records that could not be parsed) as an all-string frame."""
    rows: list[dict[str, Any]] = [{k: to_text(v) for k, v in flatten(r).items()} for r in records]
    for row, line in zip(rows, lines, strict=True):
        row[LINE] = line
    for line, rule, detail, raw in rejects:
        rows.append({LINE: line, REJECT: rule, REJECT_DETAIL: detail, RAW: raw})
    return clean_frame(pd.DataFrame(rows)) if rows else pd.DataFrame({LINE: []})
