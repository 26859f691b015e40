-- One row per survey send known at as_of (sent_at < as_of): whether it was answered and by which
-- response, and what segment it falls in as of the send (the account version valid at sent_at, the
-- ARR / tenure / usage bands then, the send's own survey_type and trigger_event). A send is answered
-- when the response its response_id links is known at as_of; a send the export does not link is
-- answered by a known response of the same survey_id and contact_id that came within var
-- send_response_window_days after it and that no send links, each such response answering the
-- latest of those sends (docs/contracts.md section 4). Empty when survey sends are not available.
--
-- Incremental (grain: send_id), by the rules of int_responses_enriched (macros/incremental.sql,
-- docs/incremental.md): a build recomputes the sends loaded since, those as_of has come to include,
-- those whose account's CRM history or usage window changed; and, as answering is decided between the
-- sends and responses of one survey and contact, every send of a survey and contact that has such a
-- send, a response recomputed since, or a send or answering response that is gone.
{%- set settings = [var('usage_lookback_days'), var('arr_band_boundaries'), var('tenure_band_days'),
                    var('usage_band_boundaries'), var('send_response_window_days')] %}
{{
    config(
        materialized='incremental',
        unique_key='send_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=[
            "{{ delete_rows_missing_from(ref('stg_survey__sends'), 'send_id') }}",
            "delete from {{ this }} where sent_at >= (select as_of from {{ ref('int_as_of_resolved') }})",
        ],
        indexes=[
            {'columns': ['send_id'], 'unique': true},
            {'columns': ['answered_by_response_id']},
        ],
    )
}}
{%- set incremental = incremental_with('built_at') %}

with

-- not materialized: read by several CTEs, each filtering it by its indexes
sends as not materialized (

    select * from {{ ref('stg_survey__sends') }}

),

