"""Load: the rows `nps_airflow.extract` prepared for one window -> raw.*, in one transaction.

Steps 4-6 of a load (steps 1-3, reading, mapping and validating, are in `extract`):

4. under the entity's lock, compare what would be removed with what replaces it: partition mode
   per file (rows loaded from it before vs the rows of the new file that would load), window mode
   for the window; a loss over `max_row_loss_share` fails here, before anything is written,
   unless accepted (`accept_row_loss`, NPS_ACCEPT_ROW_LOSS=1, or the source's `accept_row_loss`);
   incremental mode only replaces rows, so it is not checked;
5. COPY the good rows into a temporary table, then partition mode deletes the rows of the files it
   owns, window mode the rows of the window (a rerun replaces, never duplicates), and both
   quarantine ids that another file / window already loaded with other content (the same content:
   counted as a duplicate); incremental mode replaces rows with the same key wherever they are;
6. replace the quarantine rows of earlier loads of the same files (partition) or of this window
   and windows inside it (window, incremental), and any earlier copy of a row quarantined again;
   one `unreadable_file` row per unreadable file (the rows loaded from it before are kept: it is
   not replaced); write a `raw.load_audit` row, commit — then fail loudly if a file was
   unreadable (`on_unreadable_file: fail`, the default) or too much was quarantined.

An advisory lock per entity serialises concurrent loads of the same entity. An optional entity
with no source gets a `not_configured` audit row instead (`record_not_configured`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nps import config, contracts, sources, warehouse
from nps.contracts import SPECS, EntitySpec
from nps_airflow import connectors
from nps_airflow.connectors import LINE, RAW
from nps_airflow.connectors import column_mapping as mappings
from nps_airflow.extract import PreparedBatch, prepare_batch, unreadable_message

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)


class QuarantineThresholdExceeded(RuntimeError):
    """Too large a share of a batch broke the contract; the good rows were loaded."""


class UnreadableFileError(RuntimeError):
    """Files of the window could not be read (on_unreadable_file: fail); the other files were
    loaded, the rows loaded from these files before were kept."""


class RowLossExceeded(RuntimeError):
    """The load would remove more of the rows loaded before than max_row_loss_share; nothing was
    written."""



@dataclass
class LoadResult:
    entity: str
    start: datetime
    end: datetime
    source_files: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    duplicates_dropped: int
    rows_replaced: int
    checksum: str
    extra_columns: list[str]
    duration_s: float
    connector: str = "file"
    mode: str = "window"
    source_location: str = ""
    unreadable_files: list[str] = field(default_factory=list)
    rows_lost: int = 0  # rows loaded before from the replaced files / window and not replaced
    row_loss_accepted: bool = False  # rows_lost was over max_row_loss_share and accepted
    rows_excluded: int = 0  # not answers (previews, tests, unfinished): rows_read counts them too

    def as_dict(self) -> dict:
        d = self.__dict__.copy()
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d



def _payload_json(row: dict, extras: str, raw: str) -> str:
    payload = dict(row)
    if extras:
        try:
            payload["_extras"] = json.loads(extras)
        except ValueError:
            payload["_extras"] = extras
    if raw:
        payload["_raw"] = raw
    return json.dumps(payload, ensure_ascii=False)


def _quarantine(cur, quarantined: pd.DataFrame, entity: str, run_id: str, start: datetime,
                end: datetime, payload_columns: list[str]) -> None:
    if quarantined.empty:
        return
    from psycopg2.extras import execute_values

    def text(value) -> str:
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)

    rows = []
    for r in quarantined.to_dict("records"):
        line = r.get(LINE)
        rows.append((
            entity, run_id, start, end, text(r.get("_source_file")),
            int(line) if text(line) not in ("", "nan") else None, r["rule"], text(r.get("detail"))[:500],
            _payload_json({c: text(r.get(c)) for c in payload_columns}, text(r.get(mappings.EXTRAS)),
                          text(r.get(RAW))),
        ))
    # a row quarantined again from the same place (an undated file every run reads, an unparseable
    # date in every window's batch) keeps one entry: the latest
    located = sorted({(r[4], r[5]) for r in rows if r[4] and r[5] is not None})
    if located:
        execute_values(
            cur,
            "delete from raw.quarantine q using (values %s) as v (source_file, source_line)"
            " where q.entity = " + cur.mogrify("%s", (entity,)).decode()
            + " and q.source_file = v.source_file and q.source_line = v.source_line",
            located,
        )
    execute_values(
        cur,
        "insert into raw.quarantine (entity, run_id, interval_start, interval_end, source_file,"
        " source_line, rule, detail, payload) values %s",
        rows,
    )


def _quarantine_files(cur, unreadable: list[connectors.Unreadable], entity: str, run_id: str,
                      start: datetime, end: datetime) -> None:
    """One `unreadable_file` row per file (a rerun, or every window reading an undated file,
    replaces it); the file's earlier row-level entries stay with the rows kept from it."""
    from psycopg2.extras import execute_values

    files = [u.location for u in unreadable]
    cur.execute("delete from raw.quarantine where entity = %s and rule = 'unreadable_file' and source_file = any(%s)",
                (entity, files))
    execute_values(
        cur,
        "insert into raw.quarantine (entity, run_id, interval_start, interval_end, source_file,"
        " source_line, rule, detail, payload) values %s",
        [(entity, run_id, start, end, u.location, None, "unreadable_file", u.detail[:500],
          json.dumps({"_raw": u.head}, ensure_ascii=False)) for u in unreadable],
    )



