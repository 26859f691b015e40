"""Source connectors: read one entity's rows for a data interval, as strings, with their location.

A connector turns a configured source (`nps.sources.EntitySource`) into a `Batch`: a list of
`Part`s (a file, an API page, a SQL result chunk), each a DataFrame of *source* columns with every
value as a string (null = ""), plus `_source_line` (where in the part the row came from) and, for
rows the connector could not read cleanly, `_reject` / `_reject_detail` (e.g. invalid UTF-8,
broken JSON, a CSV row with fewer or more fields than the header) so the loader quarantines them
instead of losing them. A file that cannot be parsed at all (empty, an unterminated quote, a
corrupt Parquet file) is not a Part but an `Unreadable` entry of the Batch: the loader quarantines
it or fails naming it (`on_unreadable_file`), and keeps the rows loaded from it before. Column
mapping onto the contract and validation happen in `nps_airflow.extract`, the same for every
connector.

Kinds: `file` (CSV / JSON Lines / JSON / Parquet under a path or glob), `http` (JSON API with
pagination, auth, retries, updated-since), `sql` (any SQLAlchemy URL, incremental watermark).

Modules: `base` (Part, Batch, Unreadable, the Connector protocol, SourceContractError,
SourceUnavailable), the shared helpers `cells` (values as strings, undecodable bytes),
`json_records` (dig, flatten, records_frame), `timestamps` (ISO / epoch parsing, windows) and
`airflow_connections` (credentials), the connectors `file_drops`, `http_api`, `sql_db`, and
`column_mapping`. A connector imports `base` and the helpers, never a sibling connector nor the
loader (`nps_airflow.extract` imports the connectors; `lint-imports` checks it). This package
re-exports the public names for the loader, the stages and the tests.

Module names are unique on purpose: Airflow's plugin loader also imports every .py under plugins/
as a top-level module named after the file, so a `http.py` here would replace the standard
library's `http` in the whole process (hence no `secrets.py`, `json.py`, `http.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nps_airflow.connectors.base import (
    LINE,
    RAW,
    REJECT,
    REJECT_DETAIL,
    Batch,
    Connector,
    Part,
    SourceContractError,
    SourceUnavailable,
    Unreadable,
)
from nps_airflow.connectors.cells import DIRTY, clean_frame, escape_dirty, placeholders, to_text
from nps_airflow.connectors.json_records import dig, flatten, records_frame
from nps_airflow.connectors.timestamps import has_offset, in_window, is_epoch, parse_instant

if TYPE_CHECKING:
    from nps.sources import EntitySource

__all__ = [
    "DIRTY", "LINE", "RAW", "REJECT", "REJECT_DETAIL", "Batch", "Connector", "Part", "SourceContractError",
    "SourceUnavailable", "Unreadable", "build", "clean_frame", "dig", "escape_dirty", "flatten", "has_offset",
    "in_window", "is_epoch", "parse_instant", "placeholders", "records_frame", "to_text",
]


def build(source: EntitySource) -> Connector:
    """The connector of a configured source (`connector:` file | http | sql)."""
    if source.connector == "file":
        from nps_airflow.connectors.file_drops import FileConnector

        return FileConnector(source)
    if source.connector == "http":
        from nps_airflow.connectors.http_api import HttpConnector

        return HttpConnector(source)
    if source.connector == "sql":
        from nps_airflow.connectors.sql_db import SqlConnector

        return SqlConnector(source)
    raise ValueError(f"unknown connector {source.connector!r}")
