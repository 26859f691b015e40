-- One row per active theme and UTC quarter, from the quarter of the theme's first mention to the latest
-- quarter with any response (quarters without mentions included, with 0): mentions by NPS category, ARR
-- behind the detractor mentions, mentions by sentiment, and the quarter's responses per category (the
-- denominators of "share of promoters / detractors mentioning the theme").
with

theme_mentions as (

    select * from {{ ref('int_theme_mentions_resolved') }}

),

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

mention_counts as (

    select
        theme_id,
        response_quarter as quarter_start,
        count(*) as mentions,
        count(*) filter (where is_promoter) as promoter_mentions,
        count(*) filter (where is_passive) as passive_mentions,
        count(*) filter (where is_detractor) as detractor_mentions,
        count(sentiment) as scored_mentions,
        count(*) filter (where sentiment = 'negative') as negative_mentions,
        count(*) filter (where sentiment = 'positive') as positive_mentions
    from theme_mentions
    group by theme_id, response_quarter

),

latest_detractor_mention_per_account as (

    select distinct on (theme_id, response_quarter, account_id)
        theme_id,
        response_quarter as quarter_start,
        account_id,
        arr
    from theme_mentions
    where is_detractor
    order by theme_id asc, response_quarter asc, account_id asc, responded_at desc, response_id collate "C" desc

),

arr_at_risk as (

    select
        theme_id,
        quarter_start,
        sum(coalesce(arr, 0)) as arr_at_risk
    from latest_detractor_mention_per_account
    group by theme_id, quarter_start

),

quarter_responses as (

    select
        response_quarter as quarter_start,
        count(*) filter (where is_promoter) as quarter_promoters,
        count(*) filter (where is_detractor) as quarter_detractors
    from responses
    group by response_quarter

),

theme_first_quarters as (

    select
        theme_id,
        min(quarter_start) as first_mention_quarter
    from mention_counts
    group by theme_id

),

latest_response_quarter as (

    select max(response_quarter) as latest_quarter
    from responses

),

quarter_spine as (

    select
        theme_first_quarters.theme_id,
        quarters.quarter_start::date as quarter_start
    from theme_first_quarters
    cross join latest_response_quarter
    cross join lateral generate_series(
        theme_first_quarters.first_mention_quarter,
        latest_response_quarter.latest_quarter,
        interval '3 months'
    ) as quarters (quarter_start)

),

final as (

    select
        quarter_spine.theme_id,
        quarter_spine.quarter_start,
        coalesce(mention_counts.mentions, 0) as mentions,
        coalesce(mention_counts.promoter_mentions, 0) as promoter_mentions,
        coalesce(mention_counts.passive_mentions, 0) as passive_mentions,
        coalesce(mention_counts.detractor_mentions, 0) as detractor_mentions,
        coalesce(mention_counts.scored_mentions, 0) as scored_mentions,
        coalesce(mention_counts.negative_mentions, 0) as negative_mentions,
        coalesce(mention_counts.positive_mentions, 0) as positive_mentions,
        coalesce(arr_at_risk.arr_at_risk, 0) as arr_at_risk,
        coalesce(quarter_responses.quarter_promoters, 0) as quarter_promoters,
        coalesce(quarter_responses.quarter_detractors, 0) as quarter_detractors
    from quarter_spine
    left join mention_counts
        on
            quarter_spine.theme_id = mention_counts.theme_id
            and quarter_spine.quarter_start = mention_counts.quarter_start
    left join arr_at_risk
        on
            quarter_spine.theme_id = arr_at_risk.theme_id
            and quarter_spine.quarter_start = arr_at_risk.quarter_start
    left join quarter_responses
        on quarter_spine.quarter_start = quarter_responses.quarter_start

)

select * from final
