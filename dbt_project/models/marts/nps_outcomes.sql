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
-- CRM accounts are not available (not configured). The sums of int_account_outcomes_counted, which
-- keeps them per account and recomputes only the accounts that changed.

with

account_outcomes as (

    select * from {{ ref('int_account_outcomes_counted') }}

),

counted as (

    -- an account has one row per group, so its rows count the distinct accounts
    select
        horizon_days,
        segment_type,
        segment_value,
        nps_category,
        sum(responses) as responses,
        count(*) as distinct_accounts,
        sum(churned) as churned,
        sum(expanded) as expanded,
        sum(contracted) as contracted,
        sum(arr_at_response) as arr_at_response,
        sum(arr_retained) as arr_retained
    from account_outcomes
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
