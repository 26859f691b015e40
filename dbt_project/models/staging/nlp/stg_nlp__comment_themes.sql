with

source as (

    select * from {{ source('nlp', 'comment_themes') }}

),

renamed as (

    select
        -- ids
        response_id,
        theme_id::integer as theme_id,
        text_hash,

        -- assignment
        method as assignment_method,
        confidence::double precision as confidence,
        model as embedding_model,

        -- timestamps
        assigned_at,

        -- lineage
        run_id as assigned_by_run_id

    from source

)

select * from renamed
