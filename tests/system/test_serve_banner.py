"""What `omnihub serve` prints once it listens: every page the README lists, the demo logins,
and the routing hint only when routing is on."""

from __future__ import annotations

from pathlib import Path

from hub.cli import banner_lines
from hub.config import Settings


def test_banner_names_every_page_and_the_demo_logins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=8080)
    text = "\n".join(banner_lines(settings, routing=False))
    for path in ("/demo", "/inbox", "/kb", "/help", "/api/openapi.json"):
        assert f"http://127.0.0.1:8080{path}\n" in text + "\n", text
    assert "agent@demo.omnihub.test / omnihub-demo" in text
    assert "editor@demo.omnihub.test / omnihub-demo" in text
    assert "lin@demo.omnihub.test" not in text and "Available" not in text  # single agent


def test_banner_with_the_routing_demo(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, demo_routing=True)
    text = "\n".join(banner_lines(settings, routing=True))
    assert "lin@demo.omnihub.test / omnihub-demo" in text
    assert "choose Available in the inbox header" in text
    no_demo = "\n".join(banner_lines(Settings(data_dir=tmp_path, demo=False), routing=False))
    assert "login" not in no_demo and "/help" in no_demo
