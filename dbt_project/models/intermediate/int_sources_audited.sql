-- One row per source entity: whether its latest load had a configured source, whether the warehouse
-- holds any of its rows, and so whether the marts can use it (is_available). An optional entity (CRM,
-- product usage, survey sends) that sources.yml leaves out and that was never loaded is not available: the marts
-- that need it degrade as seeds/source_needs.csv says. With no load recorded at all (dbt run by
-- hand on loaded tables), an entity counts as configured.
with

load_audit as (

    select * from {{ ref('stg_pipeline__load_audit') }}

),

responses as (

    select * from {{ ref('stg_survey__responses') }}

),

accounts as (

    select * from {{ ref('stg_crm__account_versions') }}

),

contacts as (

    select * from {{ ref('stg_crm__contacts') }}

),

activities as (

    select * from {{ ref('stg_crm__activities') }}

),

usage_daily as (

    select * from {{ ref('stg_product__usage_daily') }}

),

survey_sends as (

    select * from {{ ref('stg_survey__sends') }}

),

entity_rows as (

    select
        'survey_responses' as entity,
        exists(select 1 from responses) as has_rows

    union all

    select
        'accounts' as entity,
        exists(select 1 from accounts) as has_rows

    union all

    select
        'contacts' as entity,
        exists(select 1 from contacts) as has_rows

    union all

    select
        'activities' as entity,
        exists(select 1 from activities) as has_rows

    union all

    select
        'usage_daily' as entity,
        exists(select 1 from usage_daily) as has_rows

    union all

    select
        'survey_sends' as entity,
        exists(select 1 from survey_sends) as has_rows

),

latest_loads as (

    select distinct on (entity)
        entity,
        is_configured,
        source_location,
        loaded_at
    from load_audit
    order by entity asc, audit_id desc

),

final as (

    select
        entity_rows.entity,
        coalesce(latest_loads.is_configured, true) as is_configured,
        entity_rows.has_rows,
        entity_rows.has_rows or coalesce(latest_loads.is_configured, true) as is_available,
        latest_loads.source_location as latest_source_location,
        latest_loads.loaded_at as latest_loaded_at
    from entity_rows
    left join latest_loads
        on entity_rows.entity = latest_loads.entity

)

select * from final
