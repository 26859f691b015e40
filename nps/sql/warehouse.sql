-- Landing (raw) and theme (nlp) schemas. Idempotent: safe to run before every task.
-- dbt owns staging / intermediate / marts; this file owns only what Python writes.

create schema if not exists raw;
create schema if not exists nlp;
create schema if not exists ops;

-- Pipeline run state (ops.*), not data: which run built the candidate marts, and what marts.*
-- were published as of. Kept apart from raw / nlp / marts so that the data schemas compare equal
-- however the runs that wrote them were cut (nightly runs, a backfill, a retried run).
-- The one candidate schema's provenance: the run that built it (under the dbt lock), the "as of"
-- of that build, and whether that same run validated it. validate and publish check it under the
-- same lock, so a run never validates or publishes a candidate another run built.
create table if not exists ops.candidate_build (
    candidate_schema text        not null primary key,
    run_id           text        not null,
    as_of            timestamptz,
    interval_start   timestamptz,
    interval_end     timestamptz,
    built_at         timestamptz not null default now(),
    validated_at     timestamptz
);
-- finished_at is null while a build runs (written, and committed, before dbt starts): dbt commits
-- model by model, so a build killed halfway leaves a candidate no run may validate or publish
alter table ops.candidate_build add column if not exists finished_at timestamptz;
-- One row per publish: the marts in marts.* are "as of" the newest row's as_of. A failed run
-- never gets a row, so it cannot move the next build's "as of" (dbt.build_as_of).
create table if not exists ops.published_builds (
    publish_id     bigserial   primary key,
    run_id         text        not null,
    as_of          timestamptz,
    interval_start timestamptz,
    interval_end   timestamptz,
    built_at       timestamptz,
    published_at   timestamptz not null default now()
);

-- What delivery sent where (nps.delivery): one row per (delivery_key, channel). A key not `sent`
-- is sent by the next delivery; `sent` is never sent again (a rerun or a backfill sends nothing new).
create table if not exists ops.delivery_log (
    delivery_key     text        not null,
    channel          text        not null,
    kind             text        not null,
    target           text        not null,
    status           text        not null check (status in ('sending', 'sent', 'failed')),
    attempts         integer     not null default 0,
    response         text,
    run_id           text        not null,
    message_id       text,
    payload          jsonb,
    first_attempt_at timestamptz not null default now(),
    last_attempt_at  timestamptz not null default now(),
    sent_at          timestamptz,
    primary key (delivery_key, channel)
);
-- The facts each published report showed (nps.report): the next report's "what changed" compares with
-- the newest one of earlier marts.
create table if not exists ops.report_snapshots (
    marts_as_of  timestamptz not null primary key,
    report_date  date        not null,
    facts        jsonb       not null,
    rendered_at  timestamptz not null default now()
);

create table if not exists raw.survey_responses (
    response_id   text        not null primary key,
    survey_id     text,
    survey_type   text,
    trigger_event text,
    account_id    text        not null,
    contact_id    text,
    channel       text,
    sent_at       timestamptz,
    responded_at  timestamptz not null,
    score         smallint    not null check (score between 0 and 10),
    comment       text,
    language      text,
    extras        jsonb,
    _run_id       text,
    _source_file  text,
    _loaded_at    timestamptz not null default now()
);
create index if not exists survey_responses_responded_at_idx on raw.survey_responses (responded_at);

create table if not exists raw.accounts (
    account_id     text        not null,
    name           text,
    industry       text,
    region         text,
    employee_band  text,
    plan           text,
    arr            numeric(14, 2),
    currency       text,
    customer_since date,
    owner          text,
    churned_at     timestamptz,
    updated_at     timestamptz not null,
    extras         jsonb,
    _run_id        text,
    _source_file   text,
    _loaded_at     timestamptz not null default now(),
    primary key (account_id, updated_at)
);
create index if not exists accounts_updated_at_idx on raw.accounts (updated_at);

