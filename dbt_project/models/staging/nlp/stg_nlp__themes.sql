with

source as (

    select * from {{ source('nlp', 'themes') }}

),

renamed as (

    select
        -- ids
        theme_id::integer as theme_id,
        merged_into::integer as merged_into_theme_id,

        -- attributes
        label as theme_label,
        keywords,
        status as theme_status,
        size::integer as theme_size,
        model as embedding_model,

        -- timestamps
        first_seen_at,
        created_at,
        updated_at,

        -- lineage
        created_run_id

    from source

)

select * from renamed
