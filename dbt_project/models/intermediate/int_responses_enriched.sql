-- One row per response known at as_of (responded_at < as_of): NPS category, UTC periods, the account's
-- attributes as of the response (the version valid at responded_at: the greatest updated_at <=
-- responded_at, else the earliest), bands, and the account's latest state known at as_of (churned_at,
-- owner). sessions_per_day (and usage_band) is null when product usage is not available.
with

responses as (

    select * from {{ ref('int_responses_categorised') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

usage_daily as (

    select * from {{ ref('stg_product__usage_daily') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

usage_source as (

    select is_available as is_usage_available
    from sources_audited
    where entity = 'usage_daily'

),

known_responses as (

    select responses.*
    from responses
    cross join as_of
    where responses.responded_at < as_of.as_of

),

latest_account_versions as (

    select
        account_id,
        churned_at as latest_churned_at
    from account_versions
    where is_latest_version

),

usage_before_response as (

    -- sessions per day over [response_date - lookback, response_date - 1]; missing days count as 0
    -- null when product usage is not available at all (not configured): "unknown", not "none"
    select
        known_responses.response_id,
        case
            when usage_source.is_usage_available
                then coalesce(sum(usage_daily.sessions), 0)::double precision / {{ var('usage_lookback_days') }}
        end as sessions_per_day
    from known_responses
    cross join usage_source
    left join usage_daily
        on
            known_responses.account_id = usage_daily.account_id
            and usage_daily.usage_date >= known_responses.response_date - {{ var('usage_lookback_days') }}
            and usage_daily.usage_date <= known_responses.response_date - 1
    group by known_responses.response_id, usage_source.is_usage_available

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
        known_responses.response_date - account_versions.customer_since as tenure_days
    from known_responses
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
        {{ usage_band('sessions_per_day') }} as usage_band

    from joined

)

select * from final
