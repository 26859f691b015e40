"""Publishing a mart whose grain (and so its unique index) changed: the published table keeps its
identity and views, its indexes follow the new build."""

from __future__ import annotations

from nps_airflow.publish import publish


def _exec(conn, sql: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.commit()


def _indexes(conn, schema: str, table: str) -> set[str]:
    """'[UNIQUE ]btree (columns)' per index."""
    with conn.cursor() as cur:
        cur.execute("select case when indexdef like 'CREATE UNIQUE%%' then 'UNIQUE ' else '' end "
                    "|| regexp_replace(indexdef, '^.* USING ', '') from pg_indexes "
                    "where schemaname = %s and tablename = %s", (schema, table))
        return {r[0] for r in cur.fetchall()}


def test_indexes_follow_the_candidate_when_the_grain_changes(db_conn):
    _exec(db_conn, """
        create schema marts_candidate;
        create table marts_candidate.recovery (period date, bucket text, n int);
        create unique index on marts_candidate.recovery (period, bucket);
        insert into marts_candidate.recovery values ('2025-01-01', 'never', 1);
    """)
    publish(db_conn)
    _exec(db_conn, "create view public.recovery_view as select period, bucket, n from marts.recovery")
    # the next build adds a segment to the grain: two rows per (period, bucket) now
    _exec(db_conn, """
        drop table marts_candidate.recovery;
        create table marts_candidate.recovery (period date, bucket text, n int, segment text);
        create unique index on marts_candidate.recovery (period, segment, bucket);
        create index on marts_candidate.recovery (segment, period);
        insert into marts_candidate.recovery values
            ('2025-01-01', 'never', 1, 'pro'), ('2025-01-01', 'never', 2, 'basic');
    """)
    [result] = publish(db_conn)
    assert result.added_columns == ("segment",) and not result.rebuilt
    assert _indexes(db_conn, "marts", "recovery") == {"UNIQUE btree (period, segment, bucket)",
                                                      "btree (segment, period)"}
    with db_conn.cursor() as cur:
        cur.execute("select bucket, segment, n from public.recovery_view join marts.recovery using (period, bucket, n) "
                    "order by n")
        assert cur.fetchall() == [("never", "pro", 1), ("never", "basic", 2)]
