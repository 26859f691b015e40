-- One row: the reference time of this build. Every mart describes the data known before it
-- (timestamps < as_of): var as_of when given, else the as_of the pipeline recorded for the build it
-- is running into this marts schema (ops.candidate_build, written before dbt starts: a value read at
-- run time, so the vars stay the same night after night and dbt can parse partially), else the UTC
-- midnight after the latest response. Never now(), so a build is reproducible.
{%- set as_of_value = as_of_literal() %}

with

responses as (

    select * from {{ ref('stg_survey__responses') }}

),

candidate_builds as (

    select * from {{ source('ops', 'candidate_build') }}

),

pipeline_build as (  -- noqa: ST03

    -- the pipeline's build in progress into this marts schema (unused when var as_of is given)
    select as_of
    from candidate_builds
    where
        candidate_schema = '{{ var("marts_schema", "marts") }}'
        and finished_at is null
        and as_of is not null

),

resolved as (

    select
        {% if as_of_value is not none -%}
            {{ as_of_value }} as as_of,
            'var' as as_of_source,
        {%- else -%}
            coalesce(
                (select pipeline_build.as_of from pipeline_build),
                date_trunc('day', max(responded_at), 'UTC') + interval '1 day'
            ) as as_of,
            case
                when exists (select 1 from pipeline_build) then 'pipeline' else 'latest_response'
            end as as_of_source,
        {%- endif %}
        max(responded_at) as latest_responded_at
    from responses

)

select * from resolved
