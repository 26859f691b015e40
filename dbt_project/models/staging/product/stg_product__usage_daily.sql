with

source as (

    select * from {{ source('product', 'usage_daily') }}

),

renamed as (

    select
        -- ids
        account_id,
        usage_date::date as usage_date,

        -- measures
        active_users::integer as active_users,
        sessions::integer as sessions,
        core_events::integer as core_events,

        -- lineage
        _run_id as loaded_by_run_id,
        _loaded_at as loaded_at

    from source

)

select * from renamed