def _row_losses(cur, spec: EntitySpec, mode: str, owned_files: list[str] | None, unreadable_files: list[str],
                good: pd.DataFrame, start: datetime, end: datetime, location: str) -> list[tuple[str, int, int]]:
    """(file or window, rows loaded before that this load would delete, rows that replace them):
    per owned file in partition mode, for the window in window mode. Rows of unreadable files are
    kept, so they are not counted."""
    if mode == "partition":
        cur.execute(f"select _source_file, count(*) from {spec.table} where _source_file = any(%s) group by 1",
                    (owned_files,))
        before = dict(cur.fetchall())
        if not before:
            return []
        after = good["_source_file"].value_counts()
        return [(f, int(n), int(after.get(f, 0))) for f, n in sorted(before.items())]
    column = spec.interval_column
    cur.execute(f"select count(*) from {spec.table} where {column} >= %s and {column} < %s"
                " and not (coalesce(_source_file, '') = any(%s))", (start, end, unreadable_files))
    return [(f"the window's rows from {location}", int(cur.fetchone()[0]), len(good))]


def _row_loss_message(entity: str, start: datetime, end: datetime, source: sources.EntitySource,
                      over: list[tuple[str, int, int]], quarantined: pd.DataFrame, mode: str) -> str:
    per_file = quarantined["_source_file"].value_counts() if mode == "partition" and len(quarantined) else None
    lines = []
    for where, before, after in over:
        q = int(per_file.get(where, 0)) if per_file is not None else len(quarantined)
        lines.append(f"\n  {where}: {before} rows loaded before, {after} would load now "
                     f"({(before - after) / before:.1%} fewer; {q} of the new rows quarantined)")
    return (
        f"{entity} [{start:%Y-%m-%d}, {end:%Y-%m-%d}): this load would remove more than "
        f"{source.max_row_loss_share:.1%} (max_row_loss_share) of the rows loaded before;"
        f" nothing was written:{''.join(lines)}\n"
        "If the source really dropped these rows, accept the loss: rerun with accept_row_loss "
        "(load_entity(accept_row_loss=True), the DAG run conf), or NPS_ACCEPT_ROW_LOSS=1, or set "
        f"accept_row_loss: true (or a higher max_row_loss_share) for {entity} in "
        f"{source.origin or 'the sources configuration'}."
    )


