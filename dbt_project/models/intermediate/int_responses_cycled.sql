-- One row per response with the respondent's following response (survey cycle; ties in responded_at are
-- broken by response_id in code-point order). The following
-- response counts as the observed "next" response when it comes within next_response_window_days.
with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

ordered as (

    select
        response_id,
        respondent_id,
        account_id,
        responded_at,
        score,
        lead(response_id) over respondent_cycle as following_response_id,
        lead(responded_at) over respondent_cycle as following_responded_at,
        lead(score) over respondent_cycle as following_score
    from responses
    window respondent_cycle as (
        partition by respondent_id order by responded_at asc, response_id collate "C" asc
    )

),

windowed as (

    select
        *,
        coalesce(
            following_responded_at
            <= responded_at + interval '{{ var("next_response_window_days") }} days',
            false
        ) as has_next_response
    from ordered

),

final as (

    select
        response_id,
        respondent_id,
        account_id,
        responded_at,
        score,
        following_response_id,
        following_responded_at,
        following_score,
        has_next_response,
        case when has_next_response then following_response_id end as next_response_id,
        case when has_next_response then following_responded_at end as next_responded_at,
        case when has_next_response then following_score end as next_score
    from windowed

)

select * from final
