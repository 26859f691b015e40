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
        {{ nps_score('promoters', 'detractors', 'responses') }} as nps,
        {{ nps_margin_of_error('promoters', 'detractors', 'responses') }} as margin_of_error,
        (100 * arr_weighted_net / nullif(arr_weight_total, 0))::double precision as revenue_weighted_nps,
        responses < {{ var('nps_min_n') }} as below_min_n
    from counted

)

select * from final
