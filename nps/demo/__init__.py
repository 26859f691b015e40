"""Deterministic, seeded demo source generator (daily CSV drops per docs/contracts.md section 1).

Usage::

    from nps.demo.generator import PRESETS, generate
    manifest = generate(Path("data/sources"), PRESETS["demo"])
"""

from nps.demo.generator import PRESETS, GeneratorConfig, generate

__all__ = ["PRESETS", "GeneratorConfig", "generate"]
