-- The outcomes of nps_outcomes counted per account (grain: account_id, horizon_days, segment_type,
-- segment_value, nps_category): what happened to the account within horizon_days after each of its
-- responses whose horizon has fully passed by as_of, by the response's NPS category and segment (as
-- of the response). nps_outcomes adds these rows up; an account counts once per row in its
-- distinct_accounts. No rows when CRM accounts are not available (not configured).
--
-- Incremental by account (docs/incremental.md): each account carries a fingerprint of everything its
-- rows are computed from (its matured responses as int_responses_enriched last computed them, how
-- many have matured at each horizon, its CRM versions, the settings and this model's SQL); a build
-- recomputes the accounts whose fingerprint changed. A response too recent to have matured changes
-- nothing, so a night recomputes the accounts whose responses crossed a horizon or changed, not every
-- account that answered.
{%- set horizons = outcome_horizons() %}
{{
    config(
        materialized='incremental',
        unique_key='account_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook=["{{ delete_outcomes_without_matured_responses() }}"],
        indexes=[
            {'columns': ['account_id', 'horizon_days', 'segment_type', 'segment_value', 'nps_category'],
             'unique': true},
        ],
    )
}}
{%- set incremental = incremental_with('account_fingerprint') %}

with

-- not materialized: read by the fingerprints in full and by the recompute through its account index
responses as not materialized (

    select * from {{ ref('int_responses_enriched') }}

),

segmented_responses as not materialized (

    select * from {{ ref('int_responses_segmented') }}

),

account_versions as not materialized (

    select * from {{ ref('int_account_versions_windowed') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

sources_audited as (

    select * from {{ ref('int_sources_audited') }}

),

horizons as (

    select horizon_days
    from (
        values
        {% for days in horizons -%}
            ({{ days }}){{ "," if not loop.last }}
        {% endfor %}
    ) as horizons (horizon_days)

),

accounts_available as (

    -- without CRM accounts (not configured) churn and expansion cannot be seen: no rows, rather than a
    -- churn rate of 0 (marts.source_coverage says why the mart is empty)
    select coalesce(bool_or(is_available), false) as is_available
    from sources_audited
    where entity = 'accounts'

),

response_prints as (

    -- per account: its responses matured at the shortest horizon (those at a longer one are among
    -- them), when int_responses_enriched last computed each, and how many matured at each horizon
    select
        responses.account_id,
        count(*) as matured_responses,
        {{ row_fingerprint_sum(['responses.response_id', 'responses.built_at', 'responses.responded_at']) }}
            as responses_print,
        concat_ws(
            ',',
            {% for days in horizons -%}
                count(*) filter (
                    where responses.responded_at + make_interval(days => {{ days }}) <= as_of.as_of
                ){{ "," if not loop.last }}
            {% endfor %}
        ) as matured_by_horizon
    from responses
    cross join as_of
    where responses.responded_at + make_interval(days => {{ horizons | min }}) <= as_of.as_of
    group by responses.account_id

),

version_prints as (

    -- per account: the CRM versions the ARR at a horizon's end is read from
    select
        account_id,
        {{ row_fingerprint_sum(['valid_from', 'valid_to', 'arr']) }} as versions_print
    from account_versions
    group by account_id

),

account_prints as (

    select
        response_prints.account_id,
        md5(concat_ws(
            '|',
            {{ settings_fingerprint([horizons, segment_types()], 'select is_available from accounts_available') }},
            response_prints.matured_responses,
            response_prints.responses_print,
            response_prints.matured_by_horizon,
            version_prints.versions_print
        )) as account_fingerprint
    from response_prints
    left join version_prints
        on response_prints.account_id = version_prints.account_id

),

recomputed_accounts as (

    -- the accounts whose fingerprint differs from the one their rows were built with (the first of
    -- an account's rows, found through the index: a lateral probe per account, where an anti-join
    -- would sort every stored row)
    select
        account_prints.account_id,
        account_prints.account_fingerprint
    from account_prints
    cross join accounts_available
    {% if incremental %}
        left join lateral (
            select previous.account_fingerprint
            from {{ this }} as previous
            where previous.account_id = account_prints.account_id
            -- the unique index's order: the first entry (all of an account's rows share its fingerprint)
            order by previous.horizon_days, previous.segment_type, previous.segment_value, previous.nps_category
            limit 1
        ) as previous on true
    {% endif %}
    where
        accounts_available.is_available
        {% if incremental %}
            and previous.account_fingerprint is distinct from account_prints.account_fingerprint
        {% endif %}

),

matured as (

    select
        responses.response_id,
        responses.account_id,
        responses.responded_at,
        responses.arr as arr_at_response,
        responses.latest_churned_at,
        horizons.horizon_days,
        responses.responded_at + make_interval(days => horizons.horizon_days) as horizon_end
    from responses
    cross join horizons
    cross join as_of
    where
        -- an array, not a join: PostgreSQL cannot tell how few accounts changed (it guessed all of
        -- them, and computed every account's rows at 1M responses: 165 s for 980 accounts); as a
        -- parameter it reads their responses through the account index
        responses.account_id = any((select array_agg(recomputed_accounts.account_id) from recomputed_accounts)::text[])
        and responses.responded_at + make_interval(days => horizons.horizon_days) <= as_of.as_of

),

outcomes as (

    select
        matured.*,
        account_versions.arr as arr_at_horizon,
        coalesce(
            matured.latest_churned_at >= matured.responded_at
            and matured.latest_churned_at <= matured.horizon_end,
            false
        ) as is_churned
    from matured
    left join account_versions
        on
            matured.account_id = account_versions.account_id
            and matured.horizon_end >= account_versions.valid_from
            and matured.horizon_end < account_versions.valid_to

),

classified as (

    select
        *,
        not is_churned and arr_at_horizon > arr_at_response as is_expanded,
        not is_churned and arr_at_horizon < arr_at_response as is_contracted,
        case when is_churned then 0 else coalesce(arr_at_horizon, 0) end as arr_retained
    from outcomes

),

counted as (

    select
        classified.account_id,
        classified.horizon_days,
        segmented_responses.segment_type,
        segmented_responses.segment_value,
        segmented_responses.nps_category,
        count(*) as responses,
        count(*) filter (where classified.is_churned) as churned,
        count(*) filter (where classified.is_expanded) as expanded,
        count(*) filter (where classified.is_contracted) as contracted,
        sum(coalesce(classified.arr_at_response, 0)) as arr_at_response,
        sum(classified.arr_retained) as arr_retained
    from classified
    inner join segmented_responses
        on classified.response_id = segmented_responses.response_id
    group by
        classified.account_id,
        classified.horizon_days,
        segmented_responses.segment_type,
        segmented_responses.segment_value,
        segmented_responses.nps_category

),

final as (

    select
        counted.account_id::text as account_id,
        counted.horizon_days::integer as horizon_days,
        counted.segment_type::text as segment_type,
        counted.segment_value::text as segment_value,
        counted.nps_category::text as nps_category,
        counted.responses::bigint as responses,
        counted.churned::bigint as churned,
        counted.expanded::bigint as expanded,
        counted.contracted::bigint as contracted,
        counted.arr_at_response::numeric as arr_at_response,
        counted.arr_retained::numeric as arr_retained,
        recomputed_accounts.account_fingerprint
    from counted
    inner join recomputed_accounts
        on counted.account_id = recomputed_accounts.account_id

)

select * from final
