{#
    The combination of columns is unique (a table's grain / primary key).
    Usage (model level):
        data_tests:
          - unique_combination:
              arguments:
                combination_of_columns: [a, b, c]
#}
{% test unique_combination(model, combination_of_columns) %}

with grouped as (

    select
        {% for column_name in combination_of_columns -%}
            {{ column_name }},
        {% endfor -%}
        count(*) as n_rows
    from {{ model }}
    group by {% for column_name in combination_of_columns -%}
        {{ column_name }}{{ ", " if not loop.last }}
    {%- endfor %}

)

select *
from grouped
where n_rows > 1

{% endtest %}
