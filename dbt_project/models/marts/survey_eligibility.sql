{{
    config(
        indexes=[
            {'columns': ['contact_id'], 'unique': true},
            {'columns': ['account_id']},
            {'columns': ['is_eligible', 'account_owner']},
        ],
    )
}}

-- Every contact known at as_of, and whether it may get the next survey under the fatigue rules: no
-- relational survey within var fatigue_relational_days, no transactional survey within var
-- fatigue_transactional_days, account not churned. A survey counts from a response's sent_at, else
-- its responded_at, and, with the survey sends source, from every send's sent_at, answered or not
-- (without it only answered surveys can be seen).

with

contact_versions as (

    select * from {{ ref('snap_crm__contact_versions') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

sends as (

    select * from {{ ref('int_survey_sends_answered') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

current_contacts as (

    select distinct on (contact_versions.contact_id) contact_versions.*
    from contact_versions
    cross join as_of
    where
        contact_versions.dbt_valid_to is null
        and contact_versions.updated_at < as_of.as_of
    order by contact_versions.contact_id asc, contact_versions.updated_at desc

),

current_accounts as (

    select * from account_versions
    where is_latest_version

),

surveys as (

    -- the surveys a contact got: its answers, and its sends known at as_of, answered or not
    select
        contact_id,
        survey_type,
        surveyed_at
    from responses
    where contact_id is not null

    union all

    select
        contact_id,
        survey_type,
        sent_at as surveyed_at
    from sends
    where contact_id is not null

),

last_surveys as (

    select
        contact_id,
        max(surveyed_at) filter (where survey_type = 'relational') as last_relational_survey_at,
        max(surveyed_at) filter (where survey_type = 'transactional') as last_transactional_survey_at
    from surveys
    group by contact_id

),

rules as (

    select
        current_contacts.contact_id,
        current_contacts.account_id,
        current_contacts.contact_role,
        current_accounts.account_name,
        current_accounts.plan,
        current_accounts.account_owner,
        last_surveys.last_relational_survey_at,
        last_surveys.last_transactional_survey_at,
        last_surveys.last_relational_survey_at
        + interval '{{ var("fatigue_relational_days") }} days' as relational_fatigue_until,
        last_surveys.last_transactional_survey_at
        + interval '{{ var("fatigue_transactional_days") }} days' as transactional_fatigue_until,
        coalesce(current_accounts.churned_at < as_of.as_of, false) as is_account_churned,
        as_of.as_of
    from current_contacts
    cross join as_of
    left join current_accounts
        on current_contacts.account_id = current_accounts.account_id
    left join last_surveys
        on current_contacts.contact_id = last_surveys.contact_id

),

final as (

    select
        -- grain
        contact_id::text as contact_id,

        -- who
        account_id::text as account_id,
        contact_role::text as contact_role,
        account_name::text as account_name,
        plan::text as plan,
        account_owner::text as account_owner,

        -- fatigue
        last_relational_survey_at::timestamptz as last_relational_survey_at,
        last_transactional_survey_at::timestamptz as last_transactional_survey_at,
        coalesce(relational_fatigue_until > as_of, false)::boolean as is_relational_fatigued,
        coalesce(transactional_fatigue_until > as_of, false)::boolean as is_transactional_fatigued,
        is_account_churned::boolean as is_account_churned,
        (
            not is_account_churned
            and not coalesce(relational_fatigue_until > as_of, false)
            and not coalesce(transactional_fatigue_until > as_of, false)
        )::boolean as is_eligible,
        (
            case
                when not is_account_churned
                    then greatest(as_of, relational_fatigue_until, transactional_fatigue_until)
            end
        )::timestamptz as eligible_from,
        as_of::timestamptz as as_of

    from rules

)

select * from final
