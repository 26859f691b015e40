{{
    config(
        indexes=[
            {'columns': ['horizon_days', 'segment_type', 'segment_value', 'nps_category'], 'unique': true},
            {'columns': ['segment_type', 'segment_value']},
        ],
    )
}}

-- What happened to the account within N days after a response, by the response's NPS category and
-- segment (as of the response): does NPS predict churn and expansion here? Only responses whose
-- horizon has fully passed by as_of count (a recent response has had no time to churn). Empty when
-- CRM accounts are not available (not configured).

with

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

horizons as (

    select horizon_days
    from (
        values
        {% for days in var('outcome_horizons_days') -%}
            ({{ days }}){{ "," if not loop.last }}
        {% endfor %}
    ) as horizons (horizon_days)

),

matured as (

    select
        responses.response_id,
        responses.account_id,
        responses.responded_at,
        responses.arr as arr_at_response,
        responses.latest_churned_at,
        horizons.horizon_days,
        responses.responded_at + make_interval(days => horizons.horizon_days) as horizon_end
    from responses
    cross join horizons
    cross join as_of
    -- without CRM accounts (not configured) churn and expansion cannot be seen: no rows, rather
    -- than a churn rate of 0 (marts.source_coverage says why the mart is empty)
    inner join sources_audited
        on sources_audited.entity = 'accounts' and sources_audited.is_available
    where responses.responded_at + make_interval(days => horizons.horizon_days) <= as_of.as_of

),

outcomes as (

    select
        matured.*,
        account_versions.arr as arr_at_horizon,
        coalesce(
            matured.latest_churned_at >= matured.responded_at
            and matured.latest_churned_at <= matured.horizon_end,
            false
        ) as is_churned
    from matured
    left join account_versions
        on
            matured.account_id = account_versions.account_id
            and matured.horizon_end >= account_versions.valid_from
            and matured.horizon_end < account_versions.valid_to

),

classified as (

    select
        *,
        not is_churned and arr_at_horizon > arr_at_response as is_expanded,
        not is_churned and arr_at_horizon < arr_at_response as is_contracted,
        case when is_churned then 0 else coalesce(arr_at_horizon, 0) end as arr_retained
    from outcomes

),

segmented as (

    select
        classified.horizon_days,
        segmented_responses.segment_type,
        segmented_responses.segment_value,
        segmented_responses.nps_category,
        classified.response_id,
        classified.account_id,
        classified.is_churned,
        coalesce(classified.is_expanded, false) as is_expanded,
        coalesce(classified.is_contracted, false) as is_contracted,
        coalesce(classified.arr_at_response, 0) as arr_at_response,
        classified.arr_retained
    from classified
    inner join segmented_responses
        on classified.response_id = segmented_responses.response_id

),

counted as (

    select
        horizon_days,
        segment_type,
        segment_value,
        nps_category,
        count(*) as responses,
        count(distinct account_id) as distinct_accounts,
        count(*) filter (where is_churned) as churned,
        count(*) filter (where is_expanded) as expanded,
        count(*) filter (where is_contracted) as contracted,
        sum(arr_at_response) as arr_at_response,
        sum(arr_retained) as arr_retained
    from segmented
    group by horizon_days, segment_type, segment_value, nps_category

),

final as (

    select
        horizon_days::integer as horizon_days,
        segment_type::text as segment_type,
        segment_value::text as segment_value,
        nps_category::text as nps_category,
        responses::bigint as responses,
        distinct_accounts::bigint as distinct_accounts,
        churned::bigint as churned,
        {{ safe_ratio('churned', 'responses') }} as churn_rate,
        expanded::bigint as expanded,
        {{ safe_ratio('expanded', 'responses') }} as expansion_rate,
        contracted::bigint as contracted,
        {{ safe_ratio('contracted', 'responses') }} as contraction_rate,
        arr_at_response::numeric(18, 2) as arr_at_response,
        arr_retained::numeric(18, 2) as arr_retained,
        {{ safe_ratio('arr_retained', 'arr_at_response') }} as net_revenue_retention,
        (responses < {{ var('nps_min_n') }})::boolean as below_min_n
    from counted

)

select * from final
