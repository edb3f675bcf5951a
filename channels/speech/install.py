"""`omnihub speech install PATH.zip`: unpack a Vosk model zip safely and check it loads.

Models come as zips from alphacephei.com/vosk/models (one top folder holding am/, conf/,
graph/, ivector/). Nothing is trusted: members must stay inside the destination (no absolute
paths, no "..", no links), the unpacked size and member count are bounded and counted as the
bytes are written (a zip's declared sizes can lie), and the result must be a complete model
that Vosk actually loads before it is moved into place.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from channels.speech.models import missing_model_files

MAX_UNPACKED_BYTES = 8 * 1024**3  # the largest Vosk models (English, Chinese) unpack to ~3-4 GB
MAX_MEMBERS = 10_000
_CHUNK = 1024 * 1024
_LANGUAGE_ALIASES = {"cn": "zh"}  # alphacephei names its Chinese models "-cn-"
_NOT_LANGUAGES = frozenset({"vosk", "model", "small", "big", "lgraph", "daanzu"})


class ModelInstallError(ValueError):
    """The zip is not a safe, loadable Vosk model; the message says why."""


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """Where a model went and how to use it."""

    path: Path
    language: str | None  # None when neither given nor guessable from the name

    def setting(self) -> str:
        """The `speech_models` entry to configure (environment variable form)."""
        language = self.language or "LL"
        return f'OMNIHUB_SPEECH_MODELS=\'{{"{language}": "{self.path}"}}\''


def install_model(
    archive: Path,
    dest: Path,
    *,
    language: str | None = None,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> InstalledModel:
    """Unpack the model zip `archive` into a new folder under `dest`, verified and loaded.

    ModelInstallError (a ValueError) for anything wrong with the archive; nothing is left
    behind in `dest` then.
    """
    if language is not None and not re.fullmatch(r"[A-Za-z]{2,3}", language):
        raise ModelInstallError(f"--language takes a code such as ko, en or zh, not {language!r}")
    try:
        archive_file = zipfile.ZipFile(archive)
    except FileNotFoundError:
        raise ModelInstallError(f"{archive}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelInstallError(f"{archive} is not a zip file: {exc}") from None
    with archive_file:
        members = archive_file.infolist()
        root = _checked_root(members, max_members)
        name = PurePosixPath(root).name if root else archive.stem
        target = dest / name
        if target.exists():
            raise ModelInstallError(f"{target} exists already; remove it or pass another --dest")
        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=dest))
        try:
            _extract(archive_file, members, root, staging, max_bytes)
            if missing := missing_model_files(staging):
                raise ModelInstallError(f"{archive} is not a Vosk model: no {', '.join(missing)}")
            _check_loads(staging, archive)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return InstalledModel(target.resolve(), _language(language, name))


def _checked_root(members: list[zipfile.ZipInfo], max_members: int) -> str:
    if len(members) > max_members:
        raise ModelInstallError(f"the zip has {len(members)} members, over {max_members}")
    for info in members:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", info.filename):
            raise ModelInstallError(f"the zip member {info.filename!r} points outside its folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelInstallError(f"the zip member {info.filename!r} is a symbolic link")
    roots = {
        str(PurePosixPath(info.filename).parent.parent)
        for info in members
        if PurePosixPath(info.filename).parts[-2:] == ("am", "final.mdl")
    }
    if not roots:
        raise ModelInstallError("the zip holds no Vosk model (no am/final.mdl)")
    if len(roots) > 1:
        raise ModelInstallError(f"the zip holds several models: {', '.join(sorted(roots))}")
    root = roots.pop()
    return "" if root == "." else root


def _extract(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    root: str,
    staging: Path,
    max_bytes: int,
) -> None:
    written = 0
    prefix = f"{root}/" if root else ""
    for info in members:
        if info.is_dir() or not info.filename.startswith(prefix):
            continue  # only the model's own folder
        out = staging / info.filename[len(prefix) :]
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with archive.open(info) as source, out.open("wb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise ModelInstallError(f"the model unpacks to over {max_bytes} bytes")
                    sink.write(chunk)
        # NotImplementedError: zipfile meets a compression method it cannot read
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ModelInstallError(f"cannot unpack {info.filename!r}: {exc}") from None


def _check_loads(folder: Path, archive: Path) -> None:
    import vosk  # loaded here only: the rest of the command needs no speech library

    vosk.SetLogLevel(-2)
    try:
        model = vosk.Model(str(folder))
    except Exception:  # vosk raises a bare Exception("Failed to create a model")
        raise ModelInstallError(f"Vosk cannot load the model in {archive}") from None
    del model  # a one-off check: the hub loads (and shares) it when a call needs it


def _language(given: str | None, name: str) -> str | None:
    if given:
        return given.casefold()
    for token in name.casefold().split("-"):
        if token.isalpha() and 2 <= len(token) <= 3 and token not in _NOT_LANGUAGES:
            return _LANGUAGE_ALIASES.get(token, token)
    return None
