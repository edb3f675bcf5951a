"""Email and fax-to-email channels (docs/email.md)."""

from channels.email.channel import EmailChannel

__all__ = ["EmailChannel"]
