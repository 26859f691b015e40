"""SQL source: any SQLAlchemy URL (e.g. a CRM replica in PostgreSQL), incremental by watermark.

Options (sources.yml):
  url | url_env | conn_id   the database: an SQLAlchemy URL (use ${VAR} for secrets), the name
                            of an env var holding it, or an Airflow connection id
  table                     schema.table to read, or
  query                     a SELECT with :start and :end bind parameters
  watermark_column          incremental: rows with watermark in [start, end) are read and upserted
                            by key (an updated row replaces its earlier version, whatever window
                            it was first loaded in)
  window_column             without a watermark: the source column filtered to [start, end)
                            (default: the source column mapped to the entity's interval column)
  timezone                  for timestamp columns without time zone (default UTC)
  chunk_rows                rows fetched per round trip (default 50000)
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from nps.warehouse import redact_text, with_driver
from nps_airflow.connectors.airflow_connections import airflow_secret
from nps_airflow.connectors.base import LINE, Batch, Part, SourceUnavailable
from nps_airflow.connectors.cells import clean_frame, to_text

if TYPE_CHECKING:
    from nps.sources import EntitySource

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class SqlConnector:
    def __init__(self, source: EntitySource) -> None:
        self.source = source
        self.timezone = source.option("timezone", "UTC")
        self.chunk_rows = int(source.option("chunk_rows", 50000))

    def _url(self) -> str:
        if self.source.option("url"):
            return str(self.source.option("url"))
        if self.source.option("url_env"):
            name = self.source.option("url_env")
            url = os.environ.get(name)
            if not url:
                raise SourceUnavailable(
                    f"{self.source.entity}: environment variable {name} (SQL source URL) is not set"
                )
            return url
        _, conn = airflow_secret(self.source.option("conn_id"))
        return conn.get_uri()

    def _statement(self, window_column: str | None) -> tuple[str, bool]:
        query = self.source.option("query")
        if query:
            return str(query), ":start" in query
        table = str(self.source.option("table"))
        if not _IDENT.match(table):
            raise ValueError(f"{self.source.describe()}: table must be a plain [schema.]name, got {table!r}")
        column = self.source.incremental_column or self.source.option("window_column") or window_column
        if column:
            if not _IDENT.match(column):
                raise ValueError(f"{self.source.describe()}: bad column name {column!r}")
            quoted = ".".join(f'"{p}"' for p in column.split("."))
            return f"select * from {table} where {quoted} >= :start and {quoted} < :end", True
        return f"select * from {table}", False

    def read(self, start: datetime, end: datetime, *, window_column: str | None = None) -> Batch:
        import sqlalchemy as sa

        url = self._url()
        location = f"{redact_text(url)}#{self.source.option('table') or 'query'}"
        sql, bound = self._statement(window_column)
        try:
            engine = sa.create_engine(with_driver(url), pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise SourceUnavailable(
                f"{self.source.entity}: the database driver for {redact_text(url)} is not installed ({exc}); "
                "install it into the project's environment or name an installed one in the URL "
                "(e.g. postgresql+psycopg2://...)"
            ) from exc
        except Exception as exc:
            raise SourceUnavailable(f"{self.source.entity}: bad SQL source URL {redact_text(url)}: {exc}") from exc
        parts: list[Part] = []
        line = 0
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(
                    sa.text(sql), {"start": start, "end": end} if bound else {}
                )
                columns = list(result.keys())
                while True:
                    rows = result.fetchmany(self.chunk_rows)
                    if not rows:
                        break
                    data = {c: [to_text(r[i], naive_tz=self.timezone) for r in rows] for i, c in enumerate(columns)}
                    frame = pd.DataFrame(data, dtype=object)
                    frame[LINE] = range(line + 1, line + len(rows) + 1)
                    line += len(rows)
                    parts.append(Part(frame=clean_frame(frame), location=location))
                if not parts:
                    parts.append(Part(frame=pd.DataFrame({c: pd.Series([], dtype=str) for c in [*columns, LINE]}),
                                      location=location))
        except sa.exc.SQLAlchemyError as exc:
            raise SourceUnavailable(f"{self.source.entity}: SQL source {location} failed: {exc}") from exc
        finally:
            engine.dispose()
        return Batch(parts=parts, location=location, units=len(parts))
