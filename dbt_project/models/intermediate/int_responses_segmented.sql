-- One row per response and segment type: the segment value the response falls in, as of the response
-- (null attributes -> 'unknown'; segment type 'overall' has the single value 'all').
{%- set segment_types = segment_types() %}

with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

segmented as (

    select
        response_id,
        account_id,
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

    {% for segment_type in segment_types if segment_type != 'overall' %}
        union all

        select
            response_id,
            account_id,
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
