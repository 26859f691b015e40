with

source as (

    select * from {{ source('nlp', 'comment_sentiment') }}

),

renamed as (

    select
        -- ids
        response_id,
        text_hash,

        -- sentiment
        sentiment,
        sentiment_score::double precision as sentiment_score,
        method as sentiment_method,
        model as embedding_model,

        -- timestamps
        scored_at,

        -- lineage
        run_id as scored_by_run_id

    from source

)

select * from renamed
