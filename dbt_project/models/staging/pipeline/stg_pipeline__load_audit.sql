with

source as (

    select * from {{ source('pipeline', 'load_audit') }}

),

renamed as (

    select
        -- ids
        audit_id,
        run_id as loaded_by_run_id,
        entity,

        -- the load
        interval_start,
        interval_end,
        connector,
        load_mode,
        coalesce(load_mode, '') != 'not_configured' as is_configured,
        source_location,
        rows_loaded,
        coalesce(rows_lost, 0) as rows_lost,
        loaded_at

    from source

)

select * from renamed
