-- One row per period (UTC month / quarter with a response) and account active at its end (grain:
-- period_grain, period_start, account_id): the population a representative NPS is weighted to. The
-- period's end is population_at = least(next period start, as_of); the account's attributes are
-- those of its version valid just before it (updated_at < population_at, else the earliest version,
-- as every as-of lookup); active = customer_since (when set) before population_at and churned_at of
-- that version null or not before population_at (docs/contracts.md section 4).
with

responses as (

    select * from {{ ref('int_responses_enriched') }}

),

account_versions as (

    select * from {{ ref('int_account_versions_windowed') }}

),

as_of as (

    select * from {{ ref('int_as_of_resolved') }}

),

periods as (

    {% for grain in ['month', 'quarter'] %}
        select distinct
            '{{ grain }}' as period_grain,
            response_{{ grain }} as period_start
        from responses
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

period_ends as (

    select
        periods.period_grain,
        periods.period_start,
        least(
            (
                periods.period_start
                + case when periods.period_grain = 'month' then interval '1 month' else interval '3 months' end
            )::timestamp at time zone 'UTC',
            as_of.as_of
        ) as population_at
    from periods
    cross join as_of

),

versions_at_period_end as (

    -- the version valid at the last instant before population_at: valid_from < t <= valid_to
    select
        period_ends.period_grain,
        period_ends.period_start,
        period_ends.population_at,
        account_versions.account_id,
        account_versions.updated_at as account_version_updated_at,
        account_versions.plan,
        account_versions.industry,
        account_versions.region,
        account_versions.employee_band,
        account_versions.arr,
        account_versions.account_owner,
        account_versions.customer_since,
        account_versions.churned_at,
        ((period_ends.population_at - interval '1 microsecond') at time zone 'UTC')::date
        - account_versions.customer_since as tenure_days
    from period_ends
    inner join account_versions
        on
            period_ends.population_at > account_versions.valid_from
            and period_ends.population_at <= account_versions.valid_to

),

final as (

    select
        -- grain
        period_grain,
        period_start,
        account_id,

        -- when
        population_at,
        account_version_updated_at,

        -- the account at the period end
        plan,
        industry,
        region,
        employee_band,
        arr,
        account_owner,
        customer_since,
        tenure_days,

        -- bands (the segment types' definitions, on the state at the period end)
        {{ arr_band('arr') }} as arr_band,
        {{ tenure_band('tenure_days') }} as tenure_band

    from versions_at_period_end
    where
        (customer_since is null or customer_since < (population_at at time zone 'UTC'))
        and (churned_at is null or churned_at >= population_at)

)

select * from final
