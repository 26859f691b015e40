-- One row per active theme and UTC quarter, from the quarter of the theme's first mention to the latest
-- quarter with any response (quarters without mentions included, with 0). With var theme_resolve_merges
-- (default true) mentions of a merged theme count for the active theme it was (transitively) merged into;
-- otherwise they are dropped with the merged theme.
with

themes as (

    select * from {{ ref('stg_nlp__themes') }}

),

comment_themes as (

    select * from {{ ref('stg_nlp__comment_themes') }}

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

theme_mentions as (

    select
        resolved_themes.resolved_theme_id as theme_id,
        responses.response_id,
        responses.account_id,
        responses.responded_at,
        responses.response_quarter as quarter_start,
        responses.is_detractor,
        responses.arr
    from comment_themes
    inner join resolved_themes
        on comment_themes.theme_id = resolved_themes.theme_id
    inner join active_themes
        on resolved_themes.resolved_theme_id = active_themes.theme_id
    inner join responses
        on comment_themes.response_id = responses.response_id

),

mention_counts as (

    select
        theme_id,
        quarter_start,
        count(*) as mentions,
        count(*) filter (where is_detractor) as detractor_mentions
    from theme_mentions
    group by theme_id, quarter_start

),

latest_detractor_mention_per_account as (

    select distinct on (theme_id, quarter_start, account_id)
        theme_id,
        quarter_start,
        account_id,
        arr
    from theme_mentions
    where is_detractor
    order by theme_id asc, quarter_start asc, account_id asc, responded_at desc, response_id collate "C" desc

),

arr_at_risk as (

    select
        theme_id,
        quarter_start,
        sum(coalesce(arr, 0)) as arr_at_risk
    from latest_detractor_mention_per_account
    group by theme_id, quarter_start

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
        coalesce(mention_counts.detractor_mentions, 0) as detractor_mentions,
        coalesce(arr_at_risk.arr_at_risk, 0) as arr_at_risk
    from quarter_spine
    left join mention_counts
        on
            quarter_spine.theme_id = mention_counts.theme_id
            and quarter_spine.quarter_start = mention_counts.quarter_start
    left join arr_at_risk
        on
            quarter_spine.theme_id = arr_at_risk.theme_id
            and quarter_spine.quarter_start = arr_at_risk.quarter_start

)

select * from final
