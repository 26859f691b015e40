"""Write-audit-publish: move validated candidate marts into the schema BI users query.

dbt builds the marts into a candidate schema (`marts_candidate`), Great Expectations validates
that candidate, and only then does `publish` copy it into `marts` in ONE transaction:

- the published tables keep their identity (rows are replaced with DELETE + INSERT, the tables are
  never dropped or renamed), so views BI users built on `marts.*` keep working, and a reader
  sees either yesterday's complete set or today's complete set, never a mix (MVCC; DELETE does
  not block readers the way TRUNCATE or DROP would);
- only what changed moves: a table with a unique index (every mart: dbt's index config) loses the
  rows the candidate no longer has and gains the rows it did not have yet, compared whole-row
  (an md5 of the row's text, set-based); a night that changes one period's rows rewrites those,
  not the mart. A table without a unique index (no key tells its rows apart) is replaced whole;
- a mart that is new is created with the candidate's columns, indexes, constraints and comments;
- a new column is added in place; a removed or retyped column needs the table rebuilt, which is
  done only when no view depends on it — otherwise publish stops and names the views, leaving
  the published marts as they were;
- the indexes follow the candidate's (dbt's index config): an index the new build no longer has is
  dropped before the rows are copied (an old unique index could reject the new grain), a new
  one is created after.

If validation fails, publish never runs: yesterday's marts stay, the candidate stays for
inspection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nps import warehouse

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

CANDIDATE_SCHEMA = "marts_candidate"
PUBLISHED_SCHEMA = "marts"


class PublishError(RuntimeError):
    """The candidate cannot be published without breaking something BI depends on."""


@dataclass(frozen=True)
class PublishedTable:
    table: str
    rows: int
    created: bool
    added_columns: tuple[str, ...]
    rebuilt: bool
    deleted: int = 0
    inserted: int = 0


def _has_unique_index(cur, schema: str, table: str) -> bool:
    cur.execute(
        "select exists (select 1 from pg_index x join pg_class t on t.oid = x.indrelid "
        "join pg_namespace n on n.oid = t.relnamespace where n.nspname = %s and t.relname = %s "
        "and x.indisunique)",
        (schema, table),
    )
    return bool(cur.fetchone()[0])


def _copy_changes(cur, src: str, dst: str, column_list: str) -> tuple[int, int]:
    """Make `dst` hold the rows of `src` by deleting and inserting only the rows that differ (rows
    are unique: both tables have the same unique index). Returns (deleted, inserted)."""
    digest = f"md5(row({column_list})::text)"
    cur.execute(f"delete from {dst} where {digest} in "
                f"(select {digest} from {dst} except select {digest} from {src})")
    deleted = cur.rowcount
    cur.execute(f"insert into {dst} ({column_list}) select {column_list} from {src} where {digest} in "
                f"(select {digest} from {src} except select {digest} from {dst})")
    return deleted, cur.rowcount


def _tables(cur, schema: str) -> list[str]:
    cur.execute(
        "select table_name from information_schema.tables "
        "where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
        (schema,),
    )
    return [r[0] for r in cur.fetchall()]


def _columns(cur, schema: str, table: str) -> dict[str, str]:
    """Column name -> full type (format_type), in column order."""
    cur.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped "
        "order by a.attnum",
        (schema, table),
    )
    return dict(cur.fetchall())


def _dependent_views(cur, schema: str, table: str) -> list[str]:
    cur.execute(
        "select distinct vn.nspname || '.' || v.relname "
        "from pg_depend d "
        "join pg_rewrite r on r.oid = d.objid "
        "join pg_class v on v.oid = r.ev_class "
        "join pg_namespace vn on vn.oid = v.relnamespace "
        "join pg_class t on t.oid = d.refobjid "
        "join pg_namespace tn on tn.oid = t.relnamespace "
        "where tn.nspname = %s and t.relname = %s and v.oid <> t.oid",
        (schema, table),
    )
    return sorted(r[0] for r in cur.fetchall())


def _index_definitions(cur, schema: str, table: str) -> dict[str, str]:
    """Index name -> its definition without name and schema ("UNIQUE USING btree (a, b)"), for
    indexes that do not back a constraint (those come and go with the table)."""
    cur.execute(
        "select i.relname, pg_get_indexdef(x.indexrelid), x.indisunique "
        "from pg_index x join pg_class i on i.oid = x.indexrelid "
        "join pg_class t on t.oid = x.indrelid join pg_namespace n on n.oid = t.relnamespace "
        "where n.nspname = %s and t.relname = %s "
        "and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)",
        (schema, table),
    )
    out = {}
    for name, definition, unique in cur.fetchall():
        using = definition[definition.index(" USING ") + 1:]
        out[name] = ("UNIQUE " if unique else "") + using
    return out


def _sync_indexes_before_copy(cur, candidate: str, target: str, table: str) -> list[str]:
    """Drop the target's indexes the candidate does not have; return the definitions to create."""
    wanted = set(_index_definitions(cur, candidate, table).values())
    present = _index_definitions(cur, target, table)
    for name, definition in present.items():
        if definition not in wanted:
            cur.execute(f"drop index {_ident(target)}.{_ident(name)}")
            log.info("publish %s.%s: dropped index %s (%s)", target, table, name, definition)
    return sorted(wanted - set(present.values()))


