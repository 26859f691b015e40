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


{#- One row about the previous build of {{ this }}: its as_of, the time from which changes count
    (its build time less var incremental_lookback_days, for loads that were still running), the
    loads it had read (same lookback) and whether any row was computed with other settings. -#}
{% macro incremental_previous_build(current_settings) -%}
    select
        max(previous.built_as_of) as as_of,
        max(previous.built_at) - interval '{{ var("incremental_lookback_days") }} days' as changed_after,
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
                and {{ load_audit }}.loaded_at >= {{ previous_build }}.changed_after
                and {{ load_audit }}.rows_lost > 0
        ) as is_everything
    from {{ previous_build }}
    cross join {{ as_of }}
{%- endmacro %}


{#- Accounts whose CRM history moved since the previous build: a version opened or closed (a new
    version, a content fix, a deletion; the snapshot's own times are naive timestamps in the session
    time zone), or one that as_of has come to include. -#}
{% macro incremental_changed_accounts(account_snapshots, previous_build, as_of) -%}
    select distinct {{ account_snapshots }}.account_id
    from {{ account_snapshots }}
    cross join {{ previous_build }}
    cross join {{ as_of }}
    where
        {{ account_snapshots }}.dbt_valid_from::timestamptz >= {{ previous_build }}.changed_after
        or {{ account_snapshots }}.dbt_valid_to::timestamptz >= {{ previous_build }}.changed_after
        or (
            {{ account_snapshots }}.updated_at >= {{ previous_build }}.as_of
            and {{ account_snapshots }}.updated_at < {{ as_of }}.as_of
        )
{%- endmacro %}


{#- Usage rows loaded since the previous build, by account: the first and last date they cover. An
    event on day d reads usage of [d - usage_lookback_days, d - 1], so events with
    first_usage_date < d <= last_usage_date + usage_lookback_days are affected. -#}
{% macro incremental_changed_usage(usage_daily, previous_build) -%}
    select
        {{ usage_daily }}.account_id,
        min({{ usage_daily }}.usage_date) as first_usage_date,
        max({{ usage_daily }}.usage_date) as last_usage_date
    from {{ usage_daily }}
    cross join {{ previous_build }}
    where {{ usage_daily }}.loaded_at >= {{ previous_build }}.changed_after
    group by {{ usage_daily }}.account_id
{%- endmacro %}
