{#
    Representative (post-stratified) NPS and the significance of period-over-period changes
    (marts.nps_by_segment; docs/contracts.md section 4).
#}

{#- The account attributes an active-account population knows at a period end (columns of
    int_active_accounts_snapshotted, named as the segment types): a segment type in this list is
    post-stratified over the active accounts IN the segment, any other one (overall, usage_band,
    survey_type, trigger_event) over all active accounts. Strata are chosen among them. -#}
{% macro account_attribute_columns() -%}
    {{ return(['plan', 'arr_band', 'tenure_band', 'industry', 'region', 'employee_band', 'account_owner']) }}
{%- endmacro %}


{#- Var representative_strata (default [plan, region]): the account attributes whose combinations are
    the post-stratification strata, coarsest first (collapsing drops them from the last). -#}
{% macro representative_strata() -%}
    {%- set strata = var('representative_strata') -%}
    {%- if strata is string -%}
        {%- set strata = [strata] -%}
    {%- endif -%}
    {%- if execute -%}
        {%- if strata | length == 0 -%}
            {{ exceptions.raise_compiler_error("var representative_strata: name at least one account attribute") }}
        {%- endif -%}
        {%- for column in strata if column not in account_attribute_columns() -%}
            {%- set known = account_attribute_columns() | join(', ') -%}
            {{ exceptions.raise_compiler_error("var representative_strata: '" ~ column ~ "' is not one of " ~ known) }}
        {%- endfor -%}
    {%- endif -%}
    {{ return(strata) }}
{%- endmacro %}


{#- Var representative_weighting: 'accounts' (each active account weighs 1, the default) or 'arr'
    (each weighs its ARR at the period end). -#}
{% macro representative_weighting() -%}
    {%- set weighting = var('representative_weighting') -%}
    {%- if execute and weighting not in ['accounts', 'arr'] -%}
        {%- set message = "var representative_weighting must be 'accounts' or 'arr', not '" ~ weighting ~ "'" -%}
        {{ exceptions.raise_compiler_error(message) }}
    {%- endif -%}
    {{ return(weighting) }}
{%- endmacro %}


{#- The stratum of a row as a text array, one element per stratum attribute (null -> 'unknown'). -#}
{% macro stratum_key(relation) -%}
    {%- set values = [] -%}
    {%- for column in representative_strata() -%}
        {%- set _ = values.append('coalesce(' ~ relation ~ '.' ~ column ~ "::text, 'unknown')") -%}
    {%- endfor -%}
    array[{{ values | join(', ') }}]
{%- endmacro %}


{#- Variance of an NPS estimate (in squared proportions, i.e. of the mean of the +1 / 0 / -1 score):
    with p = promoters / n and d = detractors / n, (p + d - (p - d)^2) / n. -#}
{% macro nps_variance(promoters, detractors, responses) -%}
    greatest(
        (
            {{ promoters }}::double precision / {{ responses }}
            + {{ detractors }}::double precision / {{ responses }}
            - power(
                {{ promoters }}::double precision / {{ responses }}
                - {{ detractors }}::double precision / {{ responses }},
                2
            )
        ) / {{ responses }},
        0
    )
{%- endmacro %}


{#- A polynomial in Horner form: coefficients highest power first; leading_one prepends a
    coefficient 1 (Cephes' p1evl). -#}
{% macro horner(x, coefficients, leading_one=false) -%}
    {%- set ns = namespace(expression=('1.0' if leading_one else coefficients[0] | string)) -%}
    {%- for coefficient in (coefficients if leading_one else coefficients[1:]) -%}
        {%- set ns.expression = '(' ~ ns.expression ~ ') * ' ~ x ~ ' + ' ~ coefficient -%}
    {%- endfor -%}
    ({{ ns.expression }})
{%- endmacro %}


{#-
    Two-sided p-value of a standard normal z statistic, 2 (1 - Phi(|z|)) = erfc(|z| / sqrt 2), in
    pure SQL (PostgreSQL 15 has no erf). erfc is Cephes' ndtr.c approximation (S. L. Moshier,
    the rational functions scipy.special.erfc is built on): |x| < 1: 1 - x T(x^2) / U(x^2);
    1 <= x < 8: exp(-x^2) P(x) / Q(x); 8 <= x < 26: exp(-x^2) R(x) / S(x); x >= 26: 0 (below
    1e-295; exp would underflow). Relative error below 1e-15 against scipy on [0, 8), absolute
    error below 1e-28 beyond. `z` should be a column or a cheap expression (it is repeated).
-#}
{% macro normal_two_sided_p_value(z) -%}
    {%- set x = '(abs(' ~ z ~ ') * 0.7071067811865475244)' -%}
    {%- set erf_t = ['9.60497373987051638749E0', '9.00260197203842689217E1', '2.23200534594684319226E3',
                     '7.00332514112805075473E3', '5.55923013010394962768E4'] -%}
    {%- set erf_u = ['3.35617141647503099647E1', '5.21357949780152679795E2', '4.59432382970980127987E3',
                     '2.26290000613890934246E4', '4.92673942608635921086E4'] -%}
    {%- set erfc_p = ['2.46196981473530512524E-10', '5.64189564831068821977E-1', '7.46321056442269912687E0',
                      '4.86371970985681366614E1', '1.96520832956077098242E2', '5.26445194995477358631E2',
                      '9.34528527171957607540E2', '1.02755188689515710272E3', '5.57535335369399327526E2'] -%}
    {%- set erfc_q = ['1.32281951154744992508E1', '8.67072140885989742329E1', '3.54937778887819891062E2',
                      '9.75708501743205489753E2', '1.82390916687909736289E3', '2.24633760818710981792E3',
                      '1.65666309194161350182E3', '5.57535340817727675546E2'] -%}
    {%- set erfc_r = ['5.64189583547755073984E-1', '1.27536670759978104416E0', '5.01905042251180477414E0',
                      '6.16021097993053585195E0', '7.40974269950448939160E0', '2.97886665372100240670E0'] -%}
    {%- set erfc_s = ['2.26052863220117276590E0', '9.39603524938001434673E0', '1.20489539808096656605E1',
                      '1.70814450747565897222E1', '9.60896809063285878198E0', '3.36907645100081516050E0'] -%}
    {%- set x2 = '(' ~ x ~ ' * ' ~ x ~ ')' -%}
    (
        case
            when {{ z }} is null then null
            when {{ x }} < 1
                then 1 - {{ x }} * {{ horner(x2, erf_t) }} / {{ horner(x2, erf_u, leading_one=true) }}
            when {{ x }} < 8
                then exp(-{{ x2 }}) * {{ horner(x, erfc_p) }} / {{ horner(x, erfc_q, leading_one=true) }}
            when {{ x }} < 26
                then exp(-{{ x2 }}) * {{ horner(x, erfc_r) }} / {{ horner(x, erfc_s, leading_one=true) }}
            else 0
        end
    )::double precision
{%- endmacro %}
