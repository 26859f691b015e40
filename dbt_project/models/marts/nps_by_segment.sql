{{
    config(
        indexes=[
            {'columns': ['period_grain', 'period_start', 'segment_type', 'segment_value'], 'unique': true},
            {'columns': ['segment_type', 'segment_value', 'period_grain', 'period_start']},
        ],
    )
}}
{%- set weighting = representative_weighting() %}
{%- set account_attributes = account_attribute_columns() %}
{%- set represented_n = 'nullif(representative_responses, 0)' %}

with

account_attributes as (

    -- the segment types weighted to the active accounts in the segment (int_segment_strata_collapsed)
    {% for column in account_attributes %}
        select '{{ column }}' as segment_type
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

segmented_responses as (

    select * from {{ ref('int_responses_segmented') }}

),

segment_strata as (

    select * from {{ ref('int_segment_strata_collapsed') }}

),

send_rates as (

    -- response rate of the period's survey sends per segment (optional source survey_sends)
    select * from {{ ref('int_survey_sends_rated') }}

),

sends_source as (

    -- one row whatever int_sources_audited holds (null: not known, as not available)
    select bool_or(is_available) as is_sends_available
    from {{ ref('int_sources_audited') }}
    where entity = 'survey_sends'

),

responses_by_period as (

    {% for grain in ['month', 'quarter'] %}
        select
            '{{ grain }}' as period_grain,
            response_{{ grain }} as period_start,
            segment_type,
            segment_value,
            is_promoter,
            is_passive,
            is_detractor,
            coalesce(arr, 0) as arr_weight
        from segmented_responses
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

counted as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        count(*) as responses,
        count(*) filter (where is_promoter) as promoters,
        count(*) filter (where is_passive) as passives,
        count(*) filter (where is_detractor) as detractors,
        sum(
            arr_weight * case when is_promoter then 1 when is_detractor then -1 else 0 end
        ) as arr_weighted_net,
        sum(arr_weight) as arr_weight_total
    from responses_by_period
    group by period_grain, period_start, segment_type, segment_value

),

scored as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        responses,
        promoters,
        passives,
        detractors,
        {{ nps_score('promoters', 'detractors', 'responses') }} as nps,
        {{ nps_margin_of_error('promoters', 'detractors', 'responses') }} as margin_of_error,
        {{ nps_variance('promoters', 'detractors', 'responses') }} as nps_variance,
        (100 * arr_weighted_net / nullif(arr_weight_total, 0))::double precision as revenue_weighted_nps,
        case
            when period_grain = 'month' then (period_start - interval '1 month')::date
            else (period_start - interval '3 months')::date
        end as previous_period_start
    from counted

),

weighted_strata as (

    select
        *,
        population_{{ weighting }}::double precision as population_weight
    from segment_strata

),

represented as (

    -- post-stratification: W_h = N_h / sum of N over the strata with respondents (the weight of a
    -- stratum without respondents is spread over the others in proportion); strata without
    -- population (N_h = 0) weigh nothing and their respondents are not represented. The double
    -- precision sums add the strata in their key order: a float sum depends on its order, and the
    -- order rows reach an aggregate from an incremental table depends on where they sit on disk.
    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        sum(population_accounts) as population_accounts,
        coalesce(sum(responses) filter (where population_weight > 0), 0) as representative_responses,
        coalesce(sum(promoters) filter (where population_weight > 0), 0) as representative_promoters,
        coalesce(sum(detractors) filter (where population_weight > 0), 0) as representative_detractors,
        sum(population_weight order by stratum_level, stratum_key) filter (where responses > 0) as represented_weight,
        sum(
            population_weight * (promoters - detractors)::double precision / nullif(responses, 0)
            order by stratum_level, stratum_key
        ) filter (where responses > 0) as weighted_net,
        sum(
            power(population_weight, 2) * {{ nps_variance('promoters', 'detractors', 'nullif(responses, 0)') }}
            order by stratum_level, stratum_key
        ) filter (where responses > 0) as weighted_variance
    from weighted_strata
    group by period_grain, period_start, segment_type, segment_value

),

representative as (

    select
        period_grain,
        period_start,
        segment_type,
        segment_value,
        population_accounts,
        representative_responses,
        100 * weighted_net / nullif(represented_weight, 0) as representative_nps,
        weighted_variance / power(nullif(represented_weight, 0), 2) as representative_variance,
        (
            weighted_variance / power(nullif(represented_weight, 0), 2)
            / nullif({{ nps_variance('representative_promoters', 'representative_detractors', represented_n) }}, 0)
        ) as representative_design_effect
    from represented

),

