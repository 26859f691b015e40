{{
    config(
        indexes=[
            {
                'columns': ['theme_id', 'quarter_start', 'segment_type', 'segment_value'],
                'unique': true,
            },
            {'columns': ['quarter_start', 'segment_type', 'segment_value', 'theme_level']},
        ],
    )
}}

-- What each theme costs in NPS, per UTC quarter and segment (var theme_impact_segment_types):
-- NPS of the respondents who mention the theme against those who do not, and the NPS points the
-- segment would gain if the theme's detractors had answered as passives. One row per theme (both
-- levels), quarter and segment value with at least one mention.

with

theme_mentions as (

    select * from {{ ref('int_theme_mentions_resolved') }}

),

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

themes as (

    select * from {{ ref('int_themes_classified') }}

),

respondents as (

    select
        response_id,
        segment_type,
        segment_value,
        response_quarter as quarter_start,
        is_promoter,
        is_detractor
    from segmented_responses
    where segment_type in ({{ "'" ~ var('theme_impact_segment_types') | join("', '") ~ "'" }})

),

segment_quarters as (

    select
        segment_type,
        segment_value,
        quarter_start,
        count(*) as respondents,
        count(*) filter (where is_promoter) as promoters,
        count(*) filter (where is_detractor) as detractors
    from respondents
    group by segment_type, segment_value, quarter_start

),

segmented_mentions as (

    -- a response mentions at most one theme per level (grain of int_theme_mentions_resolved)
    select
        theme_mentions.theme_id,
        theme_mentions.theme_level,
        respondents.segment_type,
        respondents.segment_value,
        respondents.quarter_start,
        theme_mentions.response_id,
        theme_mentions.account_id,
        theme_mentions.arr,
        theme_mentions.responded_at,
        theme_mentions.is_promoter,
        theme_mentions.is_detractor,
        theme_mentions.sentiment
    from theme_mentions
    inner join respondents
        on theme_mentions.response_id = respondents.response_id

),

mention_counts as (

    select
        theme_id,
        theme_level,
        segment_type,
        segment_value,
        quarter_start,
        count(*) as mentioners,
        count(*) filter (where is_promoter) as promoter_mentioners,
        count(*) filter (where is_detractor) as detractor_mentioners,
        count(sentiment) as scored_mentioners,
        count(*) filter (where sentiment = 'negative') as negative_mentioners,
        count(*) filter (where sentiment = 'positive') as positive_mentioners
    from segmented_mentions
    group by theme_id, theme_level, segment_type, segment_value, quarter_start

),

latest_detractor_mention_per_account as (

    select distinct on (theme_id, segment_type, segment_value, quarter_start, account_id)
        theme_id,
        segment_type,
        segment_value,
        quarter_start,
        arr
    from segmented_mentions
    where is_detractor
    order by
        theme_id asc, segment_type asc, segment_value asc, quarter_start asc, account_id asc,
        responded_at desc, response_id collate "C" desc

),

detractor_arr as (

    select
        theme_id,
        segment_type,
        segment_value,
        quarter_start,
        sum(coalesce(arr, 0)) as detractor_arr
    from latest_detractor_mention_per_account
    group by theme_id, segment_type, segment_value, quarter_start

),

compared as (

    select
        mention_counts.*,
        segment_quarters.respondents,
        segment_quarters.promoters,
        segment_quarters.detractors,
        segment_quarters.respondents - mention_counts.mentioners as non_mentioners,
        segment_quarters.promoters - mention_counts.promoter_mentioners as promoter_non_mentioners,
        segment_quarters.detractors - mention_counts.detractor_mentioners as detractor_non_mentioners,
        coalesce(detractor_arr.detractor_arr, 0) as detractor_arr,
        coalesce(themes.is_no_feedback, false) as is_no_feedback,
        themes.theme_label
    from mention_counts
    inner join segment_quarters
        on
            mention_counts.segment_type = segment_quarters.segment_type
            and mention_counts.segment_value = segment_quarters.segment_value
            and mention_counts.quarter_start = segment_quarters.quarter_start
    left join detractor_arr
        on
            mention_counts.theme_id = detractor_arr.theme_id
            and mention_counts.segment_type = detractor_arr.segment_type
            and mention_counts.segment_value = detractor_arr.segment_value
            and mention_counts.quarter_start = detractor_arr.quarter_start
    left join themes
        on mention_counts.theme_id = themes.theme_id

),

