{#
    On every row, column_name <= other_column (e.g. recovered <= with_next_response).
#}
{% test not_greater_than(model, column_name, other_column) %}

select {{ column_name }}, {{ other_column }}
from {{ model }}
where {{ column_name }} > {{ other_column }}

{% endtest %}
