{#
    An NPS-like column lies in [-100, 100] (nulls pass; pair with not_null where needed).
#}
{% test nps_in_range(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < -100 or {{ column_name }} > 100 or {{ column_name }} = 'NaN'::double precision

{% endtest %}
