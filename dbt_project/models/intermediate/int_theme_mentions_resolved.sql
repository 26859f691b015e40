-- One row per response known at as_of whose comment is assigned to a theme that is active after merge
-- resolution (grain: response_id). With var theme_resolve_merges (default true) a comment of a merged
-- theme counts for the active theme it was (transitively) merged into; otherwise it is dropped with the
-- merged theme.
with

themes as (

    select * from {{ ref('stg_nlp__themes') }}

),

assignments as (

    select * from {{ ref('int_theme_assignments_collected') }}

),

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

resolved_themes as (

    {% if var('theme_resolve_merges') %}
        -- follow merged_into transitively (nested so that dbt can still inject CTEs in front of the model)
        with recursive theme_merge_chain as (

            select
                theme_id,
                theme_id as current_theme_id,
                merged_into_theme_id as next_theme_id,
                0 as hops
            from themes

            union all

            select
                theme_merge_chain.theme_id,
                themes.theme_id as current_theme_id,
                themes.merged_into_theme_id as next_theme_id,
                theme_merge_chain.hops + 1 as hops
            from theme_merge_chain
            inner join themes
                on theme_merge_chain.next_theme_id = themes.theme_id
            where theme_merge_chain.hops < 50

        )

        select distinct on (theme_id)
            theme_id,
            current_theme_id as resolved_theme_id
        from theme_merge_chain
        order by theme_id asc, hops desc
    {% else %}
        select
            theme_id,
            theme_id as resolved_theme_id
        from themes
    {% endif %}

),

active_themes as (

    select theme_id from themes
    where theme_status = 'active'

),

final as (

    select
        -- ids
        responses.response_id,
        resolved_themes.resolved_theme_id as theme_id,
        assignments.theme_id as assigned_theme_id,
        responses.account_id,
        responses.contact_id,

        -- assignment
        assignments.assignment_method,
        assignments.confidence,

        -- the response
        responses.score,
        responses.nps_category,
        responses.is_promoter,
        responses.is_passive,
        responses.is_detractor,
        responses.comment,
        responses.arr,
        responses.responded_at,
        responses.response_month,
        responses.response_quarter

    from assignments
    inner join resolved_themes
        on assignments.theme_id = resolved_themes.theme_id
    inner join active_themes
        on resolved_themes.resolved_theme_id = active_themes.theme_id
    inner join responses
        on assignments.response_id = responses.response_id

)

select * from final
