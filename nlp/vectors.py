"""Small vector helpers shared by the theme engine's modules (no heavy imports)."""

from __future__ import annotations

import numpy as np

__all__ = ["from_bytes", "to_bytes", "unit"]


def to_bytes(vec: np.ndarray) -> bytes:
    """float32 little-endian bytes (the ``bytea`` layout of nlp.embeddings / nlp.themes)."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def from_bytes(buf: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(buf), dtype="<f4").astype(np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1 (float32); a zero vector stays zero."""
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)