create table if not exists raw.contacts (
    contact_id   text        not null,
    account_id   text        not null,
    email        text,
    full_name    text,
    role         text,
    created_at   timestamptz,
    updated_at   timestamptz not null,
    extras       jsonb,
    _run_id      text,
    _source_file text,
    _loaded_at   timestamptz not null default now(),
    primary key (contact_id, updated_at)
);
create index if not exists contacts_updated_at_idx on raw.contacts (updated_at);

create table if not exists raw.activities (
    activity_id   text        not null primary key,
    account_id    text        not null,
    contact_id    text,
    response_id   text,
    activity_type text,
    created_at    timestamptz not null,
    outcome       text,
    extras        jsonb,
    _run_id       text,
    _source_file  text,
    _loaded_at    timestamptz not null default now()
);
create index if not exists activities_created_at_idx on raw.activities (created_at);
create index if not exists activities_account_idx on raw.activities (account_id, created_at);

create table if not exists raw.usage_daily (
    account_id   text    not null,
    usage_date   date    not null,
    active_users integer,
    sessions     integer,
    core_events  integer,
    extras       jsonb,
    _run_id      text,
    _source_file text,
    _loaded_at   timestamptz not null default now(),
    primary key (account_id, usage_date)
);
create index if not exists usage_daily_date_idx on raw.usage_daily (usage_date);

