"""NPS theme engine: embeddings + HDBSCAN themes with a stable theme registry.

Importing ``nlp`` is cheap (no torch / sentence-transformers / sklearn): ``ThemeConfig`` and
``ThemeEngine`` are resolved lazily, the heavy libraries load on first use of the model.

    from nlp import ThemeEngine, ThemeConfig, redact_pii
    stats = ThemeEngine(ThemeConfig()).run_interval(conn, start, end, run_id)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nlp.text import is_content_free, normalise, redact_pii, text_hash

if TYPE_CHECKING:
    from nlp.pipeline import ThemeConfig, ThemeEngine

__all__ = ["ThemeConfig", "ThemeEngine", "is_content_free", "normalise", "redact_pii", "text_hash"]


def __getattr__(name: str) -> Any:
    if name in ("ThemeConfig", "ThemeEngine"):
        from nlp import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'nlp' has no attribute {name!r}")
