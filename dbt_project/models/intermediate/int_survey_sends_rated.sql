-- One row per period (UTC month / quarter of sent_at) and segment (as of the send) with at least one
-- survey send known at as_of: the sends, how many of them were answered (int_survey_sends_answered)
-- and the response rate. nps_by_segment shows it beside the NPS of the same period and segment.
{%- set segment_types = segment_types() %}

with

sends as (

    select * from {{ ref('int_survey_sends_answered') }}

),

segmented as (

    -- a send's segment value: its account's attribute as of sent_at, its own survey_type and
    -- trigger_event (null -> 'unknown'), as int_responses_segmented does for a response
    select
        send_id,
        'overall' as segment_type,
        'all' as segment_value,
        send_month,
        send_quarter,
        is_answered
    from sends

    {% for segment_type in segment_types if segment_type != 'overall' %}
        union all

        select
            send_id,
            '{{ segment_type }}' as segment_type,
            coalesce({{ segment_type }}::text, 'unknown') as segment_value,
            send_month,
            send_quarter,
            is_answered
        from sends
    {% endfor %}

),

sends_by_period as (

    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            send_{{ grain }} as period_start,
            segment_type,
            segment_value,
            is_answered
        from segmented
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

rated as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        count(*) as sends,
        count(*) filter (where is_answered) as responses_to_sends,
        {{ safe_ratio('count(*) filter (where is_answered)', 'count(*)') }} as response_rate
    from sends_by_period
    group by period_grain, period_start, segment_type, segment_value

)

select * from rated
