{#
    A column has one value per group (nulls aside): a value that describes the whole group and is
    repeated on each of its rows, e.g. a period and segment's SLA attainment on its four bucket
    rows. Without group_by, one value in the whole table (e.g. the build's as_of).
        - same_within:
            arguments:
              group_by: [period_grain, period_start, segment_type, segment_value]
#}
{% test same_within(model, column_name, group_by=[]) %}

select
    {% for column in group_by -%}
        {{ column }},
    {% endfor -%}
    count(distinct {{ column_name }}) as distinct_values
from {{ model }}
{% if group_by -%}
    group by {{ group_by | join(", ") }}
{%- endif %}
having count(distinct {{ column_name }}) > 1

{% endtest %}
