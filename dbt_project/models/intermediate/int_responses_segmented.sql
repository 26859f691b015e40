-- One row per response and segment type: the segment value the response falls in
-- (null attributes -> 'unknown'; segment type 'overall' has the single value 'all').
{%- set segment_types = [
    'plan', 'arr_band', 'tenure_band', 'industry', 'region',
    'employee_band', 'usage_band', 'survey_type', 'trigger_event',
] %}

with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

segmented as (

    select
        response_id,
        'overall' as segment_type,
        'all' as segment_value,
        responded_at,
        response_month,
        response_quarter,
        score,
        nps_category,
        is_promoter,
        is_passive,
        is_detractor,
        arr
    from responses

    {% for segment_type in segment_types %}
        union all

        select
            response_id,
            '{{ segment_type }}' as segment_type,
            coalesce({{ segment_type }}::text, 'unknown') as segment_value,
            responded_at,
            response_month,
            response_quarter,
            score,
            nps_category,
            is_promoter,
            is_passive,
            is_detractor,
            arr
        from responses
    {% endfor %}

)

select * from segmented
