{#
    A total column equals the sum of its parts on every row, e.g.
        - counts_add_up:
            arguments:
              total: responses
              parts: [promoters, passives, detractors]
#}
{% test counts_add_up(model, total, parts) %}

select *
from {{ model }}
where {{ total }} is distinct from (
    {% for part in parts -%}
        coalesce({{ part }}, 0){{ " + " if not loop.last }}
    {%- endfor %}
)

{% endtest %}
