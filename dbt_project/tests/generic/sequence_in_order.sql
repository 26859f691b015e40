{#
    The column numbers the rows 1, 2, ..., n, and `sorted_by` never decreases along it (e.g. a
    queue's position follows its priority rank).
        - sequence_in_order:
            arguments:
              sorted_by: priority_rank
#}
{% test sequence_in_order(model, column_name, sorted_by) %}

with numbered as (

    select
        {{ column_name }},
        {{ sorted_by }},
        row_number() over (order by {{ column_name }}) as expected_position,
        lag({{ sorted_by }}) over (order by {{ column_name }}) as previous_value
    from {{ model }}

)

select *
from numbered
where {{ column_name }} <> expected_position or previous_value > {{ sorted_by }}

{% endtest %}
