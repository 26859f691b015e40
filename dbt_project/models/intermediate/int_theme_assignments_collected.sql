-- One theme assignment per commented response (grain: response_id), as the theme engine wrote it, built
-- incrementally. The engine rewrites old rows (a noise comment assigned later, a merge repointing its
-- comments), so each build re-reads the rows assigned within var incremental_lookback_days of the newest
-- assignment it holds, plus every row written by a run it has not seen, whatever the response's date;
-- rows gone from nlp.comment_themes are deleted (a full refresh gives the same table). Merges are
-- resolved downstream (int_theme_mentions_resolved), never stored here. collected_at (the build's database
-- time) tells int_theme_mentions_resolved which rows a build has (re)written since its own.
{{
    config(
        materialized='incremental',
        unique_key='response_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook=["{{ delete_rows_missing_from(ref('stg_nlp__comment_themes'), 'response_id') }}"],
        indexes=[
            {'columns': ['response_id'], 'unique': true},
            {'columns': ['theme_id']},
            {'columns': ['collected_at']},
        ],
    )
}}

with

{% if is_incremental() %}
    high_water as (

        select max(assigned_at) - interval '{{ var("incremental_lookback_days") }} days' as assigned_after
        from {{ this }}

    ),

    collected_runs as (

        select distinct assigned_by_run_id
        from {{ this }}
        where assigned_by_run_id is not null

    ),
{% endif %}

comment_themes as (

    select staged.*
    from {{ ref('stg_nlp__comment_themes') }} as staged
    {% if is_incremental() %}
        cross join high_water
        left join collected_runs
            on staged.assigned_by_run_id = collected_runs.assigned_by_run_id
        where
            staged.assigned_at >= high_water.assigned_after
            -- written by a run not collected yet (e.g. a merge repointing old rows keeps assigned_at)
            or collected_runs.assigned_by_run_id is null
    {% endif %}

),

collected as (

    select
        -- ids
        response_id,
        theme_id,
        text_hash,

        -- assignment
        assignment_method,
        confidence,
        embedding_model,
        theme_id is not null as is_themed,

        -- timestamps / lineage
        assigned_at,
        assigned_by_run_id,
        now() as collected_at

    from comment_themes

)

select * from collected
