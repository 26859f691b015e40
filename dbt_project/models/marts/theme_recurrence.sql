{{
    config(
        indexes=[
            {'columns': ['theme_id', 'quarter_start'], 'unique': true},
            {'columns': ['quarter_start', 'status']},
        ],
    )
}}

with

theme_quarters as (

    select * from {{ ref('int_theme_mentions_by_quarter') }}

),

themes as (

    select * from {{ ref('int_themes_classified') }}

),

presence as (

    select
        theme_id,
        quarter_start,
        mentions,
        promoter_mentions,
        passive_mentions,
        detractor_mentions,
        scored_mentions,
        negative_mentions,
        positive_mentions,
        arr_at_risk,
        quarter_promoters,
        quarter_detractors,
        mentions >= {{ var('theme_presence_min_mentions') }} as is_present,
        row_number() over (partition by theme_id order by quarter_start) as quarter_index
    from theme_quarters

),

running as (

    select
        *,
        count(*) filter (where is_present) over theme_history as quarters_present,
        max(case when not is_present then quarter_index end) over theme_history as last_absent_index,
        min(case when is_present then quarter_start end) over theme_history as first_seen_quarter,
        max(case when is_present then quarter_start end) over theme_history as last_seen_quarter,
        coalesce(
            lag(is_present) over (partition by theme_id order by quarter_start),
            false
        ) as was_present_previous_quarter
    from presence
    window theme_history as (
        partition by theme_id order by quarter_start
        rows between unbounded preceding and current row
    )

),

classified as (

    select
        *,
        case when is_present then quarter_index - coalesce(last_absent_index, 0) else 0 end as current_streak,
        case
            when is_present and quarters_present = 1 then 'new'
            when is_present and was_present_previous_quarter then 'recurring'
            when is_present then 're-emerged'
            when was_present_previous_quarter then 'resolved'
            else 'absent'
        end as status
    from running

),

final as (

    select
        classified.theme_id::integer as theme_id,
        classified.quarter_start::date as quarter_start,
        themes.theme_level::text as theme_level,
        themes.parent_theme_id::integer as parent_theme_id,
        themes.parent_theme_label::text as parent_theme_label,
        themes.is_no_feedback::boolean as is_no_feedback,
        themes.theme_label::text as theme_label,
        themes.keywords::text as keywords,
        themes.is_actionable::boolean as is_actionable,
        themes.actionability_source::text as actionability_source,
        classified.mentions::bigint as mentions,
        classified.promoter_mentions::bigint as promoter_mentions,
        classified.passive_mentions::bigint as passive_mentions,
        classified.detractor_mentions::bigint as detractor_mentions,
        {{ safe_ratio('classified.detractor_mentions', 'classified.mentions') }} as detractor_share,
        {{ safe_ratio('classified.promoter_mentions', 'classified.quarter_promoters') }} as promoter_mention_share,
        {{ safe_ratio('classified.detractor_mentions', 'classified.quarter_detractors') }} as detractor_mention_share,
        {{ safe_ratio('classified.negative_mentions', 'classified.scored_mentions') }} as negative_share,
        {{ safe_ratio('classified.positive_mentions', 'classified.scored_mentions') }} as positive_share,
        classified.arr_at_risk::numeric(18, 2) as arr_at_risk,
        classified.quarters_present::bigint as quarters_present,
        classified.current_streak::bigint as current_streak,
        classified.first_seen_quarter::date as first_seen_quarter,
        classified.last_seen_quarter::date as last_seen_quarter,
        classified.status::text as status
    from classified
    inner join themes
        on classified.theme_id = themes.theme_id

)

select * from final
