"""Registration with the Registry over HTTPS, the server checked against a CA file.

Blocking (requests); the monitor calls it in a worker thread. Every failure becomes a
:class:`RegistryError` with one line a user can act on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import requests

from common.chargepoint.errors import RegistryError

__all__ = ["RegistryClient"]

TIMEOUT = 10.0
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class RegistryClient:
    """Args: url: ``https://host:port``; ca: the Registry's CA file (None: system CAs)."""

    def __init__(self, url: str, ca: Path | None, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.ca = ca
        self.timeout = timeout

    def _request(self, method: str, path: str, token: str, **kw: Any) -> requests.Response:
        verify: str | bool = str(self.ca) if self.ca is not None else True
        try:
            return requests.request(
                method,
                f"{self.url}/api{path}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
                verify=verify,
                **kw,
            )
        except requests.exceptions.SSLError:
            raise RegistryError(
                f"The Registry at {self.url} is not the one its CA file vouches for "
                "(certificate not trusted): check --registry-ca / EV_REGISTRY_CA"
            ) from None
        except OSError as exc:  # requests' ConnectionError, Timeout, a bad CA path...
            reason = "timed out" if isinstance(exc, requests.Timeout) else _short(exc)
            raise RegistryError(
                f"Cannot reach the Registry at {self.url}: {reason}", retriable=True
            ) from None

    def register(self, cp_id: str, location: str, token: str) -> str:
        """Register ``cp_id`` at ``location``; returns the secret (shown only this once)."""
        response = self._request(
            "POST", "/chargepoints", token, json={"id": cp_id, "location": location}
        )
        if response.status_code == 201:
            secret = _json(response).get("secret")
            if isinstance(secret, str) and secret:
                return secret
            raise RegistryError("The Registry answered without a secret")
        if response.status_code == 409:
            raise RegistryError(
                f"{cp_id} is already registered: use its secret file, or deregister it first"
            )
        if response.status_code in (401, 403):
            raise RegistryError("The Registry refused the provisioning token")
        raise _failure("register", response)

    def deregister(self, cp_id: str, secret: str) -> None:
        response = self._request("DELETE", f"/chargepoints/{cp_id}", secret)
        if response.status_code == 204:
            return
        if response.status_code == 404:
            raise RegistryError(f"{cp_id} is not registered")
        if response.status_code in (401, 403):
            raise RegistryError(f"The Registry refused {cp_id}'s secret")
        raise _failure("deregister", response)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _failure(what: str, response: requests.Response) -> RegistryError:
    message = _json(response).get("message") or response.reason
    retriable = response.status_code in (429, 502, 503, 504)
    return RegistryError(
        f"Cannot {what}: the Registry answered {response.status_code} ({message})",
        retriable=retriable,
    )


def _short(exc: BaseException) -> str:
    # requests buries the socket error in a long repr; its "[Errno N] text" says it best.
    found = _ERRNO.search(str(exc))
    return found.group(1).strip() if found else "connection failed"
