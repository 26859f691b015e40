-- One row per period (UTC month / quarter of sent_at) and segment (as of the send) with at least one
-- survey send known at as_of: the sends, how many of them were answered (int_survey_sends_answered)
-- and the response rate. nps_by_segment shows it beside the NPS of the same period and segment.
--
-- Incremental by period (docs/incremental.md), as int_segment_strata_collapsed: each period carries a
-- fingerprint of its sends (which ones, answered or not, their segments), the segment types and this
-- model's SQL; a build recomputes the periods whose fingerprint changed and deletes those with no send.
{%- set segment_types = segment_types() %}
{%- set segment_columns = segment_types | reject('equalto', 'overall') | list %}
{{
    config(
        materialized='incremental',
        unique_key=['period_grain', 'period_start'],
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=["{{ delete_periods_missing_from(ref('int_survey_sends_answered'), 'send') }}"],
        indexes=[
            {'columns': ['period_grain', 'period_start', 'segment_type', 'segment_value'], 'unique': true},
        ],
    )
}}
{%- set incremental = incremental_with('period_fingerprint') %}

with

-- not materialized: read by the fingerprints and by the changed periods' sends
all_sends as not materialized (

    select * from {{ ref('int_survey_sends_answered') }}

),

period_prints as (

    -- per period: a fingerprint of its sends and what each one brings (answered, segments)
    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            send_{{ grain }} as period_start,
            md5(concat_ws(
                '|',
                {{ settings_fingerprint([segment_types], "''") }},
                count(*),
                {{ row_fingerprint_sum(['send_id', 'is_answered'] + segment_columns) }}
            )) as period_fingerprint
        from all_sends
        group by send_{{ grain }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

{{ incremental_changed_periods(incremental) }}

sends as (

    -- the sends of the quarters this build computes: a changed month is in a changed quarter (the
    -- quarter holds its sends), so these are the sends of every changed period
    select all_sends.*
    from all_sends
    inner join changed_periods
        on
            changed_periods.period_grain = 'quarter'
            and all_sends.send_quarter = changed_periods.period_start

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
            segmented.send_{{ grain }} as period_start,
            segmented.segment_type,
            segmented.segment_value,
            segmented.is_answered
        from segmented
        inner join changed_periods
            on
                changed_periods.period_grain = '{{ grain }}'
                and segmented.send_{{ grain }} = changed_periods.period_start
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

rated as (

    select
        sends_by_period.period_grain,
        sends_by_period.period_start,
        sends_by_period.segment_type,
        sends_by_period.segment_value,
        count(*) as sends,
        count(*) filter (where sends_by_period.is_answered) as responses_to_sends,
        {{ safe_ratio('count(*) filter (where sends_by_period.is_answered)', 'count(*)') }} as response_rate,
        period_prints.period_fingerprint
    from sends_by_period
    inner join period_prints
        on
            sends_by_period.period_grain = period_prints.period_grain
            and sends_by_period.period_start = period_prints.period_start
    group by
        sends_by_period.period_grain,
        sends_by_period.period_start,
        sends_by_period.segment_type,
        sends_by_period.segment_value,
        period_prints.period_fingerprint

)

select * from rated
