-- One row per response known at as_of and theme level (grain: response_id, theme_level) whose comment is
-- assigned to a sub-theme that is active after merge resolution: a 'subtheme' row for that sub-theme and a
-- 'theme' row for its parent theme (when it has an active one). With var theme_resolve_merges (default
-- true) a comment of a merged theme counts for the active theme it was (transitively) merged into, and a
-- sub-theme under a merged parent counts for the parent that was merged into; otherwise they are dropped
-- with the merged theme. Each row carries the comment's sentiment (nlp.comment_sentiment; null when the
-- comment has not been scored).
--
-- Incremental (grain: response_id and theme_level; docs/incremental.md): a build recomputes the responses
-- whose rows can have changed since the previous one: assignments int_theme_assignments_collected has
-- (re)written since, responses int_responses_enriched has recomputed since, sentiment scored since
-- (within var incremental_lookback_days: the theme step can overlap a build), and every response assigned
-- to a theme whose resolution (active sub-theme, active parent) differs from the one its rows hold.
-- Everything is recomputed when the settings or this model's SQL changed. A recomputed response left
-- without a mention writes one row of nulls (theme_level null) so that delete+insert removes its old
-- rows; the post-hook deletes it, and the rows of responses gone from either input.
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=[
            "delete from {{ this }} where built_at = now() and theme_level is null",
            "{{ delete_rows_missing_from(mentionable_responses(), 'response_id') }}",
        ],
        indexes=[
            {'columns': ['response_id', 'theme_level'], 'unique': true},
            {'columns': ['built_at']},
        ],
    )
}}
{%- set incremental = incremental_with('built_at') %}

{%- set settings = settings_fingerprint([var('theme_resolve_merges')], "''") %}
{%- set built_after = incremental_built_after() if incremental else none %}
{%- set everything = incremental and incremental_settings_changed(settings, built_after) %}

with

themes as (

    select * from {{ ref('stg_nlp__themes') }}

),

-- not materialized: read by several CTEs, each filtering it by its indexes
assignments as not materialized (

    select * from {{ ref('int_theme_assignments_collected') }}

),

responses as not materialized (

    select * from {{ ref('int_responses_enriched') }}

),

comment_sentiment as not materialized (

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

theme_resolutions as (

    -- per theme a comment can be assigned to: the active sub-theme it counts for and that one's active
    -- parent (none: the comment is dropped)
    select
        resolved_subthemes.theme_id as assigned_theme_id,
        active_subthemes.theme_id,
        active_parents.theme_id as parent_theme_id
    from resolved_themes as resolved_subthemes
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

{% if incremental %}
    previous_resolutions as (

        -- per assigned theme (one group each: estimated right, unlike distinct over three columns);
        -- its rows all hold one resolution, rows that disagree would count as changed
        select
            assigned_theme_id,
            min(theme_id) as theme_id,
            min(parent_theme_id) as parent_theme_id,
            (
                min(theme_id) = max(theme_id)
                and count(parent_theme_id) in (0, count(*))
                and coalesce(min(parent_theme_id) = max(parent_theme_id), true)
            ) as is_one_resolution
        from {{ this }}
        where theme_level = 'subtheme'
        group by assigned_theme_id

    ),

    changed_themes as (

        select coalesce(theme_resolutions.assigned_theme_id, previous_resolutions.assigned_theme_id) as theme_id
        from theme_resolutions
        full join previous_resolutions
            on theme_resolutions.assigned_theme_id = previous_resolutions.assigned_theme_id
        where
            not coalesce(previous_resolutions.is_one_resolution, true)
            or (theme_resolutions.theme_id, theme_resolutions.parent_theme_id)
            is distinct from (previous_resolutions.theme_id, previous_resolutions.parent_theme_id)

    ),

    changed_responses as (

        -- the bounds are literals: PostgreSQL then estimates each filter from its index
        select response_id
        from assignments
        where collected_at > {{ timestamp_literal(built_after) }}

        union

        select response_id
        from responses
        where built_at > {{ timestamp_literal(built_after) }}

        union

        select response_id
        from comment_sentiment
        where scored_at >= {{ timestamp_literal(built_after) }} - interval '{{ var("incremental_lookback_days") }} days'

        union

        select assignments.response_id
        from assignments
        inner join changed_themes
            on assignments.theme_id = changed_themes.theme_id

        {% if everything %}
            -- the settings or this model's SQL changed since the newest rows were built
            union

            select response_id
            from assignments
        {% endif %}

    ),
{% endif %}

recomputed_assignments as (

    select assignments.*
    from assignments
    {% if incremental %}
        inner join changed_responses
            on assignments.response_id = changed_responses.response_id
    {% endif %}

),

subtheme_mentions as (

    select
        recomputed_assignments.response_id,
        theme_resolutions.theme_id,
        recomputed_assignments.theme_id as assigned_theme_id,
        theme_resolutions.parent_theme_id,
        recomputed_assignments.assignment_method,
        recomputed_assignments.confidence
    from recomputed_assignments
    inner join theme_resolutions
        on recomputed_assignments.theme_id = theme_resolutions.assigned_theme_id

),

{% if incremental %}
    emptied as (

        -- recomputed responses that have rows and no mention now
        select changed_responses.response_id
        from changed_responses
        left join subtheme_mentions
            on changed_responses.response_id = subtheme_mentions.response_id
        where
            subtheme_mentions.response_id is null
            and exists (
                select 1 from {{ this }} as previous
                where previous.response_id = changed_responses.response_id
            )

    ),
{% endif %}

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

    {% if incremental %}
        union all

        -- a row of nulls per emptied response: delete+insert removes its old rows, the post-hook this row
        select
            response_id,
            null as theme_level,
            null as theme_id,
            null as parent_theme_id,
            null as assigned_theme_id,
            null as assignment_method,
            null as confidence
        from emptied
    {% endif %}

),

mentions as (

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

),

final as (

    select
        *,
        now() as built_at,
        {{ settings }} as built_settings
    from mentions

)

select * from final
