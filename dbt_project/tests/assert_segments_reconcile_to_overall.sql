-- Every segment type partitions the responses: per period, each segment type's responses add up to
-- the overall row, and the overall row equals the number of responses in the period.
with

nps_by_segment as (

    select * from {{ ref('nps_by_segment') }}

),

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

responses_per_period as (

    select 'month' as period_grain, response_month as period_start, count(*) as responses
    from responses
    group by response_month
    union all
    select 'quarter' as period_grain, response_quarter as period_start, count(*) as responses
    from responses
    group by response_quarter

),

segment_totals as (

    select
        period_grain,
        period_start,
        segment_type,
        sum(responses) as responses
    from nps_by_segment
    group by period_grain, period_start, segment_type

)

select
    responses_per_period.period_grain,
    responses_per_period.period_start,
    segment_totals.segment_type,
    responses_per_period.responses as expected_responses,
    segment_totals.responses as segment_responses
from responses_per_period
left join segment_totals
    on
        responses_per_period.period_grain = segment_totals.period_grain
        and responses_per_period.period_start = segment_totals.period_start
where
    segment_totals.responses is distinct from responses_per_period.responses
    or (select count(distinct segment_type) from segment_totals) not in (0, {{ segment_types() | length }})
