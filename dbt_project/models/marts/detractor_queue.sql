{{
    config(
        indexes=[
            {'columns': ['response_id'], 'unique': true},
            {'columns': ['account_owner', 'queue_position']},
            {'columns': ['priority_quadrant']},
        ],
    )
}}

-- Detractors to act on at as_of: answered within the last var queue_max_age_days, no follow-up yet,
-- the respondent has not answered again, the account has not churned.

with

detractors as (

    select * from {{ ref('int_detractors_followed_up') }}

),

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

theme_mentions as (

    select * from {{ ref('int_theme_mentions_resolved') }}

),

themes as (

    select * from {{ ref('int_themes_classified') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

current_accounts as (

    select * from account_versions
    where is_latest_version

),

open_detractors as (

    select
        detractors.*,
        as_of.as_of
    from detractors
    cross join as_of
    where
        detractors.first_follow_up_at is null
        and not detractors.has_following_response
        and detractors.responded_at >= as_of.as_of - interval '{{ var("queue_max_age_days") }} days'
        and (detractors.latest_churned_at is null or detractors.latest_churned_at >= as_of.as_of)

),

enriched as (

    select
        open_detractors.response_id,
        open_detractors.account_id,
        open_detractors.contact_id,
        open_detractors.score,
        open_detractors.responded_at,
        open_detractors.hours_since_response,
        open_detractors.as_of,
        responses.survey_type,
        responses.trigger_event,
        responses.comment,
        current_accounts.account_name,
        current_accounts.plan,
        current_accounts.arr as account_arr,
        current_accounts.account_owner,
        theme_mentions.theme_id,
        themes.theme_label,
        themes.is_actionable_decided as theme_is_actionable,
        coalesce(themes.is_actionable, false) as is_actionable,
        case
            when theme_mentions.theme_id is null then 'no_theme'
            else themes.actionability_source
        end as actionability_source,
        coalesce(current_accounts.arr >= {{ var('queue_high_value_arr') }}, false) as is_high_value,
        open_detractors.responded_at + interval '{{ var("follow_up_fast_hours") }} hours' as follow_up_due_at
    from open_detractors
    inner join responses
        on open_detractors.response_id = responses.response_id
    left join current_accounts
        on open_detractors.account_id = current_accounts.account_id
    left join theme_mentions
        on
            open_detractors.response_id = theme_mentions.response_id
            and theme_mentions.theme_level = 'subtheme'
    left join themes
        on theme_mentions.theme_id = themes.theme_id

),

prioritised as (

    select
        *,
        case
            when is_high_value and is_actionable then 'high_value_high_actionability'
            when is_high_value then 'high_value_low_actionability'
            when is_actionable then 'low_value_high_actionability'
            else 'low_value_low_actionability'
        end as priority_quadrant,
        case
            when is_high_value and is_actionable then 1
            when is_high_value then 2
            when is_actionable then 3
            else 4
        end as priority_rank,
        as_of > follow_up_due_at as is_sla_breached
    from enriched

),

final as (

    select
        -- ids
        response_id::text as response_id,
        account_id::text as account_id,
        contact_id::text as contact_id,

        -- priority
        (
            row_number() over (
                order by
                    priority_rank asc,
                    is_sla_breached desc,
                    account_arr desc nulls last,
                    responded_at asc,
                    response_id collate "C" asc
            )
        )::bigint as queue_position,
        priority_quadrant::text as priority_quadrant,
        priority_rank::integer as priority_rank,

        -- account at as_of
        account_name::text as account_name,
        plan::text as plan,
        account_arr::numeric(14, 2) as account_arr,
        is_high_value::boolean as is_high_value,
        account_owner::text as account_owner,

        -- the response
        score::integer as score,
        survey_type::text as survey_type,
        trigger_event::text as trigger_event,
        comment,
        responded_at::timestamptz as responded_at,

        -- theme and actionability
        theme_id::integer as theme_id,
        theme_label::text as theme_label,
        theme_is_actionable::boolean as theme_is_actionable,
        is_actionable::boolean as is_actionable,
        actionability_source::text as actionability_source,

        -- follow-up SLA
        follow_up_due_at::timestamptz as follow_up_due_at,
        is_sla_breached::boolean as is_sla_breached,
        hours_since_response::double precision as hours_open,
        as_of::timestamptz as as_of

    from prioritised

)

select * from final
