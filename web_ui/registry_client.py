"""Registering a charge point through the Registry (HTTPS, certificate checked).

The Registry's certificate is verified against the pinned CA file (``EV_REGISTRY_CA``),
or the system's CAs when none is given; verification is never turned off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from web_ui.errors import UpstreamRejected, UpstreamUnavailable

__all__ = ["RegistryClient"]

SERVICE = "Registry"


class RegistryClient:
    """``POST /api/chargepoints`` on the Registry.

    Args:
        base_url: ``EV_REGISTRY_URL``, e.g. ``https://127.0.0.1:8443``.
        ca_file: the Registry's CA certificate (PEM); None uses the system's CAs.
        token: the provisioning token, or the operator token (both may register).
        timeout: seconds for connecting and for the answer.
    """

    def __init__(
        self, base_url: str, ca_file: Path | None, token: str, *, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/api")
        self._verify: str | bool = str(ca_file) if ca_file is not None else True
        self._token = token
        self._timeout = timeout

    def register(self, cp_id: str, location: str, price: str | None = None) -> dict[str, Any]:
        """Register a CP; returns ``{id, location, ..., secret}`` (the secret, once).

        Raises:
            UpstreamUnavailable: the Registry did not answer, or its certificate is wrong.
            UpstreamRejected: it refused (409 taken, 400 invalid, 401 bad token...).
        """
        body: dict[str, Any] = {"id": cp_id, "location": location}
        if price is not None:
            body["price"] = price
        try:
            response = requests.post(
                f"{self.base_url}/api/chargepoints",
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
                verify=self._verify,
            )
        except requests.exceptions.SSLError:
            raise UpstreamUnavailable(
                SERVICE, "its certificate does not match the CA file (EV_REGISTRY_CA)"
            ) from None
        except requests.RequestException as exc:
            raise UpstreamUnavailable(SERVICE, type(exc).__name__) from None
        if response.status_code >= 500:
            raise UpstreamUnavailable(SERVICE, f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise UpstreamUnavailable(SERVICE, "the answer was not JSON") from None
        if response.status_code >= 400:
            raise UpstreamRejected(
                SERVICE,
                response.status_code,
                str(answer.get("error", "error")),
                str(answer.get("message", response.reason)),
            )
        return dict(answer)
