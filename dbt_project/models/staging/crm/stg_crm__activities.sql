with

source as (

    select * from {{ source('crm', 'activities') }}

),

renamed as (

    select
        -- ids
        activity_id,
        account_id,
        contact_id,
        response_id,

        -- attributes
        activity_type,
        outcome,

        -- timestamps
        created_at,

        -- lineage
        _run_id as loaded_by_run_id,
        _loaded_at as loaded_at

    from source

)

select * from renamed
