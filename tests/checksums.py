"""Checksums of every table in raw, nlp and marts, for tests that prove two ways of running the
pipeline (nightly vs backfill, a rerun, a run recovered after a kill) leave the same warehouse.

Excluded columns say *when* and *by which run* a row was written, never *what* it holds:

- run ids (`_run_id`, `run_id`, `created_run_id`): every Airflow run has its own id;
- write timestamps (`_loaded_at`, `loaded_at`, `quarantined_at`, `created_at`/`updated_at` of the
  nlp registry and cache, `assigned_at`, `scored_at`): the wall clock of the write;
- `raw.load_audit.duration_s`: how long a load took;
- `marts.source_coverage.latest_loaded_at`: when the newest load of a source was written;
- surrogate keys from sequences (`raw.quarantine.quarantine_id`, `raw.load_audit.audit_id`): a
  sequence is not rolled back with the transaction that used it, so a run killed mid-write leaves
  a gap.

Everything else, including every mart column, is compared as text, rows in sorted order.
"""

from __future__ import annotations

from nps import warehouse

SCHEMAS = ("raw", "nlp", "marts")

EXCLUDED: dict[str, set[str]] = {
    "*": {"_run_id", "run_id", "created_run_id", "_loaded_at"},
    "raw.quarantine": {"quarantine_id", "quarantined_at"},
    "raw.load_audit": {"audit_id", "loaded_at", "duration_s"},
    "nlp.embeddings": {"created_at"},
    "nlp.themes": {"created_at", "updated_at"},
    "nlp.comment_themes": {"assigned_at"},
    "nlp.comment_sentiment": {"scored_at"},
    "marts.source_coverage": {"latest_loaded_at"},
}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_checksums(url: str, schemas: tuple[str, ...] = SCHEMAS) -> dict[str, tuple[int, str]]:
    """{schema.table: (rows, md5 of the sorted rows over the compared columns)}."""
    conn = warehouse.connect(url)
    out: dict[str, tuple[int, str]] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
                (list(schemas),),
            )
            for schema, table in cur.fetchall():
                name = f"{schema}.{table}"
                cur.execute(
                    "select column_name from information_schema.columns where table_schema = %s "
                    "and table_name = %s order by ordinal_position",
                    (schema, table),
                )
                skip = EXCLUDED["*"] | EXCLUDED.get(name, set())
                columns = [c for (c,) in cur.fetchall() if c not in skip]
                row = "row(" + ", ".join(_ident(c) for c in columns) + ")::text"
                cur.execute(
                    f"select count(*), coalesce(md5(string_agg(r, E'\\n' order by r)), '') "
                    f"from (select {row} as r from {_ident(schema)}.{_ident(table)}) t"
                )
                out[name] = tuple(cur.fetchone())
    finally:
        conn.close()
    return out


def differences(left: dict[str, tuple[int, str]], right: dict[str, tuple[int, str]]) -> dict[str, tuple]:
    """Tables whose (rows, checksum) differ, or that exist on one side only."""
    return {name: (left.get(name), right.get(name)) for name in sorted(set(left) | set(right))
            if left.get(name) != right.get(name)}
