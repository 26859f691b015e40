-- One row per response: NPS category, UTC periods, the account's attributes as of the response
-- (version with the greatest updated_at <= responded_at, else the earliest version), bands, and the
-- account's latest churned_at (from its latest version).
with

responses as (

    select * from {{ ref('stg_survey__responses') }}

),

account_versions as (

    select * from {{ ref('stg_crm__account_versions') }}

),

usage_daily as (

    select * from {{ ref('stg_product__usage_daily') }}

),

responses_dated as (

    select
        response_id,
        survey_id,
        survey_type,
        trigger_event,
        account_id,
        contact_id,
        channel,
        language,
        score,
        responded_at,
        (responded_at at time zone 'UTC')::date as response_date
    from responses

),

account_versions_ranked as (

    select
        responses_dated.response_id,
        account_versions.updated_at as account_version_updated_at,
        account_versions.plan,
        account_versions.industry,
        account_versions.region,
        account_versions.employee_band,
        account_versions.arr,
        account_versions.customer_since,
        row_number() over (
            partition by responses_dated.response_id
            order by
                case when account_versions.updated_at <= responses_dated.responded_at then 0 else 1 end,
                case
                    when account_versions.updated_at <= responses_dated.responded_at
                        then account_versions.updated_at
                end desc,
                account_versions.updated_at asc
        ) as version_rank
    from responses_dated
    inner join account_versions
        on responses_dated.account_id = account_versions.account_id

),

account_as_of_response as (

    select * from account_versions_ranked
    where version_rank = 1

),

latest_account_versions as (

    select distinct on (account_id)
        account_id,
        churned_at as latest_churned_at
    from account_versions
    order by account_id asc, updated_at desc

),

usage_before_response as (

    -- sessions per day over [response_date - lookback, response_date - 1]; missing days count as 0
    select
        responses_dated.response_id,
        coalesce(sum(usage_daily.sessions), 0)::double precision
        / {{ var('usage_lookback_days') }} as sessions_per_day
    from responses_dated
    left join usage_daily
        on
            responses_dated.account_id = usage_daily.account_id
            and usage_daily.usage_date >= responses_dated.response_date - {{ var('usage_lookback_days') }}
            and usage_daily.usage_date <= responses_dated.response_date - 1
    group by responses_dated.response_id

),

joined as (

    select
        responses_dated.*,
        account_as_of_response.account_version_updated_at,
        account_as_of_response.plan,
        account_as_of_response.industry,
        account_as_of_response.region,
        account_as_of_response.employee_band,
        account_as_of_response.arr,
        account_as_of_response.customer_since,
        latest_account_versions.latest_churned_at,
        usage_before_response.sessions_per_day,
        responses_dated.response_date - account_as_of_response.customer_since as tenure_days
    from responses_dated
    left join account_as_of_response
        on responses_dated.response_id = account_as_of_response.response_id
    left join latest_account_versions
        on responses_dated.account_id = latest_account_versions.account_id
    left join usage_before_response
        on responses_dated.response_id = usage_before_response.response_id

),

categorised as (

    select
        -- ids
        response_id,
        survey_id,
        account_id,
        contact_id,
        coalesce(contact_id, account_id) as respondent_id,

        -- survey context
        survey_type,
        trigger_event,
        channel,
        language,

        -- answer
        score,
        {{ nps_category('score') }} as nps_category,
        score >= 9 as is_promoter,
        score between 7 and 8 as is_passive,
        score <= 6 as is_detractor,

        -- time
        responded_at,
        response_date,
        {{ utc_period_start('month', 'responded_at') }} as response_month,
        {{ utc_period_start('quarter', 'responded_at') }} as response_quarter,

        -- account as of the response
        account_version_updated_at,
        plan,
        industry,
        region,
        employee_band,
        arr,
        customer_since,
        tenure_days,
        sessions_per_day,
        latest_churned_at,

        -- bands
        {{ arr_band('arr') }} as arr_band,
        {{ tenure_band('tenure_days') }} as tenure_band,
        {{ usage_band('sessions_per_day') }} as usage_band

    from joined

)

select * from categorised
