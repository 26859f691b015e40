with

source as (

    select * from {{ source('crm', 'accounts') }}

),

renamed as (

    select
        -- ids
        account_id,

        -- attributes (valid from updated_at until the next version)
        name as account_name,
        industry,
        region,
        employee_band,
        plan,
        arr::numeric(14, 2) as arr,
        currency as arr_currency,
        customer_since::date as customer_since,
        owner as account_owner,

        -- timestamps
        churned_at,
        updated_at,

        -- lineage
        _run_id as loaded_by_run_id,
        _loaded_at as loaded_at

    from source

)

select * from renamed
