-- One row: the reference time of this build. Every mart describes the data known before it
-- (timestamps < as_of): var as_of when the pipeline passes it (its data interval end), else the UTC
-- midnight after the latest response. Never now(), so a build is reproducible.
{%- set as_of_value = as_of_literal() %}

with

responses as (

    select * from {{ ref('stg_survey__responses') }}

),

resolved as (

    select
        {% if as_of_value is not none -%}
            {{ as_of_value }} as as_of,
            'var' as as_of_source,
        {%- else -%}
            date_trunc('day', max(responded_at), 'UTC') + interval '1 day' as as_of,
            'latest_response' as as_of_source,
        {%- endif %}
        max(responded_at) as latest_responded_at
    from responses

)

select * from resolved
