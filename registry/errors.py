"""Errors of the registry's service layer; each one carries its HTTP status and wire code.

    EVChargingError
     └── RegistryError          .status, .code, .message
          ├── InvalidInput      400  invalid_field, invalid_body
          ├── Unauthorized      401  missing_token, invalid_token, invalid_credentials
          ├── NotFound          404  not_found
          ├── Conflict          409  already_registered, not_registered, credential_changed
          └── RateLimited       429  too_many_failures (.retry_after, whole seconds)

The HTTP layer (:mod:`registry.api`) turns any :class:`RegistryError` into
``{"error": code, "message": message}`` with ``status``; nothing else crosses that edge.
"""

from __future__ import annotations

from common.errors import EVChargingError

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "RateLimited",
    "RegistryError",
    "Unauthorized",
]


class RegistryError(EVChargingError):
    """Base of the registry's errors: a status, a short machine code, a human message."""

    status = 500
    default_code = "registry_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message


class InvalidInput(RegistryError):
    """The request is well-formed JSON but a field is missing or out of range."""

    status = 400
    default_code = "invalid_field"


class Unauthorized(RegistryError):
    """No credentials, or wrong ones (token or secret). Never says which part was wrong."""

    status = 401
    default_code = "invalid_credentials"


class NotFound(RegistryError):
    """No charge point has this id."""

    status = 404
    default_code = "not_found"


class Conflict(RegistryError):
    """The charge point is not in a state that allows this (taken, already deregistered)."""

    status = 409
    default_code = "conflict"


class RateLimited(RegistryError):
    """Too many failed attempts for this id or from this address; retry later."""

    status = 429
    default_code = "too_many_failures"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
