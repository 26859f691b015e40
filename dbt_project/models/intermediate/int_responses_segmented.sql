-- One row per response and segment type: the segment value the response falls in, as of the response
-- (null attributes -> 'unknown'; segment type 'overall' has the single value 'all').
-- Incremental: a build re-segments the responses int_responses_enriched recomputed since this model's
-- previous build (its built_at, kept here as enriched_at) and deletes those that left it.
{%- set segment_types = segment_types() %}
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=["{{ delete_rows_missing_from(ref('int_responses_enriched'), 'response_id') }}"],
        indexes=[
            {'columns': ['response_id', 'segment_type'], 'unique': true},
            {'columns': ['enriched_at']},
        ],
    )
}}
{%- set incremental = incremental_with('enriched_at') %}

with

responses as (

    select * from {{ ref('int_responses_enriched') }}
    {% if incremental %}
        -- rows int_responses_enriched recomputed since this model's previous build
        where built_at > (select coalesce(max(previous.enriched_at), '-infinity') from {{ this }} as previous)
    {% endif %}

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
        arr,
        built_at as enriched_at
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
            arr,
            built_at as enriched_at
        from responses
    {% endfor %}

)

select * from segmented
