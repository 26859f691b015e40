-- One row per detractor response known at as_of: first follow-up (earliest activity before as_of, at or
-- after the response, that is linked to it or on the same account within follow_up_window_days), its
-- bucket, whether the 24 h / 48 h follow-up SLAs were met (and whether they can be judged yet), and the
-- recovery outcome in the next survey cycle. Without CRM activities (not configured) the bucket is
-- no_follow_up_data and no SLA is judged.
with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

cycles as (

    select * from {{ ref('int_responses_cycled') }}

),

activities as (

    select * from {{ ref('stg_crm__activities') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

activities_source as (

    select is_available as is_follow_up_data_available
    from sources_audited
    where entity = 'activities'

),

known_activities as (

    select activities.*
    from activities
    cross join as_of
    where activities.created_at < as_of.as_of

),

detractors as (

    select
        response_id,
        respondent_id,
        account_id,
        contact_id,
        score,
        arr,
        responded_at,
        response_month,
        response_quarter,
        latest_churned_at
    from responses
    where is_detractor

),

linked_follow_ups as (

    select
        detractors.response_id,
        activities.activity_id,
        activities.created_at
    from detractors
    inner join known_activities as activities
        on
            detractors.response_id = activities.response_id
            and detractors.responded_at <= activities.created_at

),

same_account_follow_ups as (

    select
        detractors.response_id,
        activities.activity_id,
        activities.created_at
    from detractors
    inner join known_activities as activities
        on
            detractors.account_id = activities.account_id
            and detractors.responded_at <= activities.created_at
            and detractors.responded_at + interval '{{ var("follow_up_window_days") }} days'
            >= activities.created_at

),

candidate_follow_ups as (

    select * from linked_follow_ups
    union
    select * from same_account_follow_ups

),

first_follow_ups as (

    select distinct on (response_id)
        response_id,
        activity_id as first_follow_up_activity_id,
        created_at as first_follow_up_at
    from candidate_follow_ups
    order by response_id asc, created_at asc, activity_id asc

),

joined as (

    select
        detractors.*,
        first_follow_ups.first_follow_up_activity_id,
        first_follow_ups.first_follow_up_at,
        {{ hours_between('detractors.responded_at', 'first_follow_ups.first_follow_up_at') }}
            as hours_to_first_follow_up,
        {{ hours_between('detractors.responded_at', 'as_of.as_of') }} as hours_since_response,
        cycles.following_response_id is not null as has_following_response,
        cycles.has_next_response,
        cycles.next_response_id,
        cycles.next_responded_at,
        cycles.next_score,
        activities_source.is_follow_up_data_available
    from detractors
    cross join activities_source
    inner join cycles
        on detractors.response_id = cycles.response_id
    left join first_follow_ups
        on detractors.response_id = first_follow_ups.response_id
    cross join as_of

),

final as (

    select
        -- ids
        response_id,
        respondent_id,
        account_id,
        contact_id,

        -- the detractor response
        score,
        arr,
        responded_at,
        response_month,
        response_quarter,
        hours_since_response,

        -- follow-up
        first_follow_up_activity_id,
        first_follow_up_at,
        hours_to_first_follow_up,
        -- without CRM activities (not configured) no follow-up can be seen: say so, judge no SLA
        case
            when not is_follow_up_data_available then 'no_follow_up_data'
            else {{ follow_up_bucket('hours_to_first_follow_up') }}
        end as follow_up_bucket,

        -- SLAs: met = followed up within the hours; judged = met, or the deadline passed before as_of
        coalesce(hours_to_first_follow_up <= {{ var('follow_up_fast_hours') }}, false) as is_24h_sla_met,
        coalesce(hours_to_first_follow_up <= {{ var('follow_up_slow_hours') }}, false) as is_48h_sla_met,
        is_follow_up_data_available and (
            coalesce(hours_to_first_follow_up <= {{ var('follow_up_fast_hours') }}, false)
            or hours_since_response > {{ var('follow_up_fast_hours') }}
        ) as is_24h_sla_judged,
        is_follow_up_data_available and (
            coalesce(hours_to_first_follow_up <= {{ var('follow_up_slow_hours') }}, false)
            or hours_since_response > {{ var('follow_up_slow_hours') }}
        ) as is_48h_sla_judged,

        -- next survey cycle
        has_following_response,
        has_next_response,
        next_response_id,
        next_responded_at,
        next_score,
        coalesce(next_score >= 7, false) as is_recovered,
        coalesce(next_score >= 9, false) as is_fully_recovered,
        latest_churned_at,
        (
            not has_next_response
            and latest_churned_at is not null
            and latest_churned_at >= responded_at
        ) as is_lost_to_churn,
        case
            when has_next_response then 'with_next_response'
            when latest_churned_at >= responded_at then 'lost_to_churn'
            else 'awaiting_next'
        end as recovery_status

    from joined

)

select * from final
