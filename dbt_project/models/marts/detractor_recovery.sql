{{
    config(
        indexes=[
            {
                'columns': ['period_grain', 'period_start', 'segment_type', 'segment_value', 'follow_up_bucket'],
                'unique': true,
            },
            {'columns': ['segment_type', 'segment_value', 'period_grain', 'period_start']},
        ],
    )
}}

{%- set follow_up_buckets = ['within_24h', 'within_48h', 'later', 'never'] %}

with

detractors as (

    select * from {{ ref('int_detractors_followed_up') }}

),

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

segmented_detractors as (

    select
        segmented_responses.segment_type,
        segmented_responses.segment_value,
        detractors.response_month,
        detractors.response_quarter,
        detractors.follow_up_bucket,
        detractors.hours_to_first_follow_up,
        detractors.has_next_response,
        detractors.is_recovered,
        detractors.is_fully_recovered,
        detractors.is_lost_to_churn,
        detractors.is_24h_sla_met,
        detractors.is_48h_sla_met,
        detractors.is_24h_sla_judged,
        detractors.is_48h_sla_judged
    from detractors
    inner join segmented_responses
        on detractors.response_id = segmented_responses.response_id

),

detractors_by_period as (

    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            response_{{ grain }} as period_start,
            segment_type,
            segment_value,
            follow_up_bucket,
            hours_to_first_follow_up,
            has_next_response,
            is_recovered,
            is_fully_recovered,
            is_lost_to_churn,
            is_24h_sla_met,
            is_48h_sla_met,
            is_24h_sla_judged,
            is_48h_sla_judged
        from segmented_detractors
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

aggregated as (

    -- one sort for both levels: per bucket, and per period and segment over all buckets (the
    -- rollup's row, follow_up_bucket null): SLA attainment and the median over all buckets
    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        follow_up_bucket,
        grouping(follow_up_bucket) = 1 as is_all_buckets,
        count(*) as detractors,
        count(*) filter (where has_next_response) as with_next_response,
        count(*) filter (where is_recovered) as recovered,
        count(*) filter (where is_fully_recovered) as fully_recovered,
        count(*) filter (where not has_next_response and not is_lost_to_churn) as awaiting_next,
        count(*) filter (where is_lost_to_churn) as lost_to_churn,
        count(*) filter (where is_24h_sla_met) as sla_24h_met,
        count(*) filter (where is_24h_sla_judged) as sla_24h_judged,
        count(*) filter (where is_48h_sla_met) as sla_48h_met,
        count(*) filter (where is_48h_sla_judged) as sla_48h_judged,
        percentile_cont(0.5) within group (order by hours_to_first_follow_up) as median_hours_to_first_follow_up
    from detractors_by_period
    group by period_grain, period_start, segment_type, segment_value, rollup (follow_up_bucket)

),

period_segments as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        sla_24h_met,
        sla_24h_judged,
        sla_48h_met,
        sla_48h_judged,
        median_hours_to_first_follow_up as median_hours_all_buckets
    from aggregated
    where is_all_buckets

),

follow_up_buckets as (

    -- the four buckets; without CRM activities (not configured) the one bucket no_follow_up_data
    select buckets.follow_up_bucket
    from (
        values
        {% for bucket in follow_up_buckets + ['no_follow_up_data'] -%}
            ('{{ bucket }}'){{ "," if not loop.last }}
        {% endfor %}
    ) as buckets (follow_up_bucket)
    inner join sources_audited
        on
            sources_audited.entity = 'activities'
            and (buckets.follow_up_bucket = 'no_follow_up_data') = not sources_audited.is_available

),

spine as (

    select
        period_segments.*,
        follow_up_buckets.follow_up_bucket
    from period_segments
    cross join follow_up_buckets

),

counted as (

    select * from aggregated
    where not is_all_buckets

),

final as (

    select
        spine.period_grain::text as period_grain,
        spine.period_start::date as period_start,
        spine.segment_type::text as segment_type,
        spine.segment_value::text as segment_value,
        spine.follow_up_bucket::text as follow_up_bucket,
        coalesce(counted.detractors, 0)::bigint as detractors,
        coalesce(counted.with_next_response, 0)::bigint as with_next_response,
        coalesce(counted.recovered, 0)::bigint as recovered,
        coalesce(counted.fully_recovered, 0)::bigint as fully_recovered,
        coalesce(counted.awaiting_next, 0)::bigint as awaiting_next,
        coalesce(counted.lost_to_churn, 0)::bigint as lost_to_churn,
        {{ safe_ratio('counted.recovered', 'counted.with_next_response') }} as recovery_rate,
        {{ safe_ratio('counted.fully_recovered', 'counted.with_next_response') }} as full_recovery_rate,
        counted.median_hours_to_first_follow_up::double precision as median_hours_to_first_follow_up,
        spine.median_hours_all_buckets::double precision as segment_median_hours_to_first_follow_up,
        {{ safe_ratio('spine.sla_24h_met', 'spine.sla_24h_judged') }} as sla_24h_attainment,
        {{ safe_ratio('spine.sla_48h_met', 'spine.sla_48h_judged') }} as sla_48h_attainment
    from spine
    left join counted
        on
            spine.period_grain = counted.period_grain
            and spine.period_start = counted.period_start
            and spine.segment_type = counted.segment_type
            and spine.segment_value = counted.segment_value
            and spine.follow_up_bucket = counted.follow_up_bucket

)

select * from final
