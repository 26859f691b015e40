{{
    config(
        indexes=[
            {'columns': ['response_id'], 'unique': true},
            {'columns': ['account_owner', 'queue_position']},
        ],
    )
}}

-- Promoters to ask for a referral, a review or a case study at as_of: answered within the last var
-- promoter_queue_max_age_days, the respondent has not answered again, the account has not churned,
-- and nobody asked them within var promoter_ask_cooldown_days before as_of. Highest ARR first, then
-- the most recent answer.

with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

cycles as (

    select * from {{ ref('int_responses_cycled') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

activities as (

    select * from {{ ref('stg_crm__activities') }}

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

asks as (

    -- CRM activities that ask a customer for a referral, review or case study, known at as_of
    select
        activities.activity_id,
        activities.account_id,
        activities.contact_id,
        activities.response_id,
        activities.created_at
    from activities
    cross join as_of
    where
        activities.created_at < as_of.as_of
        and activities.outcome in ({{ "'" ~ var('promoter_ask_outcomes') | join("', '") ~ "'" }})
        {%- if var('promoter_ask_activity_types') %}
            and activities.activity_type in ({{ "'" ~ var('promoter_ask_activity_types') | join("', '") ~ "'" }})
        {%- endif %}

),

recent_promoters as (

    select
        responses.*,
        as_of.as_of
    from responses
    cross join as_of
    inner join cycles
        on responses.response_id = cycles.response_id
    where
        responses.is_promoter
        and cycles.following_response_id is null
        and responses.responded_at >= as_of.as_of - interval '{{ var("promoter_queue_max_age_days") }} days'
        and (responses.latest_churned_at is null or responses.latest_churned_at >= as_of.as_of)

),

asks_of_promoters as (

    -- an ask counts for a promoter when it is linked to the response, made to the same contact, or
    -- made to the account without a contact (the whole account was asked)
    select
        recent_promoters.response_id,
        asks.created_at
    from recent_promoters
    inner join asks
        on
            recent_promoters.response_id = asks.response_id
            or recent_promoters.contact_id = asks.contact_id
            or (asks.contact_id is null and recent_promoters.account_id = asks.account_id)

),

last_asks as (

    select
        response_id,
        max(created_at) as last_asked_at
    from asks_of_promoters
    group by response_id

),

not_asked_lately as (

    select
        recent_promoters.*,
        last_asks.last_asked_at
    from recent_promoters
    left join last_asks
        on recent_promoters.response_id = last_asks.response_id
    where
        last_asks.last_asked_at is null
        or last_asks.last_asked_at
        < recent_promoters.as_of - interval '{{ var("promoter_ask_cooldown_days") }} days'

),

enriched as (

    select
        not_asked_lately.response_id,
        not_asked_lately.account_id,
        not_asked_lately.contact_id,
        not_asked_lately.score,
        not_asked_lately.survey_type,
        not_asked_lately.trigger_event,
        not_asked_lately.comment,
        not_asked_lately.responded_at,
        not_asked_lately.last_asked_at,
        not_asked_lately.as_of,
        current_accounts.account_name,
        current_accounts.plan,
        current_accounts.arr as account_arr,
        current_accounts.account_owner,
        theme_mentions.theme_id,
        themes.theme_label,
        {{ hours_between('not_asked_lately.responded_at', 'not_asked_lately.as_of') }} / 24 as days_since_response
    from not_asked_lately
    left join current_accounts
        on not_asked_lately.account_id = current_accounts.account_id
    left join theme_mentions
        on
            not_asked_lately.response_id = theme_mentions.response_id
            and theme_mentions.theme_level = 'subtheme'
    left join themes
        on theme_mentions.theme_id = themes.theme_id

),

final as (

    select
        -- ids
        response_id::text as response_id,
        account_id::text as account_id,
        contact_id::text as contact_id,

        -- priority: ARR, then recency
        (
            row_number() over (
                order by
                    account_arr desc nulls last,
                    responded_at desc,
                    response_id collate "C" asc
            )
        )::bigint as queue_position,

        -- account at as_of
        account_name::text as account_name,
        plan::text as plan,
        account_arr::numeric(14, 2) as account_arr,
        account_owner::text as account_owner,

        -- the response
        score::integer as score,
        survey_type::text as survey_type,
        trigger_event::text as trigger_event,
        comment,
        responded_at::timestamptz as responded_at,
        days_since_response::double precision as days_since_response,
        theme_id::integer as theme_id,
        theme_label::text as theme_label,

        -- asks
        last_asked_at::timestamptz as last_asked_at,
        as_of::timestamptz as as_of

    from enriched

)

select * from final
