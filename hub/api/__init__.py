"""The aiohttp application: the one composition root (nothing imports this package)."""

from hub.api.app import create_app

__all__ = ["create_app"]
