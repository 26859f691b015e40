{#
    Metric building blocks shared by the models (docs/contracts.md section 4).
    Every boundary comes from a dbt var so the SQL and the docs cannot drift apart.
#}

{% macro nps_category(score) -%}
    case
        when {{ score }} >= 9 then 'promoter'
        when {{ score }} >= 7 then 'passive'
        when {{ score }} >= 0 then 'detractor'
    end
{%- endmacro %}


{% macro arr_band(arr) -%}
    {%- set bounds = var('arr_band_boundaries') -%}
    case
        when {{ arr }} is null then 'unknown'
        when {{ arr }} < {{ bounds[0] }} then 'under_10k'
        when {{ arr }} < {{ bounds[1] }} then '10k_50k'
        when {{ arr }} < {{ bounds[2] }} then '50k_250k'
        else '250k_plus'
    end
{%- endmacro %}


{% macro tenure_band(tenure_days) -%}
    {%- set bounds = var('tenure_band_days') -%}
    case
        when {{ tenure_days }} is null then 'unknown'
        when {{ tenure_days }} < {{ bounds[0] }} then '0_6m'
        when {{ tenure_days }} < {{ bounds[1] }} then '6_12m'
        when {{ tenure_days }} < {{ bounds[2] }} then '1_2y'
        else '2y_plus'
    end
{%- endmacro %}


{% macro usage_band(sessions_per_day) -%}
    {%- set bounds = var('usage_band_boundaries') -%}
    case
        when {{ sessions_per_day }} is null then 'unknown'
        when {{ sessions_per_day }} <= 0 then 'none'
        when {{ sessions_per_day }} < {{ bounds[0] }} then 'low'
        when {{ sessions_per_day }} < {{ bounds[1] }} then 'medium'
        else 'high'
    end
{%- endmacro %}


{% macro follow_up_bucket(hours) -%}
    case
        when {{ hours }} is null then 'never'
        when {{ hours }} <= {{ var('follow_up_fast_hours') }} then 'within_24h'
        when {{ hours }} <= {{ var('follow_up_slow_hours') }} then 'within_48h'
        else 'later'
    end
{%- endmacro %}


{#- UTC calendar period of a timestamptz, as a date. -#}
{% macro utc_period_start(grain, ts) -%}
    date_trunc('{{ grain }}', {{ ts }} at time zone 'UTC')::date
{%- endmacro %}


{#- NPS, margin of error and ratios in double precision, never rounded. -#}
{% macro nps_score(promoters, detractors, responses) -%}
    (100 * ({{ promoters }} - {{ detractors }})::double precision / nullif({{ responses }}, 0))
{%- endmacro %}


{% macro nps_margin_of_error(promoters, detractors, responses) -%}
    (
        1.96 * 100 * sqrt(
            greatest(
                (
                    {{ promoters }}::double precision / {{ responses }}
                    + {{ detractors }}::double precision / {{ responses }}
                    - power(
                        {{ promoters }}::double precision / {{ responses }}
                        - {{ detractors }}::double precision / {{ responses }},
                        2
                    )
                ) / {{ responses }},
                0
            )
        )
    )::double precision
{%- endmacro %}


{% macro safe_ratio(numerator, denominator) -%}
    ({{ numerator }}::double precision / nullif({{ denominator }}, 0))
{%- endmacro %}


{#-
    The build's reference time as a timestamptz literal, from var `as_of` (ISO 8601; without an
    offset it is taken as UTC), or none when the var is unset. Parsed here so that the session
    time zone of the warehouse connection can never shift it.
-#}
{% macro as_of_literal() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(value | string | trim) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return("'" ~ parsed.astimezone(modules.pytz.utc).isoformat() ~ "'::timestamptz") }}
{%- endmacro %}


{#- Hours between two timestamptz, double precision. -#}
{% macro hours_between(start_ts, end_ts) -%}
    (extract(epoch from ({{ end_ts }}) - ({{ start_ts }}))::double precision / 3600)
{%- endmacro %}


{#- Category rank for trends: detractor 0 < passive 1 < promoter 2. -#}
{% macro nps_category_rank(category) -%}
    case {{ category }} when 'detractor' then 0 when 'passive' then 1 when 'promoter' then 2 end
{%- endmacro %}


{#-
    Rows of an incremental model whose key is gone from its source (deleted or re-windowed by a
    reload) are deleted after each build, so the incremental history keeps equal to a full refresh.
    Used as a post_hook; a no-op on the first build. source_relation: a relation or a parenthesised
    subquery.
-#}
{% macro delete_rows_missing_from(source_relation, key) -%}
    delete from {{ this }} as target
    where not exists (
        select 1 from {{ source_relation }} as source_rows
        where source_rows.{{ key }} = target.{{ key }}
    )
{%- endmacro %}


{#- The segment types of nps_by_segment / detractor_recovery / nps_outcomes, 'overall' first: var
    segment_types (dbt_project.yml). Each one but 'overall' is a column of int_responses_enriched (the
    value as of the response). -#}
{% macro segment_types() -%}
    {{ return(var('segment_types')) }}
{%- endmacro %}


{#- Var outcome_horizons_days (default [90, 180]): the days after a response at which nps_outcomes
    reads churn and expansion; a list of distinct whole days, at least 1 (a single number is a list
    of one). -#}
{% macro outcome_horizons() -%}
    {%- set horizons = var('outcome_horizons_days') -%}
    {%- if horizons is number -%}
        {%- set horizons = [horizons] -%}
    {%- endif -%}
    {%- if execute -%}
        {%- set message = "var outcome_horizons_days must be a list of distinct whole numbers of days >= 1, not "
                          ~ horizons -%}
        {%- set is_list = horizons is not string and horizons is iterable -%}
        {%- if not is_list or horizons | length == 0 or horizons | unique | list | length != horizons | length -%}
            {{ exceptions.raise_compiler_error(message) }}
        {%- endif -%}
        {%- for days in horizons if not (days is integer and days >= 1) -%}
            {{ exceptions.raise_compiler_error(message) }}
        {%- endfor -%}
    {%- endif -%}
    {{ return(horizons) }}
{%- endmacro %}


{#- Var trajectory_last_scores (default 3): how many of an account's latest scores
    account_nps_trajectory shows; a whole number >= 1. -#}
{% macro trajectory_last_scores() -%}
    {%- set n = var('trajectory_last_scores') -%}
    {%- if execute and not (n is integer and n >= 1) -%}
        {{ exceptions.raise_compiler_error("var trajectory_last_scores must be a whole number >= 1, not " ~ n) }}
    {%- endif -%}
    {{ return(n) }}
{%- endmacro %}
