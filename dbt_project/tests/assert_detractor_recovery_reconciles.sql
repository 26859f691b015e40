-- Every detractor is counted exactly once per period grain and segment type, and every period and
-- segment with a detractor has all four follow-up buckets (or, without CRM activities, the one bucket
-- no_follow_up_data).
with

detractor_recovery as (

    select * from {{ ref('detractor_recovery') }}

),

detractors as (

    select * from {{ ref('int_detractors_followed_up') }}

),

expected as (

    select 'month' as period_grain, response_month as period_start, count(*) as detractors
    from detractors
    group by response_month
    union all
    select 'quarter' as period_grain, response_quarter as period_start, count(*) as detractors
    from detractors
    group by response_quarter

),

per_segment_type as (

    select
        period_grain,
        period_start,
        segment_type,
        sum(detractors) as detractors
    from detractor_recovery
    group by period_grain, period_start, segment_type

),

bucket_counts as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        count(*) as buckets,
        bool_and(follow_up_bucket = 'no_follow_up_data') as is_without_follow_up_data
    from detractor_recovery
    group by period_grain, period_start, segment_type, segment_value

),

segment_type_counts as (

    select count(distinct segment_type) as segment_types
    from detractor_recovery

)

select
    expected.period_grain,
    expected.period_start,
    per_segment_type.segment_type,
    expected.detractors as expected_detractors,
    per_segment_type.detractors as actual_detractors,
    null::bigint as buckets
from expected
left join per_segment_type
    on
        expected.period_grain = per_segment_type.period_grain
        and expected.period_start = per_segment_type.period_start
where per_segment_type.detractors is distinct from expected.detractors
union all
select
    period_grain,
    period_start,
    segment_type,
    null as expected_detractors,
    null as actual_detractors,
    buckets
from bucket_counts
where buckets <> case when is_without_follow_up_data then 1 else 4 end
union all
select
    null as period_grain,
    null as period_start,
    null as segment_type,
    {{ segment_types() | length }} as expected_detractors,
    segment_types as actual_detractors,
    null as buckets
from segment_type_counts
where segment_types not in (0, {{ segment_types() | length }})
