{{
    config(
        indexes=[
            {'columns': ['account_id'], 'unique': true},
            {'columns': ['account_owner']},
            {'columns': ['trend', 'last_nps_category']},
        ],
    )
}}

-- Per account with a response known at as_of: its latest scores in time order (all of its contacts),
-- the direction of the last change, and how long ago it last answered.

with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

ordered as (

    select
        account_id,
        response_id,
        responded_at,
        score,
        nps_category,
        row_number() over (
            partition by account_id order by responded_at desc, response_id collate "C" desc
        ) as recency_rank,
        count(*) over (partition by account_id) as responses,
        min(responded_at) over (partition by account_id) as first_response_at
    from responses

),

latest_scores as (

    select
        account_id,
        array_agg(score order by recency_rank desc) as last_scores,
        string_agg(nps_category, ' -> ' order by recency_rank desc) as trajectory
    from ordered
    where recency_rank <= {{ var('trajectory_last_scores') }}
    group by account_id

),

last_two as (

    select
        account_id,
        max(responses) as responses,
        min(first_response_at) as first_response_at,
        max(responded_at) filter (where recency_rank = 1) as last_response_at,
        max(score) filter (where recency_rank = 1) as last_score,
        max(nps_category) filter (where recency_rank = 1) as last_nps_category,
        max(score) filter (where recency_rank = 2) as previous_score,
        max(nps_category) filter (where recency_rank = 2) as previous_nps_category
    from ordered
    where recency_rank <= 2
    group by account_id

),

current_accounts as (

    select * from account_versions
    where is_latest_version

),

final as (

    select
        -- grain
        last_two.account_id::text as account_id,

        -- account at as_of
        current_accounts.account_name::text as account_name,
        current_accounts.plan::text as plan,
        current_accounts.arr::numeric(14, 2) as arr,
        current_accounts.account_owner::text as account_owner,
        coalesce(current_accounts.churned_at < as_of.as_of, false)::boolean as is_churned,

        -- responses
        last_two.responses::bigint as responses,
        last_two.first_response_at::timestamptz as first_response_at,
        last_two.last_response_at::timestamptz as last_response_at,
        floor(extract(epoch from as_of.as_of - last_two.last_response_at) / 86400)::integer
            as days_since_last_response,
        last_two.last_score::integer as last_score,
        last_two.last_nps_category::text as last_nps_category,
        last_two.previous_score::integer as previous_score,
        last_two.previous_nps_category::text as previous_nps_category,
        (last_two.last_score - last_two.previous_score)::integer as score_change,
        (
            case
                when last_two.previous_score is null then 'first_response'
                when {{ nps_category_rank('last_two.last_nps_category') }}
                    > {{ nps_category_rank('last_two.previous_nps_category') }} then 'improving'
                when {{ nps_category_rank('last_two.last_nps_category') }}
                    < {{ nps_category_rank('last_two.previous_nps_category') }} then 'declining'
                else 'stable'
            end
        )::text as trend,
        latest_scores.last_scores::integer[] as last_scores,
        latest_scores.trajectory::text as trajectory,
        as_of.as_of::timestamptz as as_of

    from last_two
    inner join latest_scores
        on last_two.account_id = latest_scores.account_id
    left join current_accounts
        on last_two.account_id = current_accounts.account_id
    cross join as_of

)

select * from final