def load_entity(conn: PgConnection, entity: str, start: datetime, end: datetime, run_id: str, *,
                sources_dir: Path | None = None, settings: config.LoadSettings | None = None,
                now: datetime | None = None, source: sources.EntitySource | None = None,
                accept_row_loss: bool = False) -> LoadResult:
    """Load one entity for the window [start, end) and commit. See the module docstring and
    :func:`prepare_batch` for the arguments; `accept_row_loss` loads a loss of rows loaded before
    that is over the source's max_row_loss_share (else RowLossExceeded, nothing written)."""
    t0 = time.monotonic()
    spec = SPECS[entity]
    prepared = prepare_batch(entity, start, end, sources_dir=sources_dir, settings=settings, now=now,
                             source=source)
    source, batch = prepared.source, prepared.batch
    unreadable_files = [u.location for u in prepared.unreadable]
    # an unreadable file is not replaced: the rows (and quarantine) loaded from it before stay
    owned_files = None if batch.files is None else [f for f in batch.files if f not in set(unreadable_files)]
    target = _Target(entity, spec, start, end, run_id, prepared.mode, owned_files, unreadable_files)
    if prepared.unreadable:
        log.warning("%s: %d unreadable file(s), rows loaded from them before kept: %s", entity,
                    len(prepared.unreadable), "; ".join(f"{u.location}: {u.detail}" for u in prepared.unreadable))
    if prepared.extra_columns:
        log.warning("%s: extra source column(s) kept in extras (schema drift) from %s: %s", entity,
                    batch.location, ", ".join(prepared.extra_columns))
    good, copy_columns, payload, checksum = _copy_payload(prepared.good, spec, run_id)

    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (warehouse.lock_key(f"load:{entity}"),))
        rows_lost, loss_accepted = _check_row_loss(conn, cur, target, prepared, good, accept_row_loss)
        _clear_quarantine(cur, target)
        rows_replaced, clashes, repeated = _replace_rows(cur, target, copy_columns, payload)
        quarantined = prepared.quarantined if clashes is None else pd.concat([prepared.quarantined, clashes])
        cur.execute(f"insert into {spec.table} select * from _batch")
        rows_loaded = cur.rowcount
        if prepared.originals is not None and not prepared.originals.empty:
            _keep_originals(cur, target, prepared.originals)
        _quarantine(cur, quarantined, entity, run_id, start, end, list(spec.columns))
        _quarantine(cur, prepared.excluded, entity, run_id, start, end, list(spec.columns))
        if prepared.unreadable:
            _quarantine_files(cur, prepared.unreadable, entity, run_id, start, end)
        result = LoadResult(
            entity=entity, start=start, end=end, source_files=batch.units, rows_read=prepared.rows_read,
            rows_loaded=rows_loaded, rows_quarantined=len(quarantined),
            duplicates_dropped=prepared.duplicates_dropped + repeated, rows_replaced=rows_replaced,
            checksum=checksum, extra_columns=prepared.extra_columns, duration_s=time.monotonic() - t0,
            connector=source.connector, mode=prepared.mode, source_location=batch.location,
            unreadable_files=unreadable_files, rows_lost=rows_lost, row_loss_accepted=loss_accepted,
            rows_excluded=len(prepared.excluded),
        )
        _audit(cur, run_id, result)
    conn.commit()

    result.duration_s = round(time.monotonic() - t0, 3)
    log.info("loaded %s", result.as_dict())
    too_many = _too_many_quarantined(target, quarantined, prepared)
    if prepared.unreadable and source.on_unreadable_file == "fail":  # both causes, when both happened
        raise UnreadableFileError("\n".join(filter(None, [unreadable_message(entity, start, end, source,
                                                                               prepared.unreadable), too_many])))
    if too_many:
        raise QuarantineThresholdExceeded(too_many)
    return result


@dataclass(frozen=True)
class _Target:
    """Where one load writes: the entity's raw table for a window, and the files it owns."""

    entity: str
    spec: EntitySpec
    start: datetime
    end: datetime
    run_id: str
    mode: str  # partition | window | incremental
    owned_files: list[str] | None  # partition mode: the files whose rows it replaces
    unreadable_files: list[str]  # their rows (and quarantine entries) are kept


def _copy_payload(good: pd.DataFrame, spec: EntitySpec, run_id: str) -> tuple[pd.DataFrame, list[str], str, str]:
    """The good rows (sorted by key) as COPY's CSV, its columns, and the load's checksum."""
    data_columns = list(spec.columns)
    good = good.rename(columns={mappings.EXTRAS: "extras"})
    good["_run_id"] = run_id
    copy_columns = [*data_columns, "extras", "_run_id", "_source_file"]
    good = good.sort_values(list(spec.key))
    buffer = io.StringIO()
    good[copy_columns].to_csv(buffer, index=False, header=False)
    # order-independent of the source: rows are sorted by key; sha256 over per-row hashes
    row_hashes = pd.util.hash_pandas_object(good[data_columns], index=False).to_numpy()
    return good, copy_columns, buffer.getvalue(), hashlib.sha256(row_hashes.tobytes()).hexdigest()


