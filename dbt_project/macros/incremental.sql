{#-
    Change detection of the incremental models keyed by an event row (a response, a send) whose
    columns depend on the account as of the event and the product usage before it
    (int_responses_enriched, int_survey_sends_answered; docs/incremental.md). Each such model
    stamps its rows with built_at (database time of the build), built_as_of and built_settings
    (a fingerprint of the settings they were computed with), and keeps the source row's loaded_at.
-#}


{#- Fingerprint (md5 text) of a list of settings, the calling model's own SQL (a new version of the
    model recomputes every row) and a SQL expression (e.g. whether usage is available); vars given
    on the command line arrive as strings, so quotes are ignored. -#}
{% macro settings_fingerprint(settings, expression) -%}
    {%- set code = model.raw_code if model is defined and model.raw_code is defined else '' -%}
    {%- set text = (settings | string | replace("'", "") | replace('"', '')) ~ '|' ~ local_md5(code) -%}
    md5('{{ text }}' || coalesce(({{ expression }})::text, 'null'))
{%- endmacro %}


{#- One row about the previous build of {{ this }}: its as_of; built_at, its build time (dbt's own
    writes, snapshots and the upstream models, happen in builds, which are serialised: what they
    wrote after it is new); loads_after, the time from which loads into raw count as new (built_at
    less var incremental_lookback_days: a load still running when that build read commits rows
    stamped earlier); loaded_after, the same for the source rows it holds; and whether any row was
    computed with other settings. -#}
{% macro incremental_previous_build(current_settings) -%}
    select
        max(previous.built_as_of) as as_of,
        max(previous.built_at) as built_at,
        max(previous.built_at) - interval '{{ var("incremental_lookback_days") }} days' as loads_after,
        max(previous.loaded_at) - interval '{{ var("incremental_lookback_days") }} days' as loaded_after,
        bool_or(previous.built_settings is distinct from ({{ current_settings }})) as is_settings_changed
    from {{ this }} as previous
{%- endmacro %}


{#- Whether an incremental build must recompute every row: nothing built yet, as_of moved back,
    settings changed, or a usage load since the previous build removed rows (a source fix: which
    windows lost what is not recorded row by row). -#}
{% macro incremental_rebuild_everything(previous_build, as_of, load_audit) -%}
    select
        {{ previous_build }}.as_of is null
        or {{ as_of }}.as_of < {{ previous_build }}.as_of
        or coalesce({{ previous_build }}.is_settings_changed, true)
        or exists (
            select 1
            from {{ load_audit }}
            where
                {{ load_audit }}.entity = 'usage_daily'
                and {{ load_audit }}.loaded_at >= {{ previous_build }}.loads_after
                and {{ load_audit }}.rows_lost > 0
        ) as is_everything
    from {{ previous_build }}
    cross join {{ as_of }}
{%- endmacro %}


{#- Accounts whose CRM history moved since the previous build: a version the snapshot opened or
    closed after it (a new version, a content fix, a deletion; the snapshot's own times are naive
    timestamps in the session time zone), or one that as_of has come to include. -#}
{% macro incremental_changed_accounts(account_snapshots, previous_build, as_of) -%}
    select distinct {{ account_snapshots }}.account_id
    from {{ account_snapshots }}
    cross join {{ previous_build }}
    cross join {{ as_of }}
    where
        {{ account_snapshots }}.dbt_valid_from::timestamptz > {{ previous_build }}.built_at
        or {{ account_snapshots }}.dbt_valid_to::timestamptz > {{ previous_build }}.built_at
        or (
            {{ account_snapshots }}.updated_at >= {{ previous_build }}.as_of
            and {{ account_snapshots }}.updated_at < {{ as_of }}.as_of
        )
{%- endmacro %}


{#- Usage rows loaded since the previous build, by account: the first and last date they cover. An
    event on day d reads usage of [d - usage_lookback_days, d - 1], so events with
    first_usage_date < d <= last_usage_date + usage_lookback_days are affected. -#}
{% macro incremental_changed_usage(usage_daily) -%}
    {%- set loads_after = incremental_built_after(var('incremental_lookback_days')) %}
    select
        {{ usage_daily }}.account_id,
        min({{ usage_daily }}.usage_date) as first_usage_date,
        max({{ usage_daily }}.usage_date) as last_usage_date
    from {{ usage_daily }}
    -- previous_build.loads_after as a literal: PostgreSQL estimates a literal from the loaded_at
    -- index, where a bound read from a CTE is guessed at a third of the rows and all usage is scanned
    -- (null when nothing was built: no row)
    where {{ usage_daily }}.loaded_at >= {{ timestamp_literal(loads_after) }}
    group by {{ usage_daily }}.account_id
{%- endmacro %}


{#- The newest built_at of {{ this }} less lookback_days, read when the model runs, as text; none
    while parsing or when nothing was built. A bound given as a literal lets PostgreSQL estimate a
    filter from its index, where one read from a CTE is guessed at a third of the rows. -#}
{% macro incremental_built_after(lookback_days=0) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set result = run_query(
        "select (max(built_at) - interval '" ~ lookback_days ~ " days')::text from " ~ this
    ) -%}
    {{ return(result.columns[0].values()[0]) }}
{%- endmacro %}


{#- Whether the rows {{ this }} built at built_after (text, from incremental_built_after) were
    computed with other settings than the SQL expression settings (true when nothing was built),
    read when the model runs. For a model whose every build shares one fingerprint: a change
    recomputes every row. -#}
{% macro incremental_settings_changed(settings, built_after) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set result = run_query(
        "select (select built_settings from " ~ this ~ " where built_at = " ~ timestamp_literal(built_after)
        ~ " limit 1) is distinct from " ~ settings
    ) -%}
    {{ return(result.columns[0].values()[0]) }}
{%- endmacro %}


{#- The responses int_theme_mentions_resolved can hold a row of: with an assignment and an enriched
    row (a subquery, for delete_rows_missing_from: one pass over the model). -#}
{% macro mentionable_responses() -%}
    (
        select assignments.response_id
        from {{ ref('int_theme_assignments_collected') }} as assignments
        inner join {{ ref('int_responses_enriched') }} as responses
            on assignments.response_id = responses.response_id
    )
{%- endmacro %}


{#- A timestamptz literal of a text from incremental_built_after (null when none). -#}
{% macro timestamp_literal(text) -%}
    {{ "'" ~ text ~ "'" if text is not none else 'null' }}::timestamptz
{%- endmacro %}


{#- Sessions per day over each event's usage window [day - usage_lookback_days, day - 1], missing
    days as 0; null when product usage is not available at all (not configured): "unknown", not
    "none". One row per event key. Reads the model's usage_source and usage_daily CTEs. An
    incremental build looks up each recomputed event's window by the usage key (account_id,
    usage_date); a full build joins all usage at once (millions of lookups would be slower). -#}
{% macro sessions_per_day_before(events, key, day, incremental) -%}
    select
        {{ events }}.{{ key }},
        case
            when usage_source.is_usage_available
                then coalesce({{ 'usage_window.sessions' if incremental else 'sum(usage_daily.sessions)' }}, 0)
                ::double precision / {{ var('usage_lookback_days') }}
        end as sessions_per_day
    from {{ events }}
    cross join usage_source
    {%- if incremental %}
        left join lateral (
            select sum(usage_daily.sessions) as sessions
            from usage_daily
            where
                usage_daily.account_id = {{ events }}.account_id
                and usage_daily.usage_date >= {{ day }} - {{ var('usage_lookback_days') }}
                and usage_daily.usage_date <= {{ day }} - 1
        ) as usage_window on true
    {%- else %}
        left join usage_daily
            on
                {{ events }}.account_id = usage_daily.account_id
                and usage_daily.usage_date >= {{ day }} - {{ var('usage_lookback_days') }}
                and usage_daily.usage_date <= {{ day }} - 1
        group by {{ events }}.{{ key }}, usage_source.is_usage_available
    {%- endif %}
{%- endmacro %}


{#- Order-independent fingerprint of a set of rows: the sum of a 64-bit hash of each row's columns
    (null kept apart from any value). A changed, added or removed row changes the sum. -#}
{% macro row_fingerprint_sum(columns) -%}
    {%- set values = [] -%}
    {%- for column in columns -%}
        {%- set _ = values.append('coalesce(' ~ column ~ "::text, '\\N')") -%}
    {%- endfor -%}
    sum(hashtextextended(concat_ws('|', {{ values | join(', ') }}), 0))
{%- endmacro %}


{#- Post-hook of the period-incremental models: delete the periods (period_grain month / quarter,
    period_start) that no row of the relation falls in any more (its <prefix>_month / _quarter). -#}
{% macro delete_periods_missing_from(relation, period_prefix) -%}
    delete from {{ this }} as target
    using (
        select distinct
            kept.period_grain,
            kept.period_start
        from {{ this }} as kept
        except
        select
            'month' as period_grain,
            source_rows.{{ period_prefix }}_month as period_start
        from {{ relation }} as source_rows
        except
        select
            'quarter' as period_grain,
            source_rows.{{ period_prefix }}_quarter as period_start
        from {{ relation }} as source_rows
    ) as gone
    where
        target.period_grain = gone.period_grain
        and target.period_start = gone.period_start
{%- endmacro %}


{#- The change detection of the period-incremental models, as two CTEs: previous_periods (the
    fingerprints {{ this }} was built with; none in a full build) and changed_periods (the periods of
    the model's period_prints CTE whose fingerprint differs: the periods this build computes). -#}
{% macro incremental_changed_periods(incremental) -%}
    previous_periods as (

        {% if incremental %}
            select distinct
                period_grain,
                period_start,
                period_fingerprint
            from {{ this }}
        {% else %}
            select
                period_grain,
                period_start,
                period_fingerprint
            from period_prints
            where false
        {% endif %}

    ),

    changed_periods as (

        select
            period_prints.period_grain,
            period_prints.period_start
        from period_prints
        left join previous_periods
            on
                period_prints.period_grain = previous_periods.period_grain
                and period_prints.period_start = previous_periods.period_start
        where previous_periods.period_fingerprint is distinct from period_prints.period_fingerprint

    ),
{%- endmacro %}


{#- is_incremental(), and {{ this }} already has the bookkeeping column the change detection reads:
    a table built by an older version of the model (before it was incremental, or before that
    column) is recomputed whole instead of failing. -#}
{% macro incremental_with(column) -%}
    {#- a unit test has no relation for {{ this }} (is_incremental() itself would fail on it) -#}
    {%- if not execute or this is none or not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {{ return(column in existing) }}
{%- endmacro %}


{#- The change detection shared by the event models, as four CTEs: previous_build, rebuild
    (is_everything), changed_accounts and changed_usage. Reads the model's import CTEs by name:
    usage_source (with settings_fingerprint), as_of, load_audit, account_snapshots, usage_daily. -#}
{% macro incremental_event_changes() -%}
    previous_build as (

        {{ incremental_previous_build('select usage_source.settings_fingerprint from usage_source') }}

    ),

    rebuild as (

        {{ incremental_rebuild_everything('previous_build', 'as_of', 'load_audit') }}

    ),

    changed_accounts as (

        {{ incremental_changed_accounts('account_snapshots', 'previous_build', 'as_of') }}

    ),

    changed_usage as (

        {{ incremental_changed_usage('usage_daily') }}

    ),
{%- endmacro %}


{#- An event on this day reads usage of [day - usage_lookback_days, day - 1]: whether that window
    holds a day of changed_usage (for the changed_usage row of the event's account). -#}
{% macro in_changed_usage_window(day) -%}
    {{ day }} > changed_usage.first_usage_date
    and {{ day }} <= changed_usage.last_usage_date + {{ var('usage_lookback_days') }}
{%- endmacro %}


{#- Post-hook of int_account_outcomes_counted: delete the accounts left with no response matured at
    the shortest horizon (their responses deleted or moved, as_of moved back, or CRM accounts no longer
    available). A recomputed account with any row has all its rows replaced by delete+insert. -#}
{% macro delete_outcomes_without_matured_responses() -%}
    delete from {{ this }} as target
    where not exists (
        select 1
        from {{ ref('int_responses_enriched') }} as responses
        cross join {{ ref('int_as_of_resolved') }} as as_of
        inner join {{ ref('int_sources_audited') }} as sources_audited
            on sources_audited.entity = 'accounts' and sources_audited.is_available
        where
            responses.account_id = target.account_id
            and responses.responded_at
            + make_interval(days => {{ outcome_horizons() | min }}) <= as_of.as_of
    )
{%- endmacro %}
