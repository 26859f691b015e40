-- One row per mart and source entity it uses (seeds/source_needs.csv): whether that source is
-- configured and holds rows, and when it is not available (an optional CRM or usage source left
-- out of sources.yml, never loaded) what the mart shows instead. A survey-only team reads here why
-- a segment is 'unknown', why recovery says no_follow_up_data and why nps_outcomes is empty.
with

source_needs as (

    select * from {{ ref('source_needs') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

joined as (

    select
        source_needs.mart,
        source_needs.entity,
        source_needs.effect_when_missing,
        sources_audited.is_configured,
        sources_audited.has_rows,
        sources_audited.is_available,
        sources_audited.latest_source_location,
        sources_audited.latest_loaded_at
    from source_needs
    inner join sources_audited
        on source_needs.entity = sources_audited.entity

),

final as (

    select
        -- grain
        mart::text as mart,
        entity::text as source_entity,

        -- the source
        is_configured::boolean as is_configured,
        has_rows::boolean as has_rows,
        is_available::boolean as is_available,
        (
            case
                when has_rows and is_configured then 'loaded'
                when has_rows then 'not_configured_rows_kept'
                when is_configured then 'configured_no_rows'
                else 'not_configured'
            end
        )::text as source_status,

        -- what the mart shows without it
        (case when not is_available then effect_when_missing end)::text as effect,
        effect_when_missing::text as effect_when_missing,

        -- lineage
        latest_source_location::text as latest_source_location,
        latest_loaded_at::timestamptz as latest_loaded_at

    from joined

)

select * from final