create table if not exists raw.quarantine (
    quarantine_id  bigserial primary key,
    entity         text        not null,
    run_id         text,
    interval_start timestamptz,
    interval_end   timestamptz,
    source_file    text,
    source_line    integer,
    rule           text        not null,
    detail         text,
    payload        jsonb,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine_entity_idx on raw.quarantine (entity, interval_start);

create table if not exists raw.load_audit (
    audit_id          bigserial primary key,
    run_id            text,
    entity            text        not null,
    interval_start    timestamptz not null,
    interval_end      timestamptz not null,
    source_files      integer,
    rows_read         integer,
    rows_loaded       integer,
    rows_quarantined  integer,
    duplicates_dropped integer,
    rows_replaced     integer,
    checksum          text,
    source_location   text,
    duration_s        double precision,
    loaded_at         timestamptz not null default now()
);

create table if not exists nlp.embeddings (
    text_hash  text        not null,
    model      text        not null,
    dim        integer     not null,
    embedding  bytea       not null,
    created_at timestamptz not null default now(),
    primary key (text_hash, model)
);

create table if not exists nlp.themes (
    theme_id       integer     not null primary key,
    label          text        not null,
    keywords       text[]      not null default '{}',
    centroid       bytea,
    size           integer     not null default 0,
    status         text        not null default 'active' check (status in ('active', 'merged')),
    merged_into    integer,
    model          text        not null,
    first_seen_at  timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    created_run_id text
);

create table if not exists nlp.comment_themes (
    response_id text        not null primary key,
    text_hash   text,
    theme_id    integer,
    confidence  real,
    method      text        not null check (method in ('empty', 'no_feedback', 'noise', 'assigned', 'discovered', 'pinned')),
    model       text        not null,
    assigned_at timestamptz not null default now(),
    run_id      text
);
create index if not exists comment_themes_theme_idx on nlp.comment_themes (theme_id);
-- the theme engine's label sample per theme, and the night's pool of earlier noise comments
create index if not exists comment_themes_label_sample_idx on nlp.comment_themes (theme_id, text_hash, response_id);
create index if not exists comment_themes_noise_idx on nlp.comment_themes (response_id) where method = 'noise';
-- theme overrides seed (nlp/overrides.py): a person's label and actionable flag live beside the
-- engine's own keyword label, so a run can refresh `label` without ever touching a human decision
alter table nlp.themes add column if not exists human_label text;
alter table nlp.themes add column if not exists is_actionable boolean;
alter table nlp.themes add column if not exists merged_by text;

-- source connectors (issue #3): originals of redacted comments, written only when sources.yml sets
-- keep_original_comment: true; they go with their response (a reload without the option purges them)
create table if not exists raw.survey_responses_original (
    response_id text        not null primary key
        references raw.survey_responses (response_id) on delete cascade,
    comment     text,
    _run_id     text,
    _loaded_at  timestamptz not null default now()
);
alter table raw.load_audit add column if not exists connector text;
alter table raw.load_audit add column if not exists load_mode text;
alter table raw.load_audit add column if not exists extra_columns text[];
-- date-partitioned file drops are replaced per source file (a run owns its days' files)
create index if not exists survey_responses_source_file_idx on raw.survey_responses (_source_file);
create index if not exists accounts_source_file_idx on raw.accounts (_source_file);
create index if not exists contacts_source_file_idx on raw.contacts (_source_file);
create index if not exists activities_source_file_idx on raw.activities (_source_file);
create index if not exists usage_daily_source_file_idx on raw.usage_daily (_source_file);
create index if not exists quarantine_source_idx on raw.quarantine (entity, source_file, source_line);
-- broken file drops: files no parser could read (quarantined or failed, their old rows kept), and
-- rows a re-drop removed from what was loaded before (over max_row_loss_share only when accepted)
alter table raw.load_audit add column if not exists unreadable_files text[];
alter table raw.load_audit add column if not exists rows_lost integer;
alter table raw.load_audit add column if not exists row_loss_accepted boolean;
-- rows that are not answers (Qualtrics previews, tests, unfinished responses; rule excluded in raw.quarantine)
alter table raw.load_audit add column if not exists rows_excluded integer not null default 0;

-- theme hierarchy (nlp/hierarchy.py): comments belong to sub-themes, each sub-theme has a parent theme;
-- the built-in "no specific feedback" theme (nlp/no_feedback.py) is kind no_feedback at both levels
alter table nlp.themes add column if not exists level text not null default 'subtheme';
alter table nlp.themes add column if not exists parent_theme_id integer;
alter table nlp.themes add column if not exists kind text not null default 'discovered';
do $$
begin
    -- warehouses created before the no-feedback theme: widen the method check once (not on every run)
    if not exists (
        select 1 from pg_constraint
        where conrelid = 'nlp.comment_themes'::regclass and conname = 'comment_themes_method_check'
            and pg_get_constraintdef(oid) like '%no_feedback%'
    ) then
        alter table nlp.comment_themes drop constraint if exists comment_themes_method_check;
        alter table nlp.comment_themes add constraint comment_themes_method_check
            check (method in ('empty', 'no_feedback', 'noise', 'assigned', 'discovered', 'pinned'));
    end if;
end $$;

-- sentiment per comment (nlp/sentiment.py), written by the theme step's sentiment step after
-- nlp.comment_themes: one row per response with a non-empty comment (no-feedback answers neutral)
create table if not exists nlp.comment_sentiment (
    response_id     text             not null primary key,
    text_hash       text             not null,
    sentiment       text             not null check (sentiment in ('negative', 'neutral', 'positive')),
    sentiment_score double precision not null check (sentiment_score between -1 and 1),
    method          text             not null check (method in ('score_classifier', 'anchors', 'no_feedback')),
    model           text             not null,
    run_id          text,
    scored_at       timestamptz      not null default now()
);
-- dbt's int_theme_mentions_resolved reads the rows scored since its previous build
create index if not exists comment_sentiment_scored_idx on nlp.comment_sentiment (scored_at);

-- survey sends (optional entity): one row per invitation sent, answered or not; response rates and
-- survey fatigue count them (docs/contracts.md sections 1, 2 and 4)
create table if not exists raw.survey_sends (
    send_id       text        not null primary key,
    survey_id     text,
    survey_type   text,
    trigger_event text,
    account_id    text        not null,
    contact_id    text,
    channel       text,
    sent_at       timestamptz not null,
    response_id   text,
    extras        jsonb,
    _run_id       text,
    _source_file  text,
    _loaded_at    timestamptz not null default now()
);
create index if not exists survey_sends_sent_at_idx on raw.survey_sends (sent_at);
create index if not exists survey_sends_source_file_idx on raw.survey_sends (_source_file);
create index if not exists survey_sends_contact_idx on raw.survey_sends (contact_id, sent_at);
-- incremental dbt models find the usage / sends rows loaded since their previous build
create index if not exists usage_daily_loaded_at_idx on raw.usage_daily (_loaded_at);
