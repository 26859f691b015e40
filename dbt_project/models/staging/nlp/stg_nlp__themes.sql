with

source as (

    select * from {{ source('nlp', 'themes') }}

),

renamed as (

    select
        -- ids
        theme_id::integer as theme_id,
        merged_into::integer as merged_into_theme_id,
        parent_theme_id::integer as parent_theme_id,

        -- level: comments belong to sub-themes, each sub-theme to a parent theme
        level as theme_level,
        kind as theme_kind,

        -- attributes: a person's label (overrides seed) wins over the engine's keyword label
        coalesce(human_label, label) as theme_label,
        label as auto_theme_label,
        human_label is not null as is_renamed,
        keywords,
        is_actionable,
        status as theme_status,
        merged_by,
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
