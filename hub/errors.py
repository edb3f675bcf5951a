"""Errors with a stable machine code and the HTTP status the API answers with.

Defined in the core so services raise them without knowing about HTTP; the API layer maps
`status` to the response.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub reports to a client."""

    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequest(HubError):
    code = "invalid_request"
    status = 400


class ValidationFailed(HubError):
    code = "validation_failed"
    status = 422


class TooLarge(HubError):
    code = "too_large"
    status = 413


class NotAuthenticated(HubError):
    code = "not_authenticated"
    status = 401


class InvalidToken(HubError):
    code = "invalid_token"
    status = 401


class Forbidden(HubError):
    code = "forbidden"
    status = 403


class NotFound(HubError):
    code = "not_found"
    status = 404


class InvalidTransition(HubError):
    code = "invalid_transition"
    status = 409


class Unavailable(HubError):
    """A part the request needs is restarting; the same request can be sent again."""

    code = "unavailable"
    status = 503


class ConfigError(Exception):
    """A setting is wrong; start-up stops with this message, which names the setting."""
