-- One row per account version known at as_of (grain: account_id, updated_at), from the current rows of
-- the SCD2 snapshot, with its business-time validity: from its updated_at until the next version's.
-- The first version is also valid before its updated_at (-infinity), so a response older than every
-- version gets the earliest one (docs/contracts.md section 4).
with

account_versions as (

    select * from {{ ref('snap_crm__account_versions') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

known_versions as (

    select account_versions.*
    from account_versions
    cross join as_of
    where
        account_versions.dbt_valid_to is null
        and account_versions.updated_at < as_of.as_of

),

sequenced as (

    select
        *,
        row_number() over account_history as version_number,
        lead(updated_at) over account_history as next_updated_at
    from known_versions
    window account_history as (partition by account_id order by updated_at asc)

),

final as (

    select
        -- ids
        account_id,
        updated_at,
        version_number,

        -- attributes of the version
        account_name,
        industry,
        region,
        employee_band,
        plan,
        arr,
        arr_currency,
        customer_since,
        account_owner,
        churned_at,

        -- business-time validity [valid_from, valid_to)
        case when version_number = 1 then '-infinity'::timestamptz else updated_at end as valid_from,
        coalesce(next_updated_at, 'infinity'::timestamptz) as valid_to,
        next_updated_at is null as is_latest_version,

        -- lineage
        dbt_scd_id as snapshot_row_id,
        loaded_by_run_id

    from sequenced

)

select * from final
