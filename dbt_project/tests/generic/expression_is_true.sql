{#
    A boolean SQL expression holds on every row (rows where it is false or null fail), e.g.
        - expression_is_true:
            arguments:
              expression: "is_eligible = not (is_relational_fatigued or is_account_churned)"
#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not coalesce(({{ expression }}), false)

{% endtest %}
