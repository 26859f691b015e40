{{
    config(
        indexes=[
            {'columns': ['period_grain', 'period_start', 'segment_type', 'segment_value'], 'unique': true},
            {'columns': ['segment_type', 'segment_value', 'period_grain', 'period_start']},
        ],
    )
}}

-- Where passives go: per period of the passive response and segment (as of the response), how many
-- answered again within var next_response_window_days as promoters (converted), passives again or
-- detractors (slipped); the others still await their next answer or were lost to churn, as in
-- detractor_recovery.

with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

cycles as (

    select * from {{ ref('int_responses_cycled') }}

),

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

passives as (

    select
        responses.response_id,
        responses.responded_at,
        responses.response_month,
        responses.response_quarter,
        cycles.has_next_response,
        coalesce(cycles.next_score >= 9, false) as is_converted,
        coalesce(cycles.next_score between 7 and 8, false) as is_still_passive,
        coalesce(cycles.next_score <= 6, false) as is_slipped,
        (
            not cycles.has_next_response
            and responses.latest_churned_at is not null
            and responses.latest_churned_at >= responses.responded_at
        ) as is_lost_to_churn
    from responses
    inner join cycles
        on responses.response_id = cycles.response_id
    where responses.is_passive

),

segmented_passives as (

    select
        segmented_responses.segment_type,
        segmented_responses.segment_value,
        passives.*
    from passives
    inner join segmented_responses
        on passives.response_id = segmented_responses.response_id

),

counted as (

    -- both grains in one pass (a grouping set per grain)
    select
        case when grouping(response_month) = 0 then 'month' else 'quarter' end as period_grain,
        coalesce(response_month, response_quarter) as period_start,
        segment_type,
        segment_value,
        count(*) as passives,
        count(*) filter (where has_next_response) as with_next_response,
        count(*) filter (where is_converted) as converted,
        count(*) filter (where is_still_passive) as still_passive,
        count(*) filter (where is_slipped) as slipped,
        count(*) filter (where not has_next_response and not is_lost_to_churn) as awaiting_next,
        count(*) filter (where is_lost_to_churn) as lost_to_churn
    from segmented_passives
    group by segment_type, segment_value, grouping sets ((response_month), (response_quarter))

),

final as (

    select
        period_grain::text as period_grain,
        period_start::date as period_start,
        segment_type::text as segment_type,
        segment_value::text as segment_value,
        passives::bigint as passives,
        with_next_response::bigint as with_next_response,
        converted::bigint as converted,
        still_passive::bigint as still_passive,
        slipped::bigint as slipped,
        awaiting_next::bigint as awaiting_next,
        lost_to_churn::bigint as lost_to_churn,
        {{ safe_ratio('converted', 'with_next_response') }} as conversion_rate,
        {{ safe_ratio('slipped', 'with_next_response') }} as slip_rate
    from counted

)

select * from final