compared as (

    -- the same segment in the calendar period before (no row there: no comparison)
    select
        scored.*,
        previous.responses as previous_responses,
        previous.nps as previous_nps,
        scored.nps - previous.nps as nps_change,
        sqrt(power(scored.margin_of_error, 2) + power(previous.margin_of_error, 2)) as change_margin_of_error,
        -- z of the difference of two independent NPS estimates; undefined when both variances are 0
        (scored.nps - previous.nps) / 100
        / nullif(sqrt(scored.nps_variance + previous.nps_variance), 0) as change_z
    from scored
    left join scored as previous
        on
            scored.period_grain = previous.period_grain
            and scored.segment_type = previous.segment_type
            and scored.segment_value = previous.segment_value
            and scored.previous_period_start = previous.period_start

),

tested as (

    select
        *,
        {{ normal_two_sided_p_value('change_z') }} as change_p_value
    from compared

),

ranked as (

    -- Benjamini-Hochberg across the segment rows of a period with a p-value: m tests, rank k by p
    select
        *,
        count(change_p_value) over period_rows as change_tests,
        row_number() over (
            partition by period_grain, period_start
            order by change_p_value asc nulls last, segment_type asc, segment_value asc
        ) as change_p_rank
    from tested
    window period_rows as (partition by period_grain, period_start)

),

discovered as (

    -- the largest k with p_(k) <= k / m x FDR: the k smallest p-values are discoveries
    select
        *,
        max(change_p_rank) filter (
            where change_p_value * change_tests <= change_p_rank * {{ var('nps_change_fdr') }}::double precision
        ) over (partition by period_grain, period_start) as change_discoveries
    from ranked

),

joined as (

    select
        discovered.*,
        representative.population_accounts,
        representative.representative_responses,
        representative.representative_nps,
        representative.representative_variance,
        representative.representative_design_effect,
        case
            when account_attributes.segment_type is not null then 'segment_accounts' else 'all_accounts'
        end as representative_population,
        -- without the sends source the rate is unknown (null), with it a row without sends has 0
        case when sends_source.is_sends_available then coalesce(send_rates.sends, 0) end as sends,
        case
            when sends_source.is_sends_available then coalesce(send_rates.responses_to_sends, 0)
        end as responses_to_sends,
        case when sends_source.is_sends_available then send_rates.response_rate end as response_rate
    from discovered
    cross join sends_source
    left join account_attributes
        on discovered.segment_type = account_attributes.segment_type
    left join representative
        on
            discovered.period_grain = representative.period_grain
            and discovered.period_start = representative.period_start
            and discovered.segment_type = representative.segment_type
            and discovered.segment_value = representative.segment_value
    left join send_rates
        on
            discovered.period_grain = send_rates.period_grain
            and discovered.period_start = send_rates.period_start
            and discovered.segment_type = send_rates.segment_type
            and discovered.segment_value = send_rates.segment_value

),

final as (

    select
        period_grain::text as period_grain,
        period_start::date as period_start,
        segment_type::text as segment_type,
        segment_value::text as segment_value,
        responses::bigint as responses,
        promoters::bigint as promoters,
        passives::bigint as passives,
        detractors::bigint as detractors,
        nps::double precision as nps,
        margin_of_error::double precision as margin_of_error,
        revenue_weighted_nps::double precision as revenue_weighted_nps,
        responses < {{ var('nps_min_n') }} as below_min_n,
        previous_period_start::date as previous_period_start,
        previous_responses::bigint as previous_responses,
        previous_nps::double precision as previous_nps,
        nps_change::double precision as nps_change,
        change_margin_of_error::double precision as change_margin_of_error,
        (abs(nps_change) > change_margin_of_error)::boolean as change_exceeds_margin_of_error,
        change_p_value::double precision as change_p_value,
        (
            case when change_p_value is not null then change_p_rank <= coalesce(change_discoveries, 0) end
        )::boolean as change_is_significant,
        representative_nps::double precision as representative_nps,
        (1.96 * 100 * sqrt(representative_variance))::double precision as representative_margin_of_error,
        representative_design_effect::double precision as representative_design_effect,
        coalesce(representative_responses, 0)::bigint as representative_responses,
        coalesce(population_accounts, 0)::bigint as population_accounts,
        representative_population::text as representative_population,
        '{{ weighting }}'::text as representative_weighting,
        sends::bigint as sends,
        responses_to_sends::bigint as responses_to_sends,
        response_rate::double precision as response_rate
    from joined

)

select * from final
