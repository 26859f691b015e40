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

per_account as (

    -- One pass per account: the rank-1/2 columns and the last scores come from the same rows
    -- (two aggregates joined back together made the planner guess 200 accounts and nest-loop).
    select
        account_id,
        max(responses) as responses,
        min(first_response_at) as first_response_at,
        max(responded_at) filter (where recency_rank = 1) as last_response_at,
        max(score) filter (where recency_rank = 1) as last_score,
        max(nps_category) filter (where recency_rank = 1) as last_nps_category,
        max(score) filter (where recency_rank = 2) as previous_score,
        max(nps_category) filter (where recency_rank = 2) as previous_nps_category,
        array_agg(score order by recency_rank desc)
        filter (where recency_rank <= {{ trajectory_last_scores() }}) as last_scores,
        string_agg(nps_category, ' -> ' order by recency_rank desc)
        filter (where recency_rank <= {{ trajectory_last_scores() }}) as trajectory
    from ordered
    where recency_rank <= greatest(2, {{ trajectory_last_scores() }})
    group by account_id

),

current_accounts as (

    select * from account_versions
    where is_latest_version

),

final as (

    select
        -- grain
        per_account.account_id::text as account_id,

        -- account at as_of
        current_accounts.account_name::text as account_name,
        current_accounts.plan::text as plan,
        current_accounts.arr::numeric(14, 2) as arr,
        current_accounts.account_owner::text as account_owner,
        coalesce(current_accounts.churned_at < as_of.as_of, false)::boolean as is_churned,

        -- responses
        per_account.responses::bigint as responses,
        per_account.first_response_at::timestamptz as first_response_at,
        per_account.last_response_at::timestamptz as last_response_at,
        floor(extract(epoch from as_of.as_of - per_account.last_response_at) / 86400)::integer
            as days_since_last_response,
        per_account.last_score::integer as last_score,
        per_account.last_nps_category::text as last_nps_category,
        per_account.previous_score::integer as previous_score,
        per_account.previous_nps_category::text as previous_nps_category,
        (per_account.last_score - per_account.previous_score)::integer as score_change,
        (
            case
                when per_account.previous_score is null then 'first_response'
                when {{ nps_category_rank('per_account.last_nps_category') }}
                    > {{ nps_category_rank('per_account.previous_nps_category') }} then 'improving'
                when {{ nps_category_rank('per_account.last_nps_category') }}
                    < {{ nps_category_rank('per_account.previous_nps_category') }} then 'declining'
                else 'stable'
            end
        )::text as trend,
        per_account.last_scores::integer[] as last_scores,
        per_account.trajectory::text as trajectory,
        as_of.as_of::timestamptz as as_of

    from per_account
    left join current_accounts
        on per_account.account_id = current_accounts.account_id
    cross join as_of

)

select * from final
