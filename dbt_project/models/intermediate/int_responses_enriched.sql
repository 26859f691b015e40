-- One row per response known at as_of (responded_at < as_of): NPS category, UTC periods, the account's
-- attributes as of the response (the version valid at responded_at: the greatest updated_at <=
-- responded_at, else the earliest), bands, and the account's latest state known at as_of (churned_at,
-- owner). sessions_per_day (and usage_band) is null when product usage is not available.
--
-- Incremental (grain: response_id): a build recomputes only the responses whose row can have changed
-- since the previous one (docs/incremental.md):
--   - responses loaded since (within var incremental_lookback_days of the newest load it holds), and
--     those that as_of has come to include (responded_at in [previous as_of, as_of));
--   - every response of an account with a CRM version opened or closed since the previous build, or
--     a version that as_of has come to include (its attributes and latest_churned_at move);
--   - responses whose usage window holds a usage row loaded since (by account and date).
-- Everything is recomputed when as_of moved back, the band / usage settings changed, usage became
-- (un)available, or a usage load since removed rows. Rows whose response left raw or is no longer
-- before as_of are deleted. A full refresh gives the same table (tests/test_dbt_history.py). The change
-- rules are the macros in macros/incremental.sql, shared with int_survey_sends_answered.
{%- set settings = [var('usage_lookback_days'), var('arr_band_boundaries'), var('tenure_band_days'),
                    var('usage_band_boundaries')] %}
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=[
            "{{ delete_rows_missing_from(ref('int_responses_categorised'), 'response_id') }}",
            "delete from {{ this }} where responded_at >= (select as_of from {{ ref('int_as_of_resolved') }})",
        ],
        indexes=[
            {'columns': ['response_id'], 'unique': true},
            {'columns': ['account_id']},
        ],
    )
}}
{%- set incremental = incremental_with('built_at') %}

with

-- not materialized: read by several CTEs, each filtering it by its indexes
responses as not materialized (

    select * from {{ ref('int_responses_categorised') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

usage_daily as not materialized (

    select * from {{ ref('stg_product__usage_daily') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

account_snapshots as (

    -- incremental builds: which accounts changed since the previous build
    select * from {{ ref('snap_crm__account_versions') }}

),

load_audit as (

    select * from {{ ref('stg_pipeline__load_audit') }}

),

usage_source as (

    select
        is_available as is_usage_available,
        {{ settings_fingerprint(settings, 'is_available') }} as settings_fingerprint
    from sources_audited
    where entity = 'usage_daily'

),

{% if incremental %}
    {{ incremental_event_changes() }}

    changed_responses as (

        select responses.response_id
        from responses
        cross join previous_build
        cross join as_of
        where
            responses.loaded_at >= previous_build.loaded_after
            or (responses.responded_at >= previous_build.as_of and responses.responded_at < as_of.as_of)

        union

        select responses.response_id
        from responses
        inner join changed_accounts
            on responses.account_id = changed_accounts.account_id

        union

        select responses.response_id
        from responses
        inner join changed_usage
            on
                responses.account_id = changed_usage.account_id
                and {{ in_changed_usage_window('responses.response_date') }}

        union

        select responses.response_id
        from responses
        cross join rebuild
        where rebuild.is_everything

    ),
{% endif %}

known_responses as (

    select responses.*
    from responses
    cross join as_of
    where
        responses.responded_at < as_of.as_of
        {% if incremental %}
            -- a semi-join (an "or" here would make PostgreSQL test every row against the list)
            and responses.response_id in (select changed_responses.response_id from changed_responses)
        {% endif %}

),

latest_account_versions as (

    select
        account_id,
        churned_at as latest_churned_at
    from account_versions
    where is_latest_version

),

usage_before_response as (

    -- sessions per day over [response_date - lookback, response_date - 1]
    {{ sessions_per_day_before('known_responses', 'response_id', 'known_responses.response_date', incremental) }}

),

joined as (

    select
        known_responses.*,
        account_versions.updated_at as account_version_updated_at,
        account_versions.plan,
        account_versions.industry,
        account_versions.region,
        account_versions.employee_band,
        account_versions.arr,
        account_versions.customer_since,
        account_versions.account_owner,
        latest_account_versions.latest_churned_at,
        usage_before_response.sessions_per_day,
        known_responses.response_date - account_versions.customer_since as tenure_days,
        as_of.as_of,
        usage_source.settings_fingerprint
    from known_responses
    cross join as_of
    cross join usage_source
    left join account_versions
        on
            known_responses.account_id = account_versions.account_id
            and known_responses.responded_at >= account_versions.valid_from
            and known_responses.responded_at < account_versions.valid_to
    left join latest_account_versions
        on known_responses.account_id = latest_account_versions.account_id
    left join usage_before_response
        on known_responses.response_id = usage_before_response.response_id

),

final as (

    select
        -- ids
        response_id,
        survey_id,
        account_id,
        contact_id,
        respondent_id,

        -- survey context
        survey_type,
        trigger_event,
        channel,
        language,

        -- answer
        score,
        nps_category,
        is_promoter,
        is_passive,
        is_detractor,
        comment,
        has_comment,

        -- time
        surveyed_at,
        responded_at,
        response_date,
        response_month,
        response_quarter,

        -- account as of the response
        account_version_updated_at,
        plan,
        industry,
        region,
        employee_band,
        arr,
        customer_since,
        account_owner,
        tenure_days,
        sessions_per_day,
        latest_churned_at,

        -- bands
        {{ arr_band('arr') }} as arr_band,
        {{ tenure_band('tenure_days') }} as tenure_band,
        {{ usage_band('sessions_per_day') }} as usage_band,

        -- incremental bookkeeping: the response's load, and the build that computed the row
        loaded_at,
        now() as built_at,
        as_of as built_as_of,
        settings_fingerprint as built_settings

    from joined

)

select * from final
