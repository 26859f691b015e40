-- One row per response known at as_of and theme level (grain: response_id, theme_level) whose comment is
-- assigned to a sub-theme that is active after merge resolution: a 'subtheme' row for that sub-theme and a
-- 'theme' row for its parent theme (when it has an active one). With var theme_resolve_merges (default
-- true) a comment of a merged theme counts for the active theme it was (transitively) merged into, and a
-- sub-theme under a merged parent counts for the parent that was merged into; otherwise they are dropped
-- with the merged theme. Each row carries the comment's sentiment (nlp.comment_sentiment; null when the
-- comment has not been scored).
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

comment_sentiment as (

    select * from {{ ref('stg_nlp__comment_sentiment') }}

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

    select
        theme_id,
        theme_level,
        parent_theme_id
    from themes
    where theme_status = 'active'

),

subtheme_mentions as (

    select
        assignments.response_id,
        resolved_subthemes.resolved_theme_id as theme_id,
        assignments.theme_id as assigned_theme_id,
        active_parents.theme_id as parent_theme_id,
        assignments.assignment_method,
        assignments.confidence
    from assignments
    inner join resolved_themes as resolved_subthemes
        on assignments.theme_id = resolved_subthemes.theme_id
    inner join active_themes as active_subthemes
        on
            resolved_subthemes.resolved_theme_id = active_subthemes.theme_id
            and active_subthemes.theme_level = 'subtheme'
    left join resolved_themes as resolved_parents
        on active_subthemes.parent_theme_id = resolved_parents.theme_id
    left join active_themes as active_parents
        on
            resolved_parents.resolved_theme_id = active_parents.theme_id
            and active_parents.theme_level = 'theme'

),

mentions_by_level as (

    select
        response_id,
        'subtheme' as theme_level,
        theme_id,
        parent_theme_id,
        assigned_theme_id,
        assignment_method,
        confidence
    from subtheme_mentions

    union all

    select
        response_id,
        'theme' as theme_level,
        parent_theme_id as theme_id,
        null::integer as parent_theme_id,
        assigned_theme_id,
        assignment_method,
        confidence
    from subtheme_mentions
    where parent_theme_id is not null

),

final as (

    select
        -- ids
        responses.response_id,
        mentions_by_level.theme_level,
        mentions_by_level.theme_id,
        mentions_by_level.parent_theme_id,
        mentions_by_level.assigned_theme_id,
        responses.account_id,
        responses.contact_id,

        -- assignment
        mentions_by_level.assignment_method,
        mentions_by_level.confidence,

        -- the comment's sentiment
        comment_sentiment.sentiment,
        comment_sentiment.sentiment_score,

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

    from mentions_by_level
    inner join responses
        on mentions_by_level.response_id = responses.response_id
    left join comment_sentiment
        on mentions_by_level.response_id = comment_sentiment.response_id

)

select * from final
