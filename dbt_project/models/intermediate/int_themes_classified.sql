-- One row per active theme of either level (grain: theme_id): level, parent, label, keywords, its mentions
-- known at as_of and whether it is actionable. A person's decision (stg_nlp__themes.is_actionable, from the
-- theme overrides seed) wins; the built-in no-feedback theme is otherwise never actionable; any other
-- theme counts as actionable when at least var theme_actionable_min_detractor_share of its mentions come
-- from detractors (a complaint someone can fix, not praise); actionability_source says which rule decided.
with

themes as (

    select * from {{ ref('stg_nlp__themes') }}

),

theme_mentions as (

    select * from {{ ref('int_theme_mentions_resolved') }}

),

mention_totals as (

    select
        theme_id,
        count(*) as mentions,
        count(*) filter (where is_detractor) as detractor_mentions,
        min(responded_at) as first_mention_at,
        max(responded_at) as last_mention_at
    from theme_mentions
    group by theme_id

),

classified as (

    select
        themes.theme_id,
        themes.theme_level,
        themes.parent_theme_id,
        parents.theme_label as parent_theme_label,
        themes.theme_kind = 'no_feedback' as is_no_feedback,
        themes.theme_label,
        array_to_string(themes.keywords, ', ') as keywords,
        themes.is_actionable as is_actionable_decided,
        coalesce(mention_totals.mentions, 0) as mentions,
        coalesce(mention_totals.detractor_mentions, 0) as detractor_mentions,
        {{ safe_ratio('mention_totals.detractor_mentions', 'mention_totals.mentions') }} as detractor_share,
        mention_totals.first_mention_at,
        mention_totals.last_mention_at
    from themes
    left join themes as parents
        on themes.parent_theme_id = parents.theme_id
    left join mention_totals
        on themes.theme_id = mention_totals.theme_id
    where themes.theme_status = 'active'

),

final as (

    select
        *,
        coalesce(
            is_actionable_decided,
            not is_no_feedback and coalesce(detractor_share >= {{ var('theme_actionable_min_detractor_share') }}, false)
        ) as is_actionable,
        case
            when is_actionable_decided is not null then 'human'
            when is_no_feedback then 'no_feedback'
            else 'heuristic'
        end as actionability_source
    from classified

)

select * from final
