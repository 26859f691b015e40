with

source as (

    select * from {{ source('survey', 'survey_responses') }}

),

renamed as (

    select
        -- ids
        response_id,
        survey_id,
        account_id,
        contact_id,

        -- survey context
        survey_type,
        trigger_event,
        channel,
        language,

        -- answer
        score::integer as score,
        comment,

        -- timestamps (timestamptz, UTC)
        sent_at,
        responded_at,

        -- lineage
        _run_id as loaded_by_run_id,
        _source_file as source_file,
        _loaded_at as loaded_at

    from source

)

select * from renamed