responses as not materialized (

    select * from {{ ref('int_responses_enriched') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

usage_daily as not materialized (

    select * from {{ ref('stg_product__usage_daily') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

account_snapshots as (

    -- incremental builds: which accounts changed since the previous build
    select * from {{ ref('snap_crm__account_versions') }}

),

load_audit as (

    select * from {{ ref('stg_pipeline__load_audit') }}

),

usage_source as (

    select
        is_available as is_usage_available,
        {{ settings_fingerprint(settings, 'is_available') }} as settings_fingerprint
    from sources_audited
    where entity = 'usage_daily'

),

{% if incremental %}
    {{ incremental_event_changes() }}

    changed_sends as (

        -- sends loaded since, that as_of has come to include, or whose account or usage window changed
        select
            sends.send_id,
            sends.survey_id,
            sends.contact_id
        from sends
        cross join previous_build
        cross join as_of
        where
            sends.loaded_at >= previous_build.loaded_after
            or (sends.sent_at >= previous_build.as_of and sends.sent_at < as_of.as_of)

        union

        select
            sends.send_id,
            sends.survey_id,
            sends.contact_id
        from sends
        inner join changed_accounts
            on sends.account_id = changed_accounts.account_id

        union

        select
            sends.send_id,
            sends.survey_id,
            sends.contact_id
        from sends
        inner join changed_usage
            on
                sends.account_id = changed_usage.account_id
                and {{ in_changed_usage_window("(sends.sent_at at time zone 'UTC')::date") }}

    ),

    changed_responses as (

        -- responses int_responses_enriched recomputed since the previous build (new, reloaded, in view)
        select
            responses.response_id,
            responses.survey_id,
            responses.contact_id
        from responses
        cross join previous_build
        where responses.built_at > previous_build.built_at

    ),

    dropped_rows as (

        -- rows of the previous build whose send or answering response is gone
        select
            previous.send_id,
            previous.survey_id,
            previous.contact_id
        from {{ this }} as previous
        left join sends
            on previous.send_id = sends.send_id
        left join responses
            on previous.answered_by_response_id = responses.response_id
        where
            sends.send_id is null
            or (previous.answered_by_response_id is not null and responses.response_id is null)

    ),

    relinked_responses as (

        -- responses a changed send links now or linked before: whether they can be matched moved
        select sends.response_id
        from sends
        inner join changed_sends
            on sends.send_id = changed_sends.send_id

        union

        select previous.response_id
        from {{ this }} as previous
        inner join changed_sends
            on previous.send_id = changed_sends.send_id

    ),

    changed_groups as (

        -- the surveys and contacts within which answering is decided again
        select
            changed_sends.survey_id,
            changed_sends.contact_id
        from changed_sends

        union

        select
            changed_responses.survey_id,
            changed_responses.contact_id
        from changed_responses

        union

        select
            dropped_rows.survey_id,
            dropped_rows.contact_id
        from dropped_rows

        union

        select
            responses.survey_id,
            responses.contact_id
        from responses
        inner join relinked_responses
            on responses.response_id = relinked_responses.response_id

    ),

    recomputed_sends as (

        select changed_sends.send_id
        from changed_sends

        union

        select sends.send_id
        from sends
        inner join changed_groups
            on
                sends.survey_id = changed_groups.survey_id
                and sends.contact_id = changed_groups.contact_id

        union

        -- sends linking a response recomputed since (it may have come into view)
        select sends.send_id
        from sends
        inner join changed_responses
            on sends.response_id = changed_responses.response_id

        union

        select sends.send_id
        from sends
        cross join rebuild
        where rebuild.is_everything

    ),
{% endif %}

known_sends as (

    select
        sends.*,
        (sends.sent_at at time zone 'UTC')::date as send_date
    from sends
    cross join as_of
    where
        sends.sent_at < as_of.as_of
        {% if incremental %}
            -- a semi-join (an "or" here would make PostgreSQL test every row against the list)
            and sends.send_id in (select recomputed_sends.send_id from recomputed_sends)
        {% endif %}

),

linked_answers as (

    -- the export links the response: the send is answered once that response is known
    select
        known_sends.send_id,
        responses.response_id
    from known_sends
    inner join responses
        on known_sends.response_id = responses.response_id

),

linked_responses as (

    -- responses any known send links (not only the sends this build recomputes)
    select distinct sends.response_id
    from sends
    cross join as_of
    where
        sends.response_id is not null
        and sends.sent_at < as_of.as_of

),

matched_candidates as (

    -- unlinked sends: a response of the same survey and contact within the window after the send,
    -- which no send links
    select
        responses.response_id,
        responses.responded_at,
        known_sends.send_id,
        known_sends.sent_at
    from responses
    inner join known_sends
        on
            responses.survey_id = known_sends.survey_id
            and responses.contact_id = known_sends.contact_id
            and responses.responded_at >= known_sends.sent_at
            and responses.responded_at
            <= known_sends.sent_at + interval '{{ var("send_response_window_days") }} days'
    left join linked_responses
        on responses.response_id = linked_responses.response_id
    where
        known_sends.response_id is null
        and linked_responses.response_id is null

),

latest_candidates as (

    -- a response answers the latest of its candidate sends (ties: the greatest send_id)
    select distinct on (response_id)
        response_id,
        responded_at,
        send_id
    from matched_candidates
    order by response_id asc, sent_at desc, send_id collate "C" desc

),

matched_answers as (

    -- a send several responses pick is answered once: by the earliest of them
    select distinct on (send_id)
        send_id,
        response_id
    from latest_candidates
    order by send_id asc, responded_at asc, response_id collate "C" asc

),

usage_before_send as (

    -- sessions per day over [send_date - lookback, send_date - 1], as for a response
    {{ sessions_per_day_before('known_sends', 'send_id', 'known_sends.send_date', incremental) }}

),

joined as (

    select
        known_sends.*,
        coalesce(linked_answers.response_id, matched_answers.response_id) as answered_by_response_id,
        case
            when linked_answers.response_id is not null then 'linked'
            when matched_answers.response_id is not null then 'matched'
        end as answer_source,
        account_versions.plan,
        account_versions.industry,
        account_versions.region,
        account_versions.employee_band,
        account_versions.arr,
        account_versions.account_owner,
        known_sends.send_date - account_versions.customer_since as tenure_days,
        usage_before_send.sessions_per_day,
        as_of.as_of,
        usage_source.settings_fingerprint
    from known_sends
    cross join as_of
    cross join usage_source
    left join linked_answers
        on known_sends.send_id = linked_answers.send_id
    left join matched_answers
        on known_sends.send_id = matched_answers.send_id
    left join account_versions
        on
            known_sends.account_id = account_versions.account_id
            and known_sends.sent_at >= account_versions.valid_from
            and known_sends.sent_at < account_versions.valid_to
    left join usage_before_send
        on known_sends.send_id = usage_before_send.send_id

),

final as (

    select
        -- ids
        send_id,
        survey_id,
        account_id,
        contact_id,
        response_id,

        -- the answer
        answered_by_response_id,
        answered_by_response_id is not null as is_answered,
        answer_source,

        -- survey context
        survey_type,
        trigger_event,
        channel,

        -- time
        sent_at,
        send_date,
        {{ utc_period_start('month', 'sent_at') }} as send_month,
        {{ utc_period_start('quarter', 'sent_at') }} as send_quarter,

        -- account as of the send
        plan,
        industry,
        region,
        employee_band,
        arr,
        account_owner,
        tenure_days,
        sessions_per_day,

        -- bands
        {{ arr_band('arr') }} as arr_band,
        {{ tenure_band('tenure_days') }} as tenure_band,
        {{ usage_band('sessions_per_day') }} as usage_band,

        -- incremental bookkeeping: the send's load, and the build that computed the row
        loaded_at,
        now() as built_at,
        as_of as built_as_of,
        settings_fingerprint as built_settings

    from joined

)

select * from final