def _create_indexes(cur, target: str, table: str, definitions: list[str]) -> None:
    for definition in definitions:
        unique, _, using = definition.rpartition("USING ")
        cur.execute(f"create {'unique ' if unique.strip() else ''}index on "
                    f"{_ident(target)}.{_ident(table)} using {using}")
        log.info("publish %s.%s: created index %s", target, table, definition)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def publish(conn: PgConnection, *, candidate: str = CANDIDATE_SCHEMA, target: str = PUBLISHED_SCHEMA,
            commit: bool = True) -> list[PublishedTable]:
    """Copy every candidate mart into the published schema in one transaction and commit (or, with
    `commit=False`, leave the commit to the caller, which records the publish in the same one)."""
    results: list[PublishedTable] = []
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (warehouse.lock_key(f"publish:{target}"),))
        tables = _tables(cur, candidate)
        if not tables:
            raise PublishError(f"candidate schema {candidate!r} holds no tables: nothing to publish")
        cur.execute(f"create schema if not exists {_ident(target)}")
        for table in tables:
            src, dst = f"{_ident(candidate)}.{_ident(table)}", f"{_ident(target)}.{_ident(table)}"
            cand_cols = _columns(cur, candidate, table)
            live_cols = _columns(cur, target, table)
            created = rebuilt = False
            added: list[str] = []
            new_indexes: list[str] = []
            if not live_cols:
                cur.execute(f"create table {dst} (like {src} including all)")
                created = True
            else:
                changed = [c for c, t in live_cols.items() if cand_cols.get(c) != t]
                if changed:
                    views = _dependent_views(cur, target, table)
                    if views:
                        raise PublishError(
                            f"{target}.{table}: column(s) {', '.join(changed)} were removed or changed type "
                            f"in the new build, and view(s) {', '.join(views)} depend on the table; "
                            "recreate those views after dropping them, or keep the columns. "
                            "Nothing was published."
                        )
                    cur.execute(f"drop table {dst}")
                    cur.execute(f"create table {dst} (like {src} including all)")
                    rebuilt = True
                else:
                    for column, type_ in cand_cols.items():
                        if column not in live_cols:
                            cur.execute(f"alter table {dst} add column {_ident(column)} {type_}")
                            added.append(column)
                    new_indexes = _sync_indexes_before_copy(cur, candidate, target, table)
            column_list = ", ".join(_ident(c) for c in cand_cols)
            keyed = _has_unique_index(cur, candidate, table) and _has_unique_index(cur, target, table)
            if not created and not rebuilt and keyed:
                deleted, inserted = _copy_changes(cur, src, dst, column_list)
            else:
                cur.execute(f"delete from {dst}")
                deleted = cur.rowcount
                cur.execute(f"insert into {dst} ({column_list}) select {column_list} from {src}")
                inserted = cur.rowcount
            cur.execute(f"select count(*) from {dst}")
            rows = cur.fetchone()[0]
            _create_indexes(cur, target, table, new_indexes)
            if deleted or inserted:
                cur.execute(f"analyze {dst}")
            results.append(PublishedTable(table, rows, created, tuple(added), rebuilt, deleted, inserted))
    if commit:
        conn.commit()
    for r in results:
        log.info("published %s.%s: %s rows (%s deleted, %s inserted)%s", target, r.table, r.rows, r.deleted,
                 r.inserted, " (new table)" if r.created else " (rebuilt)" if r.rebuilt else "")
    return results