def _check_row_loss(conn: PgConnection, cur: Any, target: _Target, prepared: PreparedBatch, good: pd.DataFrame,
                    accept_row_loss: bool) -> tuple[int, bool]:
    """Under the lock, before any delete: a re-drop that removes rows loaded before (a header-only
    or truncated file, rows that now all quarantine) fails atomically unless accepted. Returns
    (rows lost, whether a loss over the share was accepted)."""
    source = prepared.source
    losses = [] if target.mode == "incremental" else _row_losses(
        cur, target.spec, target.mode, target.owned_files, target.unreadable_files, good, target.start, target.end,
        prepared.batch.location)
    rows_lost = sum(max(0, before - after) for _, before, after in losses)
    over = [loss for loss in losses if loss[1] and (loss[1] - loss[2]) / loss[1] > source.max_row_loss_share]
    if over and not (accept_row_loss or config.accept_row_loss() or source.accept_row_loss):
        conn.rollback()
        raise RowLossExceeded(_row_loss_message(target.entity, target.start, target.end, source, over,
                                                prepared.quarantined, target.mode))
    if over:
        log.warning("%s: accepted the loss of %d row(s) loaded before: %s", target.entity, rows_lost,
                    "; ".join(f"{w}: {b} -> {a}" for w, b, a in over))
    return rows_lost, bool(over)


def _clear_quarantine(cur: Any, target: _Target) -> None:
    """A rerun re-reads the same source rows, so it replaces the quarantine of the same files, or
    of every load whose window lies inside this one (the same interval, a backfilled quarter)."""
    if target.mode == "partition":
        cur.execute("delete from raw.quarantine where entity = %s and source_file = any(%s)",
                    (target.entity, target.owned_files))
    else:
        cur.execute(
            "delete from raw.quarantine where entity = %s and interval_start >= %s and interval_end <= %s"
            " and not (coalesce(source_file, '') = any(%s))",
            (target.entity, target.start, target.end, target.unreadable_files),
        )


def _replace_rows(cur: Any, target: _Target, copy_columns: list[str], payload: str
                  ) -> tuple[int, pd.DataFrame | None, int]:
    """COPY the rows into `_batch` and delete what they replace: rows with the same key
    (incremental), else the owned files' rows (partition) or the window's (window), then take out
    of `_batch` the ids another file / window already loaded. Returns (rows replaced, those ids
    with other content to quarantine or None, those with the same content: duplicates)."""
    spec, table = target.spec, target.spec.table
    cur.execute(f"create temp table _batch (like {table} including defaults) on commit drop")
    cur.copy_expert(
        f"copy _batch ({', '.join(copy_columns)}) from stdin with (format csv, null '')",
        io.StringIO(payload),
    )
    if target.mode == "incremental":
        # updated-since: the newest version of a row replaces the stored one, wherever it is
        cur.execute(f"delete from {table} t using _batch b where ({', '.join('t.' + k for k in spec.key)}) = "
                    f"({', '.join('b.' + k for k in spec.key)})")
        return cur.rowcount, None, 0
    if target.mode == "partition":
        cur.execute(f"delete from {table} where _source_file = any(%s)", (target.owned_files,))
    else:
        cur.execute(
            f"delete from {table} where {spec.interval_column} >= %s and {spec.interval_column} < %s"
            " and not (coalesce(_source_file, '') = any(%s))",
            (target.start, target.end, target.unreadable_files),
        )
    rows_replaced = cur.rowcount
    clashes, repeated = _take_out_loaded_ids(cur, target)
    return rows_replaced, clashes, repeated


def _take_out_loaded_ids(cur: Any, target: _Target) -> tuple[pd.DataFrame | None, int]:
    """Ids another file / window already loaded: keep the loaded row; the same content is a
    duplicate, other content is quarantined (nothing says which one is right)."""
    spec = target.spec
    same = " and ".join(f"b.{c} is not distinct from t.{c}" for c in spec.columns)
    cur.execute(
        f"delete from _batch b using {spec.table} t where ({', '.join('b.' + k for k in spec.key)}) = "
        f"({', '.join('t.' + k for k in spec.key)}) returning b.*, ({same}) as _same_content"
    )
    clashes = cur.fetchall()
    if not clashes:
        return None, 0
    names = [d.name for d in cur.description]
    clash_frame = pd.DataFrame([[connectors.to_text(v) for v in row] for row in clashes], columns=names, dtype=object)
    repeated = clash_frame.pop("_same_content") == "true"
    clash_frame = clash_frame[~repeated]
    clash_frame[LINE] = None
    clash_frame["rule"] = "duplicate_id_other_interval"
    clash_frame["detail"] = (
        "id already loaded with other content from " + ("another file" if target.mode == "partition"
                                                         else "a row in another data interval")
    )
    clash_frame[mappings.EXTRAS] = clash_frame.pop("extras")
    return clash_frame, int(repeated.sum())


