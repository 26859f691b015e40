"""Airflow-side glue of the NPS pipeline: source connectors, dbt and Great Expectations steps.

Modules here import heavy libraries inside functions only: the DAG file imports them at parse time.
"""
