"""The OCPP 1.6J endpoint of Central: ``ws[s]://HOST:PORT/ocpp/<charge box id>``.

The WebSocket upgrade is where a charger is authenticated (OCPP security profile 1:
HTTP Basic with the charge box id and its Registry secret; profile 2: the same over
TLS). It is refused, and audited, before any OCPP frame when:

- the path is not ``/ocpp/<id>`` with a valid CP id (404), or the client does not
  offer the ``ocpp1.6`` subprotocol (400);
- credentials are missing, name another charge box, or do not match the verifier
  Central keeps for a registered CP (401, the same answer for an unknown id, a
  deregistered one and a wrong secret; an unknown id costs the same scrypt as a real
  one, so timing does not tell them apart);
- the id or the address is being delayed after failed attempts (429, ``Retry-After``),
  with the same growing delays as the native logins (:mod:`central.throttle`), shared
  with them when Central passes its own throttle.

The secret is checked against the SCRAM verifier in the database (what the Registry
stored), never kept, never logged. Then the connection is an
:class:`~central.ocpp.charger.OcppCharger`.
"""

from __future__ import annotations

import asyncio
import http
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.headers import build_www_authenticate_basic
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from central.errors import CentralError
from central.network import Network
from central.ocpp.charger import OcppCharger
from central.ocpp.mapping import SUBPROTOCOL, charge_box_id, parse_basic
from central.ocpp.transactions import Transactions
from central.throttle import LoginThrottle, login_keys
from central.verifiers import VerifierLookups
from common.errors import ConfigError
from common.events import Event, EventType
from common.protocol.keys import DEFAULT_PARAMS, ScryptParams, check_secret, make_verifier

if TYPE_CHECKING:
    from central.cluster import Cluster

