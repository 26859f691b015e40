{#
    Custom schemas are used as-is (no "<target_schema>_" prefix):
    staging models -> staging, intermediate -> intermediate, marts -> var('marts_schema', 'marts').
    Models without a custom schema fall back to the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
