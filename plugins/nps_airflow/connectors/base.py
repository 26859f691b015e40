"""What every connector shares: the parts and batches it returns, its errors and its protocol.

A connector turns a configured source (`nps.sources.EntitySource`) into a `Batch`: a list of
`Part`s (a file, an API page, a SQL result chunk), each a DataFrame of *source* columns with every
value as a string (null = ""), plus `LINE` (where in the part the row came from) and, for rows the
connector could not read cleanly, `REJECT` / `REJECT_DETAIL` (and the record as read in `RAW`) so
the loader quarantines them instead of losing them. A file that cannot be parsed at all is not a
Part but an `Unreadable` entry of the Batch.

Imports nothing of the pipeline but `nps.sources` (for types only): the loader
(`nps_airflow.extract`) imports the connectors, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

#: the columns a connector adds to a part's source columns
REJECT, REJECT_DETAIL, RAW, LINE = "_reject", "_reject_detail", "_raw", "_source_line"


class SourceContractError(ValueError):
    """The source cannot be loaded at all (e.g. a required column is missing, the path does not
    exist): nothing is written."""


class SourceUnavailable(RuntimeError):
    """The source could not be read (HTTP errors after retries, database unreachable, ...)."""


@dataclass
class Part:
    """One unit of a source (a file, an API page, a result chunk): string columns + LINE."""

    frame: pd.DataFrame
    location: str
    tabular: bool = True  # True: the header defines the columns (CSV/Parquet/SQL); False: JSON records
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unreadable:
    """A file no parser could read: where, the parser's message, and the start of its text."""

    location: str
    detail: str
    head: str = ""


@dataclass
class Batch:
    parts: list[Part]
    location: str  # the source as a whole, for the audit (glob, URL, redacted SQL URL + table)
    units: int  # files / pages / chunks read
    #: date-partitioned file drops: the files this window owns. The loader then replaces the rows
    #: of these files, whatever each row's own date (None: the window is defined by the rows' dates)
    files: list[str] | None = None
    #: files that could not be parsed (their rows loaded earlier are kept, not replaced)
    unreadable: list[Unreadable] = field(default_factory=list)
    #: what the loader had to assume (e.g. a time zone for timestamps without an offset)
    warnings: list[str] = field(default_factory=list)


class Connector(Protocol):
    def read(self, start: datetime, end: datetime, *, window_column: str | None) -> Batch:
        """Rows that may belong to [start, end): for an incremental source, rows updated in the
        window; otherwise rows whose `window_column` (a source column) is in the window, or more
        (the loader filters by the contract's interval column)."""
        ...
