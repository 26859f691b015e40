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
        when coalesce({{ sessions_per_day }}, 0) <= 0 then 'none'
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
