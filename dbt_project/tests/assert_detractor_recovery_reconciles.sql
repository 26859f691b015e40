-- Every detractor is counted exactly once per period grain, and every period with a detractor has
-- all four follow-up buckets.
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

actual as (

    select
        period_grain,
        period_start,
        sum(detractors) as detractors,
        count(*) as buckets
    from detractor_recovery
    group by period_grain, period_start

)

select
    coalesce(expected.period_grain, actual.period_grain) as period_grain,
    coalesce(expected.period_start, actual.period_start) as period_start,
    expected.detractors as expected_detractors,
    actual.detractors as actual_detractors,
    actual.buckets
from expected
full outer join actual
    on
        expected.period_grain = actual.period_grain
        and expected.period_start = actual.period_start
where
    expected.detractors is distinct from actual.detractors
    or actual.buckets is distinct from 4
