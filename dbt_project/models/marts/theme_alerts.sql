{{
    config(
        indexes=[
            {'columns': ['theme_id', 'month_start'], 'unique': true},
            {'columns': ['month_start']},
        ],
    )
}}

-- Themes and sub-themes that crossed the alert threshold in a UTC calendar month: at least var
-- theme_alert_min_detractor_mentions detractor mentions (month to date for the month of as_of). The
-- built-in no-feedback theme never raises an alert: there is nothing in it to act on.

with

theme_mentions as (

    select * from {{ ref('int_theme_mentions_resolved') }}

),

themes as (

    select * from {{ ref('int_themes_classified') }}

),

monthly as (

    select
        theme_id,
        response_month as month_start,
        count(*) as mentions,
        count(*) filter (where is_detractor) as detractor_mentions,
        count(distinct account_id) filter (where is_detractor) as accounts_affected,
        min(responded_at) filter (where is_detractor) as first_detractor_mention_at,
        max(responded_at) filter (where is_detractor) as last_detractor_mention_at
    from theme_mentions
    group by theme_id, response_month

),

latest_detractor_mention_per_account as (

    select distinct on (theme_id, response_month, account_id)
        theme_id,
        response_month as month_start,
        account_id,
        arr
    from theme_mentions
    where is_detractor
    order by theme_id asc, response_month asc, account_id asc, responded_at desc, response_id collate "C" desc

),

arr_at_risk as (

    select
        theme_id,
        month_start,
        sum(coalesce(arr, 0)) as arr_at_risk
    from latest_detractor_mention_per_account
    group by theme_id, month_start

),

ranked_samples as (

    -- the detractor comments closest to the theme (highest confidence) make the best examples
    select
        theme_id,
        response_month as month_start,
        response_id,
        comment,
        row_number() over (
            partition by theme_id, response_month
            order by confidence desc nulls last, responded_at desc, response_id collate "C" asc
        ) as sample_rank
    from theme_mentions
    where is_detractor and coalesce(btrim(comment), '') <> ''

),

samples as (

    select
        theme_id,
        month_start,
        array_agg(comment order by sample_rank) as sample_comments,
        array_agg(response_id order by sample_rank) as sample_response_ids
    from ranked_samples
    where sample_rank <= {{ var('theme_alert_sample_comments') }}
    group by theme_id, month_start

),

compared as (

    select
        monthly.*,
        previous.detractor_mentions as previous_month_detractor_mentions
    from monthly
    left join monthly as previous
        on
            monthly.theme_id = previous.theme_id
            and (monthly.month_start - interval '1 month')::date = previous.month_start

),

alerts as (

    select
        *,
        min(month_start) over (partition by theme_id) as first_alert_month
    from compared
    where detractor_mentions >= {{ var('theme_alert_min_detractor_mentions') }}

),

final as (

    select
        -- grain
        alerts.theme_id::integer as theme_id,
        alerts.month_start::date as month_start,

        -- the theme
        themes.theme_level::text as theme_level,
        themes.parent_theme_id::integer as parent_theme_id,
        themes.parent_theme_label::text as parent_theme_label,
        themes.theme_label::text as theme_label,
        themes.keywords::text as keywords,
        themes.is_actionable::boolean as is_actionable,
        themes.actionability_source::text as actionability_source,

        -- the month
        alerts.mentions::bigint as mentions,
        alerts.detractor_mentions::bigint as detractor_mentions,
        {{ safe_ratio('alerts.detractor_mentions', 'alerts.mentions') }} as detractor_share,
        {{ var('theme_alert_min_detractor_mentions') }}::integer as alert_threshold,
        coalesce(alerts.previous_month_detractor_mentions, 0)::bigint as previous_month_detractor_mentions,
        (
            coalesce(alerts.previous_month_detractor_mentions, 0) < {{ var('theme_alert_min_detractor_mentions') }}
        )::boolean as is_new_alert,
        alerts.first_alert_month::date as first_alert_month,
        alerts.accounts_affected::bigint as accounts_affected,
        coalesce(arr_at_risk.arr_at_risk, 0)::numeric(18, 2) as arr_at_risk,
        alerts.first_detractor_mention_at::timestamptz as first_detractor_mention_at,
        alerts.last_detractor_mention_at::timestamptz as last_detractor_mention_at,

        -- examples for the ticket
        coalesce(samples.sample_comments, '{}'::text[])::text[] as sample_comments,
        coalesce(samples.sample_response_ids, '{}'::text[])::text[] as sample_response_ids

    from alerts
    inner join themes
        on
            alerts.theme_id = themes.theme_id
            and not themes.is_no_feedback
    left join arr_at_risk
        on
            alerts.theme_id = arr_at_risk.theme_id
            and alerts.month_start = arr_at_risk.month_start
    left join samples
        on
            alerts.theme_id = samples.theme_id
            and alerts.month_start = samples.month_start

)

select * from final
