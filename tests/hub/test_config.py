"""Settings from the environment and a TOML file; errors name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_settings
from hub.errors import ConfigError


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OMNIHUB_DATABASE_URL", "OMNIHUB_REDIS_URL", "OMNIHUB_PORT", "OMNIHUB_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.port == 8080 and s.redis_url is None
    assert (
        s.effective_database_url.startswith("sqlite:///")
        and "omnihub.sqlite3" in s.effective_database_url
    )


def test_environment_overrides_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "omnihub.toml"
    cfg.write_text('port = 9000\nmax_text_chars = 500\ndatabase_url = "postgresql://u@h/db"\n')
    monkeypatch.setenv("OMNIHUB_CONFIG", str(cfg))
    monkeypatch.setenv("OMNIHUB_PORT", "9001")
    s = load_settings()
    assert (s.port, s.max_text_chars) == (9001, 500)
    assert s.effective_database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("OMNIHUB_PORT", "abc", "OMNIHUB_PORT"),
        ("OMNIHUB_PORT", "70000", "OMNIHUB_PORT"),
        ("OMNIHUB_MAX_TEXT_CHARS", "0", "OMNIHUB_MAX_TEXT_CHARS"),
        ("OMNIHUB_LOG_LEVEL", "loud", "OMNIHUB_LOG_LEVEL"),
        ("OMNIHUB_DEMO", "maybe", "OMNIHUB_DEMO"),
        ("OMNIHUB_ACTION_SERVER_TOKEN", "short", "OMNIHUB_ACTION_SERVER_TOKEN"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_bad_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("port = [unclosed\n")
    monkeypatch.setenv("OMNIHUB_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings()
    monkeypatch.setenv("OMNIHUB_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="OMNIHUB_CONFIG"):
        load_settings()
    cfg.write_text("no_such_setting = 1\n")
    monkeypatch.setenv("OMNIHUB_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings()


def test_the_action_server_token_is_off_when_blank_and_kept_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIHUB_ACTION_SERVER_TOKEN", "")
    assert load_settings().action_server_token is None  # the /webhook endpoint stays off
    monkeypatch.setenv("OMNIHUB_ACTION_SERVER_TOKEN", "a" * 32)
    s = load_settings()
    assert s.action_server_token is not None
    assert s.action_server_token.get_secret_value() == "a" * 32
    assert "a" * 32 not in repr(s)  # never printed with the settings
