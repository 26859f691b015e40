-- PII (email, full_name) stays in raw: nothing downstream needs it.
with

source as (

    select * from {{ source('crm', 'contacts') }}

),

renamed as (

    select
        -- ids
        contact_id,
        account_id,

        -- attributes
        role as contact_role,

        -- timestamps
        created_at,
        updated_at,

        -- lineage
        _run_id as loaded_by_run_id,
        _loaded_at as loaded_at

    from source

)

select * from renamed
