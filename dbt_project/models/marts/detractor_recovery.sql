{{
    config(
        indexes=[
            {'columns': ['period_grain', 'period_start', 'follow_up_bucket'], 'unique': true},
        ],
    )
}}

{%- set follow_up_buckets = ['within_24h', 'within_48h', 'later', 'never'] %}

with

detractors as (

    select * from {{ ref('int_detractors_followed_up') }}

),

detractors_by_period as (

    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            response_{{ grain }} as period_start,
            follow_up_bucket,
            has_next_response,
            is_recovered,
            is_fully_recovered,
            is_lost_to_churn
        from detractors
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

periods as (

    select distinct
        period_grain,
        period_start
    from detractors_by_period

),

follow_up_buckets as (

    select follow_up_bucket
    from (
        values
        {% for bucket in follow_up_buckets -%}
            ('{{ bucket }}'){{ "," if not loop.last }}
        {% endfor %}
    ) as buckets (follow_up_bucket)

),

period_bucket_spine as (

    select
        periods.period_grain,
        periods.period_start,
        follow_up_buckets.follow_up_bucket
    from periods
    cross join follow_up_buckets

),

counted as (

    select
        period_grain,
        period_start,
        follow_up_bucket,
        count(*) as detractors,
        count(*) filter (where has_next_response) as with_next_response,
        count(*) filter (where is_recovered) as recovered,
        count(*) filter (where is_fully_recovered) as fully_recovered,
        count(*) filter (where not has_next_response and not is_lost_to_churn) as awaiting_next,
        count(*) filter (where is_lost_to_churn) as lost_to_churn
    from detractors_by_period
    group by period_grain, period_start, follow_up_bucket

),

final as (

    select
        period_bucket_spine.period_grain::text as period_grain,
        period_bucket_spine.period_start::date as period_start,
        period_bucket_spine.follow_up_bucket::text as follow_up_bucket,
        coalesce(counted.detractors, 0)::bigint as detractors,
        coalesce(counted.with_next_response, 0)::bigint as with_next_response,
        coalesce(counted.recovered, 0)::bigint as recovered,
        coalesce(counted.fully_recovered, 0)::bigint as fully_recovered,
        coalesce(counted.awaiting_next, 0)::bigint as awaiting_next,
        coalesce(counted.lost_to_churn, 0)::bigint as lost_to_churn,
        {{ safe_ratio('counted.recovered', 'counted.with_next_response') }} as recovery_rate
    from period_bucket_spine
    left join counted
        on
            period_bucket_spine.period_grain = counted.period_grain
            and period_bucket_spine.period_start = counted.period_start
            and period_bucket_spine.follow_up_bucket = counted.follow_up_bucket

)

select * from final
