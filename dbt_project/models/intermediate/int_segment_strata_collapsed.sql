-- One row per segment-period of nps_by_segment and post-stratification stratum, after collapsing the
-- small ones (grain: period_grain, period_start, segment_type, segment_value, stratum_level,
-- stratum_key). Strata are the combinations of the account attributes of var representative_strata
-- (default plan x region; null -> 'unknown'): a respondent's as of the response, an active account's
-- as of the period end (int_active_accounts_snapshotted). The population of a segment whose type is
-- an account attribute is the active accounts IN the segment; of any other segment type (overall,
-- usage_band, survey_type, trigger_event), all active accounts. Responses whose account has no CRM
-- version are left out. Collapsing (var representative_min_stratum_responses, default 5): a stratum
-- with fewer respondents is merged with the other small strata that share all but its last attribute,
-- then all but its last two, ...; what is still small at the first attribute is merged into one
-- 'other' stratum, kept whatever its size (docs/contracts.md section 4).
--
-- Incremental by period (docs/incremental.md): each period carries a fingerprint of everything its
-- rows are computed from (its respondents' scores and attributes, its active accounts at the period
-- end, the settings and this model's SQL); a build recomputes the periods whose fingerprint changed
-- and deletes those with no response left.
{%- set strata = representative_strata() %}
{%- set levels = strata | length %}
{%- set min_n = var('representative_min_stratum_responses') %}
{%- set account_attributes = account_attribute_columns() %}
{%- set segment_keys = 'period_grain, period_start, segment_type, segment_value' %}
{%- set respondent_columns = (segment_types() | reject('equalto', 'overall') | list) + strata %}
{%- set population_columns = (segment_types() | select('in', account_attributes) | list) + strata %}
{{
    config(
        materialized='incremental',
        unique_key=['period_grain', 'period_start'],
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=[
            "{{ delete_periods_missing_from(ref('int_responses_enriched'), 'response') }}",
        ],
        indexes=[
            {'columns': ['period_grain', 'period_start']},
        ],
    )
}}
{%- set incremental = incremental_with('period_fingerprint') %}

with

account_attributes as (

    -- the segment types weighted to the active accounts in the segment
    {% for column in account_attributes %}
        select '{{ column }}' as segment_type
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

enriched_responses as (

    select * from {{ ref('int_responses_enriched') }}

),

active_accounts as (

    select * from {{ ref('int_active_accounts_snapshotted') }}

),

respondent_prints as (

    -- per period: its responses and a fingerprint of what each one brings (score, segments, strata)
    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            response_{{ grain }} as period_start,
            count(*) as responses,
            {{ row_fingerprint_sum(['response_id', 'score', 'account_version_updated_at'] + respondent_columns) }}
                as respondents_print
        from enriched_responses
        group by response_{{ grain }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

population_prints as (

    -- per period: its active accounts and a fingerprint of their weight, segments and strata
    select
        period_grain,
        period_start,
        count(*) as active_accounts,
        {{ row_fingerprint_sum(['account_id', 'arr'] + population_columns) }} as population_print
    from active_accounts
    group by period_grain, period_start

),

period_prints as (

    select
        respondent_prints.period_grain,
        respondent_prints.period_start,
        md5(concat_ws(
            '|',
            {{ settings_fingerprint([min_n, strata, segment_types()], "''") }},
            respondent_prints.responses,
            respondent_prints.respondents_print,
            population_prints.active_accounts,
            population_prints.population_print
        )) as period_fingerprint
    from respondent_prints
    left join population_prints
        on
            respondent_prints.period_grain = population_prints.period_grain
            and respondent_prints.period_start = population_prints.period_start

),

{{ incremental_changed_periods(incremental) }}

changed_active_accounts as (

    select active_accounts.*
    from active_accounts
    inner join changed_periods
        on
            active_accounts.period_grain = changed_periods.period_grain
            and active_accounts.period_start = changed_periods.period_start

),

segments as (

    -- every segment-period with a response (a row of nps_by_segment) and the population it is weighted
    -- to: the active accounts in the segment for an account attribute, else all ('overall', 'all')
    {% for grain in ['month', 'quarter'] %}
        select distinct
            '{{ grain }}' as period_grain,
            segmented_responses.response_{{ grain }} as period_start,
            segmented_responses.segment_type,
            segmented_responses.segment_value,
            case
                when account_attributes.segment_type is not null then 'segment_accounts' else 'all_accounts'
            end as population_basis,
            coalesce(account_attributes.segment_type, 'overall') as population_segment_type,
            case
                when account_attributes.segment_type is not null then segmented_responses.segment_value else 'all'
            end as population_segment_value
        from segmented_responses
        inner join changed_periods
            on
                changed_periods.period_grain = '{{ grain }}'
                and segmented_responses.response_{{ grain }} = changed_periods.period_start
        left join account_attributes
            on segmented_responses.segment_type = account_attributes.segment_type
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

respondent_cells as (

    -- responses with a known account, by segment-period and stratum (attributes as of the response)
    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            segmented_responses.response_{{ grain }} as period_start,
            segmented_responses.segment_type,
            segmented_responses.segment_value,
            {{ stratum_key('enriched_responses') }} as stratum_key,
            count(*) as responses,
            count(*) filter (where segmented_responses.is_promoter) as promoters,
            count(*) filter (where segmented_responses.is_detractor) as detractors,
            0::bigint as population_accounts,
            0::numeric as population_arr
        from segmented_responses
        inner join changed_periods
            on
                changed_periods.period_grain = '{{ grain }}'
                and segmented_responses.response_{{ grain }} = changed_periods.period_start
        inner join enriched_responses
            on segmented_responses.response_id = enriched_responses.response_id
        where enriched_responses.account_version_updated_at is not null
        group by
            segmented_responses.response_{{ grain }},
            segmented_responses.segment_type,
            segmented_responses.segment_value,
            stratum_key
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

population_cells as (

    -- active accounts at the period end by stratum: all of them ('overall', 'all'), and per value of
    -- each segment type that is an account attribute
    select
        period_grain,
        period_start,
        'overall' as population_segment_type,
        'all' as population_segment_value,
        {{ stratum_key('changed_active_accounts') }} as stratum_key,
        count(*) as population_accounts,
        coalesce(sum(arr), 0) as population_arr
    from changed_active_accounts
    group by period_grain, period_start, stratum_key

    {% for segment_type in segment_types() if segment_type in account_attributes %}
        union all

        select
            period_grain,
            period_start,
            '{{ segment_type }}' as population_segment_type,
            coalesce({{ segment_type }}::text, 'unknown') as population_segment_value,
            {{ stratum_key('changed_active_accounts') }} as stratum_key,
            count(*) as population_accounts,
            coalesce(sum(arr), 0) as population_arr
        from changed_active_accounts
        group by period_grain, period_start, population_segment_value, stratum_key
    {% endfor %}

),

segment_population_cells as (

    select
        segments.period_grain,
        segments.period_start,
        segments.segment_type,
        segments.segment_value,
        population_cells.stratum_key,
        0::bigint as responses,
        0::bigint as promoters,
        0::bigint as detractors,
        population_cells.population_accounts,
        population_cells.population_arr
    from segments
    inner join population_cells
        on
            segments.period_grain = population_cells.period_grain
            and segments.period_start = population_cells.period_start
            and segments.population_segment_type = population_cells.population_segment_type
            and segments.population_segment_value = population_cells.population_segment_value

),

stratum_cells as (

    select * from respondent_cells
    union all
    select * from segment_population_cells

),

cells as (

    -- every stratum with a respondent or an active account, per segment-period
    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        stratum_key,
        sum(responses)::bigint as responses,
        sum(promoters)::bigint as promoters,
        sum(detractors)::bigint as detractors,
        sum(population_accounts)::bigint as population_accounts,
        sum(population_arr) as population_arr
    from stratum_cells
    group by period_grain, period_start, segment_type, segment_value, stratum_key

),

collapsed_{{ levels }} as (

    select
        *,
        responses < {{ min_n }} as is_small_{{ levels }}
    from cells

),

{% for level in range(levels - 1, 0, -1) %}
    collapsed_{{ level }} as (

        -- still small: the small strata sharing the first {{ level }} attribute(s) have too few respondents together
        select
            *,
            is_small_{{ level + 1 }} and sum(responses) filter (where is_small_{{ level + 1 }}) over (
                partition by {{ segment_keys }}, stratum_key[1:{{ level }}]
            ) < {{ min_n }} as is_small_{{ level }}
        from collapsed_{{ level + 1 }}

    ),
{% endfor %}

assigned as (

    select
        *,
        case
            {% for level in range(levels, 0, -1) %}
                when not is_small_{{ level }} then {{ level }}
            {% endfor %}
            else 0
        end as stratum_level
    from collapsed_1

),

merged as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        stratum_level,
        stratum_key[1:stratum_level] as stratum_key,
        count(*) as fine_strata,
        sum(responses)::bigint as responses,
        sum(promoters)::bigint as promoters,
        sum(detractors)::bigint as detractors,
        sum(population_accounts)::bigint as population_accounts,
        sum(population_arr) as population_arr,
        array_fill('*'::text, array[{{ levels }} - stratum_level]) as collapsed_over
    from assigned
    group by period_grain, period_start, segment_type, segment_value, stratum_level, stratum_key[1:stratum_level]

),

final as (

    select
        merged.period_grain,
        merged.period_start,
        merged.segment_type,
        merged.segment_value,
        segments.population_basis,
        merged.stratum_level,
        merged.stratum_key::text as stratum_key,
        case
            when merged.stratum_level = 0 then 'other'
            else array_to_string(merged.stratum_key || merged.collapsed_over, ' x ')
        end as stratum_label,
        merged.fine_strata,
        merged.responses,
        merged.promoters,
        merged.detractors,
        merged.population_accounts,
        merged.population_arr::numeric(18, 2) as population_arr,
        period_prints.period_fingerprint
    from merged
    inner join period_prints
        on
            merged.period_grain = period_prints.period_grain
            and merged.period_start = period_prints.period_start
    inner join segments
        on
            merged.period_grain = segments.period_grain
            and merged.period_start = segments.period_start
            and merged.segment_type = segments.segment_type
            and merged.segment_value = segments.segment_value

)

select * from final