__all__ = ["OcppServer", "tls_context"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024  # an OCPP 1.6 message is a few hundred bytes
REALM = "EVCharging OCPP"
_ROLE = "monitor"  # the throttle's id key: one count for a CP, whichever door it uses


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for profile 2 (TLS 1.2 or later, as OCPP requires).

    Raises:
        ConfigError: the files do not load as a certificate chain and its key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for flag, path in (("--ocpp-tls-cert", cert), ("--ocpp-tls-key", key)):
        if not path.is_file():
            raise ConfigError(flag, f"{path}: no such file")
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("--ocpp-tls-cert", f"cannot load {cert} with {key}: {reason}") from None
    return context


class OcppServer:
    """Accepts OCPP 1.6J chargers and connects them to the network.

    Args:
        network: Central's domain.
        db: the shared database (verifiers).
        refresh: picks up registrations at once (a CP registered a moment ago).
        throttle: login delays; pass Central's, so both doors share the counts.
        tls: a server context for profile 2; None: plain ``ws://`` (profile 1).
        scrypt_params: the cost of the decoy check for unknown ids.
        rate: calls a second a charger may make before being refused.
    """

    def __init__(
        self,
        network: Network,
        verifiers: VerifierLookups,
        *,
        refresh: Callable[[], Awaitable[None]] | None = None,
        throttle: LoginThrottle | None = None,
        tls: ssl.SSLContext | None = None,
        scrypt_params: ScryptParams = DEFAULT_PARAMS,
        rate: float = 10.0,
    ) -> None:
        self.network = network
        self._verifiers = verifiers  # shared with the TCP server: look-ups batched together
        self._refresh = refresh
        self.throttle = throttle or LoginThrottle()
        self._tls = tls
        self._rate = rate
        self.transactions = Transactions()
        self.cluster: Cluster | None = None  # several Centrals: who serves each CP
        # Checked against when the id is unknown, so an unknown id costs a real scrypt.
        self._decoy = make_verifier(secrets.token_urlsafe(32), scrypt_params)
        self._server: Server | None = None

    @property
    def profile(self) -> int:
        return 2 if self._tls else 1

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await serve(
            self._handler,
            host,
            port,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            process_request=self._upgrade,
            ssl=self._tls,
            max_size=MAX_MESSAGE,
            ping_interval=10,
            ping_timeout=10,
            compression=None,
            server_header=None,
            logger=logging.getLogger("central.ocpp.ws"),
        )
        sock = next(iter(self._server.sockets))
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --------------------------------------------------------------- upgrade
    async def _upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        ip = _peer_ip(connection)
        cp_id = charge_box_id(request.path)
        if cp_id is None:
            return _respond(
                connection, http.HTTPStatus.NOT_FOUND, "connect to /ocpp/<charge point id>\n"
            )
        offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
        if SUBPROTOCOL not in [p.strip() for p in offered.split(",")]:
            return _respond(
                connection,
                http.HTTPStatus.BAD_REQUEST,
                f"this endpoint speaks OCPP 1.6J: offer the WebSocket subprotocol {SUBPROTOCOL}\n",
            )
        keys = login_keys(_ROLE, cp_id, ip)
        wait = self.throttle.wait(keys)
        if wait:
            self._audit_failed(cp_id, ip, f"login delayed {wait} s after failed attempts")
            response = _respond(
                connection, http.HTTPStatus.TOO_MANY_REQUESTS, "too many failed attempts\n"
            )
            response.headers["Retry-After"] = str(wait)
            return response
        credentials = parse_basic(request.headers.get("Authorization"))
        if credentials is None or credentials[0] != cp_id:
            why = "no credentials" if credentials is None else "credentials name another id"
            self._audit_failed(cp_id, ip, why)
            return _unauthorized(connection)
        reason = await self._check(cp_id, credentials[1])
        if self.throttle.wait(keys):
            # A parallel attempt failed while this one was checked: say nothing of it.
            return _respond(
                connection, http.HTTPStatus.TOO_MANY_REQUESTS, "too many failed attempts\n"
            )
        if reason is not None:
            self.throttle.failed(keys)
            self._audit_failed(cp_id, ip, reason)
            return _unauthorized(connection)
        self.throttle.succeeded(keys)
        if cp_id not in self.network.fleet.cps and self._refresh is not None:
            await self._refresh()
        owner = await self.cluster.take(cp_id) if self.cluster is not None else None
        if owner is not None:
            # An OCPP charger has one URL: it retries later, by when the CP is free again.
            return _respond(
                connection,
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"charge point {cp_id} is served by the Central at {owner}\n",
            )
        connection.username = cp_id
        self.network.fleet.emit(
            Event(
                EventType.CP_AUTHENTICATED,
                "central",
                {"role": "ocpp", "security_profile": self.profile},
                cp_id=cp_id,
                actor=cp_id,
                source_ip=ip,
            )
        )
        return None

    async def _check(self, cp_id: str, secret: str) -> str | None:
        """Why the secret is refused (for the audit log), or None if it is right."""

        verifier = await self._verifiers.get("cp", cp_id)
        loop = asyncio.get_running_loop()
        matches = await loop.run_in_executor(
            None, partial(check_secret, secret, verifier or self._decoy)
        )
        if verifier is None:
            return "unknown or deregistered charge point"
        return None if matches else "bad secret"

    def _audit_failed(self, cp_id: str, ip: str, reason: str) -> None:
        log.warning(
            "OCPP charger refused",
            extra={"fields": {"cp_id": cp_id, "peer": ip, "reason": reason}},
        )
        self.network.fleet.emit(
            Event(
                EventType.CP_AUTH_FAILED,
                "central",
                {"role": "ocpp", "reason": reason, "security_profile": self.profile},
                cp_id=cp_id,
                actor=cp_id,
                source_ip=ip,
            )
        )

    # ------------------------------------------------------------ connection
    async def _handler(self, connection: ServerConnection) -> None:
        cp_id = connection.username
        charger = OcppCharger(
            cp_id,
            connection,
            self.network,
            self.transactions,
            _peer_ip(connection),
            rate=self._rate,
        )
        log.info("OCPP charger connected", extra={"fields": {"cp_id": cp_id}})
        try:
            await charger.serve()
        except ConnectionClosed:
            pass
        except CentralError as exc:  # not loaded even after a refresh
            await connection.close(1008, exc.message[:120])
        except Exception:
            log.exception("OCPP connection failed", extra={"fields": {"cp_id": cp_id}})
        if self.cluster is not None:
            self.cluster.release(cp_id)
        log.info(
            "OCPP charger disconnected",
            extra={"fields": {"cp_id": cp_id, "reason": charger.close_reason or "closed"}},
        )


def _peer_ip(connection: ServerConnection) -> str:
    address: Any = connection.remote_address
    return str(address[0]) if address else "?"


def _respond(connection: ServerConnection, status: http.HTTPStatus, text: str) -> Response:
    return connection.respond(status, text)


def _unauthorized(connection: ServerConnection) -> Response:
    response = _respond(
        connection,
        http.HTTPStatus.UNAUTHORIZED,
        "authentication failed: use HTTP Basic with the charge point id and its secret\n",
    )
    response.headers["WWW-Authenticate"] = build_www_authenticate_basic(REALM)
    return response
