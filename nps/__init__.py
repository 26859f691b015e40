"""Shared code of the NPS feedback-loop pipeline: configuration, warehouse access, CLI, demo data."""

__version__ = "0.1.0"
