"""`omnihub speech install`: a real Vosk model zip is unpacked, loaded and configured; unsafe
or model-less zips are refused and leave nothing behind."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from channels.speech import VoskLiveSpeech, packaged_model_path
from hub.cli import main


def run(*argv: str) -> int:
    return main(["speech", "install", *argv])


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_model_zip_is_unpacked_verified_and_its_setting_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = packaged_model_path()
    archive = tmp_path / "vosk-model-small-ko-0.22.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:  # stored: 260 MB, fast
        for file in sorted(model.rglob("*")):
            out.write(file, f"vosk-model-small-ko-0.22/{file.relative_to(model)}")
    dest = tmp_path / "models"
    assert run(str(archive), "--dest", str(dest)) == 0
    installed = dest / "vosk-model-small-ko-0.22"
    printed = capsys.readouterr().out
    assert f"installed the speech model in {installed.resolve()}" in printed
    assert f'OMNIHUB_SPEECH_MODELS=\'{{"ko": "{installed.resolve()}"}}\'' in printed
    assert (installed / "graph" / "HCLr.fst").stat().st_size == (
        model / "graph" / "HCLr.fst"
    ).stat().st_size
    assert [p.name for p in dest.iterdir()] == [installed.name]  # no staging folder left
    assert VoskLiveSpeech({"ko": installed}).model_path("ko") == installed
    # Installing it again would overwrite a model in use: refused.
    assert run(str(archive), "--dest", str(dest)) == 1
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({"model/am/final.mdl": b"x", "../evil.txt": b"x"}, "points outside its folder"),
        ({"/etc/evil": b"x", "am/final.mdl": b"x"}, "points outside its folder"),
        ({"README": b"a model, honestly"}, "holds no Vosk model"),
        ({"m/am/final.mdl": b"x", "m/conf/mfcc.conf": b""}, "is not a Vosk model: no"),
        (
            {
                "m/am/final.mdl": b"not a Kaldi model",
                "m/conf/mfcc.conf": b"",
                "m/conf/model.conf": b"",
                "m/graph/HCLG.fst": b"not an FST",
            },
            "Vosk cannot load the model",
        ),
    ],
)
def test_unsafe_or_broken_zips_are_refused_and_leave_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], members: dict[str, bytes], error: str
) -> None:
    archive = zip_of(tmp_path / "model.zip", members)
    dest = tmp_path / "models"
    assert run(str(archive), "--dest", str(dest)) == 1
    assert error in capsys.readouterr().err
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_not_a_zip_and_a_bad_language_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "model.zip"
    text.write_text("not a zip")
    assert run(str(text), "--dest", str(tmp_path / "m")) == 1
    assert "is not a zip file" in capsys.readouterr().err
    assert run(str(tmp_path / "missing.zip")) == 1
    assert "no such file" in capsys.readouterr().err
    assert run(str(text), "--language", "../x") == 1
    assert "--language takes a code" in capsys.readouterr().err


def test_an_oversized_model_is_refused(tmp_path: Path) -> None:
    from channels.speech.install import ModelInstallError, install_model

    archive = zip_of(tmp_path / "big.zip", {"m/am/final.mdl": bytes(2048), "m/conf/x": b""})
    with pytest.raises(ModelInstallError, match="over 1024 bytes"):
        install_model(archive, tmp_path / "models", max_bytes=1024)
    assert list((tmp_path / "models").iterdir()) == []