def _keep_originals(cur: Any, target: _Target, originals: pd.DataFrame) -> None:
    """keep_original_comment: the unredacted comments of the loaded rows whose comment was redacted."""
    table, keys = target.spec.table, ", ".join(target.spec.key)
    cur.execute(f"create temp table _originals ({keys} text, comment text) on commit drop")
    cur.copy_expert(f"copy _originals ({keys}, comment) from stdin with (format csv)",
                    io.StringIO(originals.to_csv(index=False, header=False)))
    cur.execute(
        f"insert into {table}_original ({keys}, comment, _run_id) select o.{keys}, o.comment, %s"
        f" from _originals o join _batch b using ({keys})"
        f" on conflict ({keys}) do update set comment = excluded.comment, _run_id = excluded._run_id,"
        f" _loaded_at = now()",
        (target.run_id,),
    )


def _audit(cur: Any, run_id: str, r: LoadResult) -> None:
    """The load's raw.load_audit row."""
    cur.execute(
        "insert into raw.load_audit (run_id, entity, interval_start, interval_end, source_files,"
        " rows_read, rows_loaded, rows_quarantined, duplicates_dropped, rows_replaced, checksum,"
        " source_location, duration_s, connector, load_mode, extra_columns, unreadable_files,"
        " rows_lost, row_loss_accepted, rows_excluded)"
        " values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (run_id, r.entity, r.start, r.end, r.source_files, r.rows_read, r.rows_loaded, r.rows_quarantined,
         r.duplicates_dropped, r.rows_replaced, r.checksum, r.source_location, r.duration_s,
         r.connector, r.mode, r.extra_columns or None, r.unreadable_files or None, r.rows_lost,
         r.row_loss_accepted, r.rows_excluded),
    )


def _too_many_quarantined(target: _Target, quarantined: pd.DataFrame, prepared: PreparedBatch) -> str | None:
    """The message when more of the batch than max_quarantine_share was quarantined, else None."""
    rows_read, share = prepared.rows_read, prepared.settings.max_quarantine_share
    if not (rows_read and len(quarantined) / rows_read > share):
        return None
    rules = quarantined["rule"].value_counts().head(5).to_dict()
    return (
        f"{target.entity} [{target.start:%Y-%m-%d}, {target.end:%Y-%m-%d}): {len(quarantined)} of {rows_read} rows "
        f"quarantined ({len(quarantined) / rows_read:.1%} > {share:.1%}); "
        f"rules: {rules}. Good rows were loaded; see raw.quarantine where run_id = '{target.run_id}'."
    )


NOT_CONFIGURED = "not_configured"  # raw.load_audit.load_mode of an optional entity left out of sources.yml


def record_not_configured(conn: PgConnection, entity: str, start: datetime, end: datetime, run_id: str, *,
                          origin: str) -> dict:
    """An optional entity (CRM, usage) with no source: nothing is read or changed, and the load
    audit says so (load_mode not_configured), so the marts that need it can say what is missing.
    Rows loaded before, when the entity was configured, are kept."""
    if entity in contracts.REQUIRED_ENTITIES:
        raise sources.SourceConfigError(f"{origin}: {entity} must be configured: it is what the marts are about")
    location = f"not configured in {origin}"
    with conn.cursor() as cur:
        cur.execute(
            "insert into raw.load_audit (run_id, entity, interval_start, interval_end, source_files, rows_read,"
            " rows_loaded, rows_quarantined, duplicates_dropped, rows_replaced, source_location, duration_s,"
            " connector, load_mode, rows_lost, row_loss_accepted, rows_excluded)"
            " values (%s, %s, %s, %s, 0, 0, 0, 0, 0, 0, %s, 0, 'none', %s, 0, false, 0)",
            (run_id, entity, start, end, location, NOT_CONFIGURED),
        )
    conn.commit()
    log.info("%s: not configured (%s): nothing to load; the marts that need it say so", entity, origin)
    return {"entity": entity, "configured": False, "mode": NOT_CONFIGURED, "source_location": location,
            "start": start.isoformat(), "end": end.isoformat(), "rows_read": 0, "rows_loaded": 0}

