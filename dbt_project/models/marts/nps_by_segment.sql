{{
    config(
        indexes=[
            {'columns': ['period_grain', 'period_start', 'segment_type', 'segment_value'], 'unique': true},
            {'columns': ['segment_type', 'segment_value', 'period_grain', 'period_start']},
        ],
    )
}}

with

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

responses_by_period as (

    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            response_{{ grain }} as period_start,
            segment_type,
            segment_value,
            is_promoter,
            is_passive,
            is_detractor,
            coalesce(arr, 0) as arr_weight
        from segmented_responses
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

counted as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        count(*) as responses,
        count(*) filter (where is_promoter) as promoters,
        count(*) filter (where is_passive) as passives,
        count(*) filter (where is_detractor) as detractors,
        sum(
            arr_weight * case when is_promoter then 1 when is_detractor then -1 else 0 end
        ) as arr_weighted_net,
        sum(arr_weight) as arr_weight_total
    from responses_by_period
    group by period_grain, period_start, segment_type, segment_value

),

scored as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        responses,
        promoters,
        passives,
        detractors,
        {{ nps_score('promoters', 'detractors', 'responses') }} as nps,
        {{ nps_margin_of_error('promoters', 'detractors', 'responses') }} as margin_of_error,
        (100 * arr_weighted_net / nullif(arr_weight_total, 0))::double precision as revenue_weighted_nps,
        case
            when period_grain = 'month' then (period_start - interval '1 month')::date
            else (period_start - interval '3 months')::date
        end as previous_period_start
    from counted

),

compared as (

    -- the same segment in the calendar period before (no row there: no comparison)
    select
        scored.*,
        previous.responses as previous_responses,
        previous.nps as previous_nps,
        scored.nps - previous.nps as nps_change,
        sqrt(power(scored.margin_of_error, 2) + power(previous.margin_of_error, 2)) as change_margin_of_error
    from scored
    left join scored as previous
        on
            scored.period_grain = previous.period_grain
            and scored.segment_type = previous.segment_type
            and scored.segment_value = previous.segment_value
            and scored.previous_period_start = previous.period_start

),

final as (

    select
        period_grain::text as period_grain,
        period_start::date as period_start,
        segment_type::text as segment_type,
        segment_value::text as segment_value,
        responses::bigint as responses,
        promoters::bigint as promoters,
        passives::bigint as passives,
        detractors::bigint as detractors,
        nps::double precision as nps,
        margin_of_error::double precision as margin_of_error,
        revenue_weighted_nps::double precision as revenue_weighted_nps,
        responses < {{ var('nps_min_n') }} as below_min_n,
        previous_period_start::date as previous_period_start,
        previous_responses::bigint as previous_responses,
        previous_nps::double precision as previous_nps,
        nps_change::double precision as nps_change,
        change_margin_of_error::double precision as change_margin_of_error,
        (abs(nps_change) > change_margin_of_error)::boolean as change_exceeds_margin_of_error
    from compared

)

select * from final
