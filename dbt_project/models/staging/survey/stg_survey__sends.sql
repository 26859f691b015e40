with

source as (

    select * from {{ source('survey', 'survey_sends') }}

),

renamed as (

    select
        -- ids
        send_id,
        survey_id,
        account_id,
        contact_id,
        response_id,

        -- survey context
        survey_type,
        trigger_event,
        channel,

        -- timestamps (timestamptz, UTC)
        sent_at,

        -- lineage
        _run_id as loaded_by_run_id,
        _source_file as source_file,
        _loaded_at as loaded_at

    from source

)

select * from renamed