scored as (

    select
        *,
        {{ nps_score('promoters', 'detractors', 'respondents') }} as segment_nps,
        {{ nps_score('promoter_mentioners', 'detractor_mentioners', 'mentioners') }} as nps_mentioners,
        {{ nps_margin_of_error('promoter_mentioners', 'detractor_mentioners', 'mentioners') }}
            as mentioners_margin_of_error,
        {{ nps_score('promoter_non_mentioners', 'detractor_non_mentioners', 'non_mentioners') }}
            as nps_non_mentioners,
        case
            when non_mentioners > 0
                then {{ nps_margin_of_error('promoter_non_mentioners', 'detractor_non_mentioners', 'non_mentioners') }}
        end as non_mentioners_margin_of_error,
        {{ safe_ratio('mentioners', 'respondents') }} as mention_share,
        -- NPS if the theme's detractors had scored as passives, minus the NPS: 100 d / n
        (100 * detractor_mentioners::double precision / respondents) as nps_points_at_stake
    from compared

),

quadrant_thresholds as (

    -- the medians over the themes of the same level, quarter and segment (no-feedback left out:
    -- nothing to fix there)
    select
        theme_level,
        segment_type,
        segment_value,
        quarter_start,
        percentile_cont(0.5) within group (order by mention_share) as median_mention_share,
        percentile_cont(0.5) within group (order by nps_points_at_stake) as median_points_at_stake
    from scored
    where not is_no_feedback
    group by theme_level, segment_type, segment_value, quarter_start

),

classified as (

    select
        scored.*,
        scored.nps_mentioners - scored.nps_non_mentioners as nps_difference,
        sqrt(
            power(scored.mentioners_margin_of_error, 2) + power(scored.non_mentioners_margin_of_error, 2)
        ) as difference_margin_of_error,
        case
            when not scored.is_no_feedback
                then scored.mention_share >= quadrant_thresholds.median_mention_share
        end as is_high_frequency,
        case
            when not scored.is_no_feedback
                then
                    scored.nps_points_at_stake > 0
                    and scored.nps_points_at_stake >= quadrant_thresholds.median_points_at_stake
        end as is_high_impact
    from scored
    left join quadrant_thresholds
        on
            scored.theme_level = quadrant_thresholds.theme_level
            and scored.segment_type = quadrant_thresholds.segment_type
            and scored.segment_value = quadrant_thresholds.segment_value
            and scored.quarter_start = quadrant_thresholds.quarter_start

),

final as (

    select
        -- grain
        theme_id::integer as theme_id,
        theme_level::text as theme_level,
        quarter_start::date as quarter_start,
        segment_type::text as segment_type,
        segment_value::text as segment_value,
        theme_label::text as theme_label,
        is_no_feedback::boolean as is_no_feedback,

        -- who mentions it
        respondents::bigint as respondents,
        mentioners::bigint as mentioners,
        promoter_mentioners::bigint as promoter_mentioners,
        detractor_mentioners::bigint as detractor_mentioners,
        mention_share::double precision as mention_share,

        -- NPS with and without the theme
        segment_nps::double precision as segment_nps,
        nps_mentioners::double precision as nps_mentioners,
        mentioners_margin_of_error::double precision as mentioners_margin_of_error,
        nps_non_mentioners::double precision as nps_non_mentioners,
        non_mentioners_margin_of_error::double precision as non_mentioners_margin_of_error,
        nps_difference::double precision as nps_difference,
        difference_margin_of_error::double precision as difference_margin_of_error,
        (abs(nps_difference) > difference_margin_of_error)::boolean as difference_exceeds_margin_of_error,

        -- how the mentioners sound (nlp.comment_sentiment, as in theme_recurrence)
        {{ safe_ratio('negative_mentioners', 'scored_mentioners') }} as negative_share,
        {{ safe_ratio('positive_mentioners', 'scored_mentioners') }} as positive_share,

        -- what it costs
        nps_points_at_stake::double precision as nps_points_at_stake,
        detractor_arr::numeric(18, 2) as detractor_arr,
        case
            when is_high_frequency and is_high_impact then 'high_frequency_high_impact'
            when is_high_impact then 'low_frequency_high_impact'
            when is_high_frequency then 'high_frequency_low_impact'
            when not is_no_feedback then 'low_frequency_low_impact'
        end::text as priority_quadrant,
        case
            when is_high_frequency and is_high_impact then 1
            when is_high_impact then 2
            when is_high_frequency then 3
            when not is_no_feedback then 4
        end::integer as priority_rank

    from classified

)

select * from final
