-- One row per loaded survey response (grain: response_id) with its NPS category, respondent and UTC
-- periods: a function of the response row alone, so it is built incrementally. Each build re-reads the
-- responses loaded (or answered) within var incremental_lookback_days of the newest ones it holds, which
-- picks up late-arriving rows and reloads, and deletes rows whose response left raw (a full refresh
-- gives the same table).
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook=["{{ delete_rows_missing_from(ref('stg_survey__responses'), 'response_id') }}"],
        indexes=[
            {'columns': ['response_id'], 'unique': true},
            {'columns': ['responded_at']},
        ],
    )
}}

with

{% if is_incremental() %}
    high_water as (

        select
            max(loaded_at) - interval '{{ var("incremental_lookback_days") }} days' as loaded_after,
            max(responded_at) - interval '{{ var("incremental_lookback_days") }} days' as responded_after
        from {{ this }}

    ),
{% endif %}

responses as (

    select staged.*
    from {{ ref('stg_survey__responses') }} as staged
    {% if is_incremental() %}
        cross join high_water
        where
            staged.loaded_at >= high_water.loaded_after
            or staged.responded_at >= high_water.responded_after
    {% endif %}

),

categorised as (

    select
        -- ids
        response_id,
        survey_id,
        account_id,
        contact_id,
        coalesce(contact_id, account_id) as respondent_id,

        -- survey context
        survey_type,
        trigger_event,
        channel,
        language,

        -- answer
        score,
        {{ nps_category('score') }} as nps_category,
        score >= 9 as is_promoter,
        score between 7 and 8 as is_passive,
        score <= 6 as is_detractor,
        comment,
        coalesce(btrim(comment), '') <> '' as has_comment,

        -- time
        sent_at,
        coalesce(sent_at, responded_at) as surveyed_at,
        responded_at,
        (responded_at at time zone 'UTC')::date as response_date,
        {{ utc_period_start('month', 'responded_at') }} as response_month,
        {{ utc_period_start('quarter', 'responded_at') }} as response_quarter,

        -- lineage
        loaded_by_run_id,
        loaded_at

    from responses

)

select * from categorised
