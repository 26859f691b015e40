"""Embedding backends (nlp/onnx_embed.py): ONNX Runtime vectors match sentence-transformers on torch,
and the graphs are built from the packaged MiniLM with the network cut (nothing downloads).

The ONNX graphs are exported once per session into a fresh cache directory (a few seconds), with
every TCP/UDP connect raising; the rest runs on them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEXTS = [
    "The new dashboard is great, but exports to Excel keep timing out.",
    "support never answered my ticket",
    "Billing charged us twice this month!!",
    "ok",
    "",
    "La aplicación se cierra cuando subo un archivo grande.",
    "call me at [phone] or mail [email] about the renewal",
    # longer than max_seq_length (256 tokens): truncated alike by both backends
    " ".join(["the onboarding took far too long and nobody from the team followed up"] * 30),
]


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """torch / onnx / onnx-int8 embedders and their vectors of TEXTS; the ONNX graphs built in a fresh
    cache with the network cut."""
    from nlp.embed import Embedder

    cache = tmp_path_factory.mktemp("onnx-cache")
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def no_network(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network access while building the embedding backends: {address}")
        return real_connect(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NPS_THEME_ONNX_CACHE", str(cache))
        mp.setattr(socket.socket, "connect", no_network)
        embedders = {b: Embedder(backend=b) for b in ("torch", "onnx", "onnx-int8")}
        vectors = {b: e.encode(TEXTS) for b, e in embedders.items()}
        offline = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return {"cache": cache, "attempts": attempts, "embedders": embedders, "vectors": vectors, "offline": offline}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_built_offline_from_the_packaged_model(backends: dict[str, Any]) -> None:
    assert backends["attempts"] == []
    assert backends["offline"] == ("1", "1")
    built = sorted(p.name for p in Path(backends["cache"]).glob("*.onnx"))
    assert len(built) == 2 and any("-int8-" in n for n in built), built
    assert not list(Path(backends["cache"]).glob("*.tmp"))


def test_onnx_matches_torch(backends: dict[str, Any]) -> None:
    torch_v, onnx_v = backends["vectors"]["torch"], backends["vectors"]["onnx"]
    assert onnx_v.dtype == np.float32 and onnx_v.shape == torch_v.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(onnx_v, axis=1), 1.0, atol=1e-5)
    assert _cos(torch_v, onnx_v).min() > 0.9999
    np.testing.assert_allclose(onnx_v, torch_v, atol=2e-4)


def test_int8_close_to_torch(backends: dict[str, Any]) -> None:
    """int8 moves the vectors a little (bench/bench_embed_backends.py: mean cosine ~0.99 on real
    comments), which is why it has its own model key."""
    cos = _cos(backends["vectors"]["torch"], backends["vectors"]["onnx-int8"])
    assert cos.min() > 0.95 and cos.mean() > 0.98, cos


def test_onnx_rows_do_not_depend_on_the_batch(backends: dict[str, Any]) -> None:
    """Sorting by length, padding and restoring the order: a text alone (one thread, no padding)
    gets the row it gets in a batch. Not quite for int8, whose activations are quantised with one
    scale per batch: a row moves a little with the batch around it."""
    emb = backends["embedders"]["onnx"]
    alone = np.vstack([emb.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(alone, backends["vectors"]["onnx"], atol=1e-5)
    assert emb.encode([]).shape == (0, 384)
    int8 = backends["embedders"]["onnx-int8"]
    alone = np.vstack([int8.encode([t]) for t in TEXTS])
    cos = _cos(alone, backends["vectors"]["onnx-int8"])
    assert cos.min() > 0.93 and cos.mean() > 0.97, cos  # "ok" alone: 0.954 (onnxruntime 1.30)


def test_each_backend_has_its_own_model_key(backends: dict[str, Any]) -> None:
    from nlp.embed import EmbeddingCache, model_key

    keys = {b: e.key for b, e in backends["embedders"].items()}
    assert keys == {"torch": "all-MiniLM-L6-v2", "onnx": "all-MiniLM-L6-v2@onnx",
                    "onnx-int8": "all-MiniLM-L6-v2@onnx-int8"}
    assert EmbeddingCache(backends["embedders"]["onnx-int8"]).model == keys["onnx-int8"]
    assert model_key("/models/my-model", "onnx") == "my-model@onnx"


def test_backend_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlp.embed import Embedder

    monkeypatch.setenv("NPS_THEME_BACKEND", "onnx-int8")
    assert Embedder().backend == "onnx-int8"
    assert Embedder(backend="torch").backend == "torch"
    monkeypatch.setenv("NPS_THEME_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder()
    with pytest.raises(ValueError, match="CPU only"):
        Embedder(backend="onnx", device="cuda")
    monkeypatch.delenv("NPS_THEME_BACKEND")
    assert Embedder().backend == "torch"


def test_graphs_are_reused(backends: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load finds the exported graphs by the model's hash: no export, no quantisation."""
    from nlp import onnx_embed
    from nlp.embed import resolve_model_path

    def refuse(*_: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setenv("NPS_THEME_ONNX_CACHE", str(backends["cache"]))
    monkeypatch.setattr(onnx_embed, "export_fp32", refuse)
    monkeypatch.setattr(onnx_embed, "quantize_int8", refuse)
    enc = onnx_embed.OnnxEncoder(resolve_model_path(), "onnx-int8")
    # the same batch (int8 quantises activations per batch: another batch moves a row a little)
    np.testing.assert_allclose(enc.encode(TEXTS), backends["vectors"]["onnx-int8"], atol=1e-5)
